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

"""The run over one bag: set-up, the frame loop (pipelined or real-time) and its summary."""

from dataclasses import replace
import json
from pathlib import Path
import shutil
import sys
import time
from typing import Any, Callable

from mask2former_ros.core.postprocess.instance_tracking import InstanceTracker, TrackerConfig
from mask2former_ros.core.runtime.frame_slot import simulate_realtime
from mask2former_ros.messages.image_conversion import stamp_ns
from mask2former_ros.offline.bag_io import bag_frame_size, InputBag, OutputBag
from mask2former_ros.offline.errors import (
    EXIT_FAILURE, one_line, PROG, SegmentBagError)
from mask2former_ros.offline.ground_truth import GroundTruth, open_ground_truth
from mask2former_ros.offline.options import (
    check_engine_task, check_options, compressed_kinds, default_output, make_options, Options,
    output_kinds, output_topics)
from mask2former_ros.offline.pipeline import run_pipeline, SigintGuard
from mask2former_ros.offline.progress import Progress
from mask2former_ros.offline.stages import FrameStages, size_message
from mask2former_ros.offline.summary import json_safe, panoptic_metrics
from mask2former_ros.offline.tracking_metrics import (
    check_tracking_metrics, tracking_summary, WORST_SWITCHES)


def _torch_threads(engine: Any) -> int | None:
    """Return torch's intra-op threads for a torch engine (None: another backend)."""
    if engine.backend != 'torch':
        return None
    from torch import get_num_threads
    return get_num_threads()


def load_engine(o: Options, log: Callable[[str], None]) -> Any:
    """Load the model the options name on the calling thread, or raise SegmentBagError."""
    from mask2former_ros.core.backends.create import create_engine
    from mask2former_ros.core.checkpoint import ModelLoadError
    from mask2former_ros.core.engine_config import EngineConfig, SettingError
    from mask2former_ros.core.segmentation_task import TaskMismatchError
    try:  # the engine settings are validated here, once
        config = EngineConfig(
            model=o.model, device=o.device, precision=o.precision, input_size=o.input_size,
            allow_pickle=o.allow_pickle, backend=o.backend, onnx_model=o.onnx_model,
            onnx_providers=tuple(o.onnx_providers.split(',')), frame_size=o.frame_size,
            task=o.task, score_threshold=o.score_threshold, mask_threshold=o.mask_threshold,
            overlap_threshold=o.overlap_threshold, compile=o.compile)
    except SettingError as exc:
        raise SegmentBagError(str(exc), option=exc.name) from None
    if o.torch_threads and o.backend == 'torch':
        import torch
        torch.set_num_threads(o.torch_threads)
    if needs_frame_size(o) and o.input_bag:
        o.frame_size = bag_frame_size(Path(o.input_bag), o.topic)
        config = replace(config, frame_size=o.frame_size)
    try:
        engine = create_engine(config, log=log, warn=log)
    except ModelLoadError as exc:
        raise SegmentBagError(str(exc), EXIT_FAILURE,
                              option='onnx_model' if o.onnx_model else 'model') from None
    except TaskMismatchError as exc:  # e.g. task panoptic on a semantic checkpoint
        raise SegmentBagError(str(exc), option='task') from None
    except ValueError as exc:  # e.g. device cuda without CUDA
        raise SegmentBagError(str(exc), option='device') from None
    try:
        check_engine_task(o, engine)
    except SegmentBagError:
        engine.close()
        raise
    return engine


def needs_frame_size(o: Options) -> bool:
    """Return True if loading needs the frame size: to export a graph, or to compile for it."""
    if o.frame_size:
        return False
    return (not o.onnx_model if o.backend == 'onnxruntime'
            else str(o.compile).strip().lower() not in ('off', 'auto'))


