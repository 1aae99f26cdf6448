# Copyright 2026 mask2former_ros maintainers
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""
The per-frame stages of a run: decode (numpy/cv2), infer (torch), finish (write, evaluate).

:class:`FrameStages` also keeps the counters, stage times, confusion matrix, panoptic quality
(with instance ground truth) and worst frames.
``decode`` and ``finish`` never touch torch, so they may run on helper threads; ``infer`` must
run on the thread that loaded the engine.
"""

from dataclasses import dataclass, field
import math
import time
from typing import Any, Callable

from mask2former_ros.core.evaluation.metrics import ConfusionMatrix
from mask2former_ros.core.evaluation.panoptic_quality import PanopticQuality
from mask2former_ros.core.postprocess.instance_tracking import InstanceTracker
from mask2former_ros.core.results import IGNORE_LABEL
from mask2former_ros.core.segmentation_task import thing_class_ids
from mask2former_ros.messages.image_conversion import stamp_ns
from mask2former_ros.offline.bag_io import InputBag, OutputBag
from mask2former_ros.offline.errors import (
    EXIT_FAILURE, format_stamp, MAX_BAD_FRAME_WARNINGS, one_line, SegmentBagError)
from mask2former_ros.offline.ground_truth import GroundTruth
from mask2former_ros.offline.summary import (
    frame_entry, frame_miou, panoptic_frame_entry, StageTimes, WorstFrames)
from mask2former_ros.offline.tracking_metrics import TrackingEvaluation
import numpy as np


@dataclass
class Frame:
    """One message of the image topic on its way through the stages."""

    index: int
    log_time: int
    raw: bytes
    header: Any = None
    stamp: int | None = None
    rgb: np.ndarray | None = None
    truth: np.ndarray | None = None
    truth_instances: np.ndarray | None = None  # with --gt-instances-topic
    labels: np.ndarray | None = None
    instances: np.ndarray | None = None  # panoptic and instance tasks
    segments: tuple = ()  # their Segments (track ids once tracked)
    frame_instances: np.ndarray | None = None  # the engine's per-frame ids, once tracked
    error: str | None = None  # a bad frame: why it was skipped
    dropped: bool = False  # replaced by a newer frame (--realtime): only copied
    ms: dict[str, float] = field(default_factory=dict)


class FrameStages:
    """Decode, infer and finish frames of one bag; count and time them."""

    def __init__(self, bag: InputBag, engine: Any, output: OutputBag | None,
                 gt: GroundTruth | None, alpha: float, include_input: bool,
                 log: Callable[[str], None], on_frame: Callable[[], None],
                 bag_name: str = '', worst_k: int = 0, tracker: InstanceTracker | None = None,
                 track_ids: bool = False) -> None:
        """
        Set up for ``bag``; ``on_frame`` is called after every finished frame.

        ``tracker`` gives instances track ids; ``track_ids``: the instance ground truth's ids
        persist across frames, so tracking metrics are computed.
        """
        self.bag, self.engine, self.output, self.gt = bag, engine, output, gt
        self.alpha, self.include_input = alpha, include_input
        self.log, self.on_frame = log, on_frame
        self.bag_name = bag_name
        self.times = StageTimes()
        self.frame_ms: list[float] = []
        self.processed = self.dropped = self.bad = 0
        self.frames_evaluated = self.frames_without_gt = 0
        self.confusion = None if gt is None else ConfusionMatrix(engine.num_classes,
                                                                 IGNORE_LABEL)
        self.worst = WorstFrames(worst_k if gt is not None else 0)
        self.panoptic: PanopticQuality | None = None
        self.frames_panoptic = self.frames_without_instances = 0
        if gt is not None and gt.instances is not None:
            # Things of the dataset: an instance model's stuff classes stay stuff.
            self.panoptic = PanopticQuality(engine.num_classes,
                                            thing_class_ids(engine.class_names, 'panoptic'),
                                            IGNORE_LABEL)
        self.worst_pq = WorstFrames(worst_k if self.panoptic is not None else 0, 'pq')
        self.tracker = tracker
        self.tracking: TrackingEvaluation | None = None
        self.per_frame: TrackingEvaluation | None = None  # the engine's ids, for comparison
        if track_ids and self.panoptic is not None:
            self.tracking = TrackingEvaluation(self.panoptic.thing_ids)
            if tracker is not None:
                self.per_frame = TrackingEvaluation(self.panoptic.thing_ids)
        self._tracking_result: tuple[int, dict] | None = None
        self._bad_warnings = 0

    def tracking_result(self) -> dict | None:
        """
        Return the tracking metrics of the frames so far (None without --gt-track-ids).

        With tracking on, ``per_frame_ids`` holds those of the engine's per-frame ids.
        """
        if self.tracking is None:
            return None
        if self._tracking_result is None or \
                self._tracking_result[0] != len(self.tracking.frames):
            result = self.tracking.result()
            if self.per_frame is not None:
                result['per_frame_ids'] = self.per_frame.result()
            self._tracking_result = (len(self.tracking.frames), result)
        return self._tracking_result[1]

    def done(self) -> int:
        """Return the number of frames finished (processed, dropped or bad)."""
        return self.processed + self.dropped + self.bad

    def read(self, limit: int | None) -> Any:
        """Yield the topic's messages as Frames, timing each read."""
        started = time.perf_counter()
        for index, log_time, raw in self.bag.frames(limit):
            frame = Frame(index, log_time, raw)
            frame.ms['read'] = (time.perf_counter() - started) * 1e3
            yield frame
            started = time.perf_counter()

    def decode(self, frame: Frame) -> Frame:
        """Deserialise and decode the image and look up its ground truth (no torch)."""
        t0 = time.perf_counter()
        try:
            msg = self.bag.deserialize(frame.raw)
            frame.header = msg.header
            frame.stamp = stamp_ns(msg.header)
            frame.rgb = self.bag.to_rgb(msg)
        except Exception as exc:  # noqa: BLE001 - any malformed frame is skipped
            frame.error = one_line(exc)
            return frame
        t1 = time.perf_counter()
        frame.ms['decode'] = (t1 - t0) * 1e3
        if self.gt is not None:
            frame.truth = self.gt.lookup(frame.index, frame.stamp)
            if frame.truth is not None and frame.truth.shape != frame.rgb.shape[:2]:
                raise SegmentBagError(size_message(self.gt.description, frame.index,
                                                   frame.truth.shape, frame.rgb.shape))
            if frame.truth is not None and self.panoptic is not None:
                frame.truth_instances = self.gt.lookup_instances(frame.index, frame.stamp)
                if frame.truth_instances is not None and \
                        frame.truth_instances.shape != frame.rgb.shape[:2]:
                    raise SegmentBagError(size_message(
                        self.gt.instances_description, frame.index,
                        frame.truth_instances.shape, frame.rgb.shape))
            frame.ms['evaluate'] = (time.perf_counter() - t1) * 1e3
        return frame

    def infer(self, frame: Frame) -> Frame:
        """Segment a decoded frame (torch: on the engine's thread only)."""
        if frame.error is not None or frame.dropped:
            return frame
        try:
            result = self.engine.segment_batch([frame.rgb])[0]
        except Exception as exc:  # noqa: BLE001 - e.g. out of memory
            from mask2former_ros.core.results import InferenceOutOfMemoryError
            if isinstance(exc, InferenceOutOfMemoryError):  # the cache was freed: go on
                frame.error = one_line(exc)
                return frame
            raise SegmentBagError(f'inference failed on frame {frame.index}: '
                                  f'{type(exc).__name__}: {one_line(exc)}',
                                  EXIT_FAILURE) from None
        if result.error is not None:  # this frame failed alone, e.g. non-finite logits
            frame.error = str(result.error)
            return frame
        frame.labels = result.labels
        frame.instances = result.instances
        frame.segments = result.segments
        for stage in ('preprocess', 'model', 'postprocess'):
            frame.ms[stage] = result.timings_ms.get(stage, math.nan)
        return frame

    def finish(self, frame: Frame) -> None:
        """Copy the input, write the outputs, evaluate and count one frame (no torch)."""
        if self.output is not None and self.include_input:
            self.output.copy_input(frame.log_time, frame.raw)
        if frame.dropped:
            self.dropped += 1
        elif frame.error is not None:
            self.bad += 1
            self._warn_bad(frame)
        else:
            if self.tracker is not None and frame.instances is not None:
                self._track(frame)
            t0 = time.perf_counter()
            if self.output is not None:
                self.output.write_frame(frame.log_time, frame.header, frame.rgb, frame.labels,
                                        self.engine.palette, self.alpha, frame.instances)
                frame.ms['write'] = (time.perf_counter() - t0) * 1e3
            if self.gt is not None:
                t1 = time.perf_counter()
                self._evaluate(frame)
                frame.ms['evaluate'] = frame.ms.get('evaluate', 0.0) + \
                    (time.perf_counter() - t1) * 1e3
            frame.ms['frame'] = sum(v for v in frame.ms.values() if not math.isnan(v))
            for stage, ms in frame.ms.items():
                self.times.add(stage, ms)
            self.frame_ms.append(round(frame.ms['frame'], 3))
            self.processed += 1
        self.on_frame()

    def _track(self, frame: Frame) -> None:
        """Give the frame's instances their track ids (frames arrive here in bag order)."""
        started = time.perf_counter()
        seconds = (frame.stamp or frame.log_time) / 1e9
        tracked = self.tracker.update(frame.instances, frame.segments, seconds)
        frame.frame_instances = frame.instances
        frame.instances = tracked.relabel(frame.instances)
        frame.segments = tracked.segments
        if tracked.reset:
            self.log(f'warning: tracks reset before frame {frame.index}: {tracked.reset}')
        frame.ms['track'] = (time.perf_counter() - started) * 1e3

    def _evaluate(self, frame: Frame) -> None:
        if frame.truth is None:
            self.frames_without_gt += 1
            return
        matrix, miou = frame_miou(frame.truth, frame.labels, self.engine.num_classes)
        self.confusion.matrix += matrix.matrix
        self.frames_evaluated += 1
        self.worst.offer(miou, lambda: frame_entry(
            self.bag_name, frame.index, frame.stamp, miou, frame.rgb, frame.truth,
            frame.labels, self.engine.palette))
        if self.panoptic is not None:
            self._evaluate_panoptic(frame)

    def _evaluate_panoptic(self, frame: Frame) -> None:
        if frame.truth_instances is None:
            self.frames_without_instances += 1
            return
        try:
            pq = self.panoptic.add(frame.labels, frame.instances, frame.truth,
                                   frame.truth_instances).pq()
        except ValueError as exc:  # e.g. ground-truth labels beyond the model's classes
            raise SegmentBagError(f'panoptic quality of frame {frame.index}: {exc}') from None
        self.frames_panoptic += 1
        if self.tracking is not None:
            self.tracking.add(frame.index, frame.stamp, frame.truth, frame.truth_instances,
                              frame.labels, frame.instances)
        if self.per_frame is not None:
            self.per_frame.add(frame.index, frame.stamp, frame.truth, frame.truth_instances,
                               frame.labels, frame.frame_instances)
        self.worst_pq.offer(pq, lambda: panoptic_frame_entry(
            self.bag_name, frame.index, frame.stamp, pq, frame.rgb,
            (frame.truth, frame.truth_instances), (frame.labels, frame.instances),
            self.engine.palette, self.panoptic.thing_ids))

    def _warn_bad(self, frame: Frame) -> None:
        self._bad_warnings += 1
        if self._bad_warnings > MAX_BAD_FRAME_WARNINGS:
            return
        stamp = '' if frame.stamp is None else f' (stamp {format_stamp(frame.stamp)})'
        self.log(f'warning: bad frame {frame.index}{stamp} on {self.bag.topic} skipped: '
                 f'{frame.error}')
        if self._bad_warnings == MAX_BAD_FRAME_WARNINGS:
            self.log('warning: further bad-frame warnings are suppressed')


def size_message(description: str, index: int, truth: tuple, frame: tuple) -> str:
    """Return the error for ground truth whose size differs from the frame's."""
    return (f'ground truth of frame {index} from {description} is '
            f'{truth[1]}x{truth[0]} but the frame is {frame[1]}x{frame[0]}')