class BagSegmenter:
    """One run of segment_bag over one bag: see :func:`segment_bag`."""

    def __init__(self, options: Options, engine: Any = None,
                 log: Callable[[str], None] | None = None, bag_name: str = '',
                 worst_k: int = 0) -> None:
        """Store the settings; ``engine`` (a SegmentationEngine) skips loading a model."""
        self.options = options
        self.engine = engine
        self._external_log = log
        self.bag_name = bag_name or Path(options.input_bag).name
        self.worst_k = worst_k
        self.progress: Progress | None = None
        self.stages: FrameStages | None = None
        self.bag: InputBag | None = None
        self.gt: GroundTruth | None = None
        self.output: OutputBag | None = None
        self.output_path: Path | None = None
        self.guard = SigintGuard()
        self.total = 0
        self.complete = False
        self.load_seconds = self.wall_seconds = self.arrival_span = 0.0

    def log(self, text: str) -> None:
        """Print an informational line on stderr (or pass it to the caller's logger)."""
        if self._external_log is not None:
            self._external_log(text)
        elif self.progress is not None:
            self.progress.write(f'{PROG}: {text}')
        else:
            print(f'{PROG}: {text}', file=sys.stderr, flush=True)

    # --- set-up ---------------------------------------------------------------------------

    def _resolve_output(self) -> None:
        o = self.options
        if o.no_output:
            return
        path = Path(o.output) if o.output is not None else default_output(o.input_bag)
        target, source = path.resolve(), Path(o.input_bag).resolve()
        if target == source or source in target.parents or target in source.parents:
            raise SegmentBagError(f"output '{path}' would overwrite the input bag")
        if path.exists():
            if not o.overwrite:
                raise SegmentBagError(f"output '{path}' exists; pass --overwrite to replace it")
            if not path.is_dir() or (any(path.iterdir())
                                     and not (path / 'metadata.yaml').exists()):
                raise SegmentBagError(f"output '{path}' exists and is not a rosbag2 bag; "
                                      'not replacing it')
        self.output_path = path

    def _check_gt_size(self) -> None:
        """Compare the first frame with its ground truth before the model is loaded."""
        for index, _, raw in self.bag.frames(limit=1):
            try:
                msg = self.bag.deserialize(raw)
                size = (self.bag.to_rgb(msg).shape[:2] if self.bag.compressed
                        else (int(msg.height), int(msg.width)))
            except Exception:  # noqa: BLE001 - a bad first frame is reported while running
                return
            stamp = stamp_ns(msg.header)
            for truth, description in ((self.gt.lookup(index, stamp), self.gt.description),
                                       (self.gt.lookup_instances(index, stamp),
                                        self.gt.instances_description)):
                if truth is not None and truth.shape != tuple(size):
                    raise SegmentBagError(size_message(description, index, truth.shape, size))

    def _serves_instances(self) -> bool:
        """Return True when the engine gives instance ids (task panoptic or instance)."""
        return getattr(self.engine, 'task', 'semantic') != 'semantic'

    def _open_output(self) -> None:
        if self.output_path is None or self.output is not None:
            return
        if self.output_path.exists():  # an old bag and --overwrite, checked before
            shutil.rmtree(self.output_path)
        custom = {'mask2former_ros.model': str(self.engine.config.model),
                  'mask2former_ros.input_topic': self.options.topic,
                  'mask2former_ros.class_names': json.dumps(self.engine.class_names)}
        try:
            self.output = OutputBag(self.output_path, self.options.output_storage,
                                    self.options.output_prefix,
                                    self.bag if self.options.include_input else None, custom,
                                    output_kinds(self.options.outputs),
                                    compressed_kinds(self.options.compress),
                                    self.options.jpeg_quality,
                                    instances=self._serves_instances())
        except OSError as exc:
            raise SegmentBagError(f"cannot create output '{self.output_path}': "
                                  f'{one_line(exc)}') from None
        self.stages.output = self.output

    def _close_output(self) -> None:
        if self.output is not None:
            output, self.output = self.output, None
            self.stages.output = None
            output.close()

    # --- the loops ------------------------------------------------------------------------

    def _update_progress(self) -> None:
        s = self.stages
        self.progress.update(s.done(), s.processed, s.dropped, s.bad)

    def _run_sequential(self) -> None:
        s, o = self.stages, self.options
        if o.prefetch > 0:
            frames = (s.decode(frame) for frame in s.read(o.max_frames))
            run_pipeline(frames, s.infer, s.finish, o.prefetch,
                         lambda: self.guard.critical(reraise=False),
                         self._open_output, self._close_output)
        else:
            self._open_output()
            for frame in s.read(o.max_frames):
                with self.guard.critical():
                    s.finish(s.infer(s.decode(frame)))
        self.complete = True

    def _run_realtime(self) -> None:
        s, o = self.stages, self.options
        arrivals: list[tuple[float, int]] = []
        first = None
        for index, log_time, _ in self.bag.frames(o.max_frames):
            first = log_time if first is None else first
            arrivals.append(((log_time - first) / 1e9, index))
        self.total = len(arrivals)
        self.progress.set_total(self.total)
        self.arrival_span = arrivals[-1][0] if arrivals else 0.0
        self._open_output()
        source = s.read(o.max_frames)

        def process(wanted: int) -> None:
            # Frames before ``wanted`` arrived while the worker was busy and were replaced.
            for frame in source:
                if frame.index < wanted:
                    frame.dropped = True
                    with self.guard.critical():
                        s.finish(frame)
                    continue
                with self.guard.critical():
                    s.finish(s.infer(s.decode(frame)))
                return

        _, dropped = simulate_realtime(arrivals, process)
        if dropped != s.dropped:  # both count the same replaced frames
            self.log(f'warning: simulate_realtime reports {dropped} dropped frames, '
                     f'{s.dropped} were skipped')
        self.complete = True

    # --- the run --------------------------------------------------------------------------

    def run(self) -> dict:
        """Run and return the summary; raise SegmentBagError for errors."""
        o = self.options
        check_options(o)
        if o.gt_track_ids:
            check_tracking_metrics()
        self.bag = InputBag(o.input_bag, o.topic)
        try:
            self.gt = open_ground_truth(o.input_bag, o.gt_topic, o.gt_dir, o.gt_labelids,
                                        o.gt_instances_topic)
            self._resolve_output()
            if self.gt is not None:
                self._check_gt_size()
            if self.engine is None:
                self.engine = load_engine(o, self.log)
                self.load_seconds = self.engine.load_seconds
            check_engine_task(o, self.engine)
            return self._process()
        finally:
            if self.gt is not None:
                self.gt.close()
            self.bag.close()

    def _process(self) -> dict:
        o = self.options
        self.total = min(self.bag.count, o.max_frames) if o.max_frames else self.bag.count
        self.progress = Progress(self.total, o.progress and self._external_log is None)
        tracker = InstanceTracker(TrackerConfig(max_age=o.track_max_age)) \
            if self._serves_instances() and o.tracking == 'on' else None
        self.stages = FrameStages(self.bag, self.engine, None, self.gt,
                                  o.overlay_alpha, o.include_input, self.log,
                                  self._update_progress, self.bag_name, self.worst_k,
                                  tracker, o.gt_track_ids)
        interrupted, error = False, None
        started = time.perf_counter()
        try:
            with self.guard:
                try:
                    (self._run_realtime if o.realtime else self._run_sequential)()
                except KeyboardInterrupt:
                    interrupted = True
                except SegmentBagError as exc:
                    error = exc
                finally:
                    self.wall_seconds = time.perf_counter() - started
                    with self.guard.critical(reraise=False):
                        self.progress.close()
                        self._close_output()
                    interrupted = interrupted or self.guard.pending
        finally:
            self.progress.close()
        if interrupted:
            self.log(f'interrupted after {self.stages.processed} processed frames; '
                     f'{self.output_path or "no output"} closed')
        summary = self.summary(interrupted)
        if error is not None:
            summary['error'] = str(error)
            error.summary = summary
            raise error
        return summary

    def summary(self, interrupted: bool) -> dict:
        """Return the JSON-serialisable summary of the run so far."""
        o, engine, s = self.options, self.engine, self.stages
        remaining = 0 if self.complete else max(self.total - s.done(), 0)
        frames = {'total': self.total, 'processed': s.processed, 'dropped': s.dropped,
                  'bad': s.bad, 'remaining': remaining}
        out: dict[str, Any] = {
            'input_bag': str(o.input_bag), 'topic': o.topic, 'message_type': self.bag.msgtype,
            'output_bag': None if self.output_path is None else str(self.output_path),
            'output_storage': None if self.output_path is None else o.output_storage,
            'output_topics': None if self.output_path is None else
            output_topics(o, self._serves_instances()) + ([o.topic] if o.include_input else []),
            'model': str(engine.config.model), 'backend': engine.backend,
            'task': getattr(engine, 'task', 'semantic'),
            'device': engine.device_name, 'precision': engine.precision_name,
            'input_size': engine.input_size, 'torch_threads': _torch_threads(engine),
            'mode': 'realtime' if o.realtime else 'sequential',
            'tracking': {'enabled': s.tracker is not None, 'max_age': o.track_max_age}
            if self._serves_instances() else None,
            'interrupted': interrupted, 'frames': frames,
            'fps': round(s.processed / self.wall_seconds, 3) if self.wall_seconds > 0
            else None,
            'wall_seconds': round(self.wall_seconds, 3),
            'model_load_seconds': round(self.load_seconds, 3),
            'timings_ms': s.times.summary(),
        }
        if o.realtime:
            span = self.arrival_span
            out['realtime'] = {
                'clock': 'log time', 'bag_seconds': round(span, 6),
                'input_hz': (self.total - 1) / span if span > 0 else None,
                'output_hz': (s.processed - 1) / span if span > 0 and s.processed else None}
        out['metrics'] = None
        if s.confusion is not None:
            metrics = s.confusion.summary(engine.class_names)
            metrics.update({'frames_evaluated': s.frames_evaluated,
                            'frames_without_gt': s.frames_without_gt,
                            'ground_truth': self.gt.description, 'labelids': o.gt_labelids})
            if s.panoptic is not None:
                metrics['panoptic'] = dict(
                    panoptic_metrics(s.panoptic, engine.class_names),
                    frames_evaluated=s.frames_panoptic,
                    frames_without_instances=s.frames_without_instances,
                    ground_truth=self.gt.instances_description, task=engine.task)
            tracking = s.tracking_result()
            if tracking is not None:
                metrics['tracking'] = tracking_summary(tracking, self.worst_k or WORST_SWITCHES)
            out['metrics'] = metrics
        return json_safe(out)


def segment_bag(input_bag: Path | str, topic: str, *, engine: Any = None,
                log: Callable[[str], None] | None = None, **options: Any) -> dict:
    """
    Segment ``topic`` of ``input_bag`` and return the summary dict.

    ``options`` are the fields of :class:`~mask2former_ros.offline.options.Options`
    (``output``, ``model``, ``realtime``, ``gt_topic``, ...). ``engine`` reuses a loaded
    SegmentationEngine (``model``, ``device``, ``precision``, ``input_size`` and
    ``allow_pickle`` are then ignored); ``log`` receives the informational lines instead of
    stderr (and disables the progress display). Raises SegmentBagError (with ``exit_code`` and,
    for runs that had started, ``summary``). A Ctrl-C returns the summary of the frames
    processed so far with ``interrupted`` True.
    """
    opts = make_options(Options, dict(options, input_bag=input_bag, topic=topic))
    return BagSegmenter(opts, engine=engine, log=log).run()
