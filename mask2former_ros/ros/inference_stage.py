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
The node's inference stage: what the inference thread does with the frames it takes.

It reads each camera's serialized message without copying the pixels, decodes it, segments
all frames of the batch at once and submits the results to the output stage; a bad frame or a
failed batch is counted and warned about, and the thread goes on.
"""

from dataclasses import dataclass, field
import time
from typing import Any, Callable, Mapping

from mask2former_ros.core.postprocess.instance_tracking import InstanceTracker
from mask2former_ros.core.results import Segmenter
from mask2former_ros.core.runtime.stats import CameraStats
from mask2former_ros.messages.image_conversion import (
    compressed_to_rgb, image_to_rgb, ImageConversionError, stamp_ns)
from mask2former_ros.messages.serialized_image import read_image, ros_header
from mask2former_ros.ros.diagnostics import BatchStats
from mask2former_ros.ros.output_stage import Output, OutputStage
import numpy as np
from std_msgs.msg import Header


@dataclass
class Camera:
    """ROS handles of one camera input and its statistics."""

    name: str
    input_topic: str
    publishers: dict[str, Any] = field(default_factory=dict)
    subscription: Any = None
    stats: CameraStats = field(default_factory=CameraStats)
    tracker: InstanceTracker | None = None  # panoptic/instance with tracking on


class InferenceStage:
    """
    Decode, segment as one batch and hand to ``output``: the inference thread's callback.

    ``cameras`` is the node's live camera table, ``warn(stats, text)`` reports a problem of a
    camera, ``topic_name`` resolves a camera's input topic for those reports.
    """

    def __init__(self, cameras: Mapping[str, Camera], compressed: bool, batches: BatchStats,
                 output: OutputStage, warn: Callable[[CameraStats, str], None],
                 topic_name: Callable[[str], str]) -> None:
        """Serve ``cameras`` (CompressedImage messages if ``compressed``), counting ``batches``."""
        self.cameras, self.compressed, self.batches = cameras, compressed, batches
        self._output, self._warn, self._topic_name = output, warn, topic_name

    def reset_tracks(self) -> None:
        """End every camera's tracks (call while no frame is on its way to the output)."""
        for camera in self.cameras.values():
            if camera.tracker is not None:
                camera.tracker.reset()

    def decode(self, camera: Camera, raw: bytes) -> tuple[Header, np.ndarray] | None:
        """Return the header and RGB pixels of one serialized message, or count a bad frame."""
        try:
            msg = read_image(raw, self.compressed)
            rgb = compressed_to_rgb(msg) if self.compressed else image_to_rgb(msg)
            header = ros_header(msg.header)
        except ImageConversionError as exc:
            reason = str(exc)
        except Exception as exc:  # undecodable CDR from a foreign publisher
            reason = f'cannot deserialise: {type(exc).__name__}: {exc}'
        else:
            return header, rgb
        camera.stats.bad_frames += 1
        self._warn(camera.stats, f'bad frame on {self._topic_name(camera.input_topic)}: '
                                 f'{reason}')
        return None

    def process(self, engine: Segmenter, items: dict[str, tuple]) -> None:
        """On the inference thread: decode, segment as one batch, hand results to output."""
        frames = []
        for name, (raw, arrival, arrival_ns) in items.items():
            camera = self.cameras.get(name)
            if camera is None:
                continue
            started = time.perf_counter()
            decoded = self.decode(camera, raw)
            if decoded is None:
                continue
            camera.stats.decode_ms.add((time.perf_counter() - started) * 1e3)
            stamp = stamp_ns(decoded[0])
            if stamp:
                camera.stats.transport_ms.add((arrival_ns - stamp) / 1e6)
            frames.append((camera, decoded[0], decoded[1], arrival))
        if not frames:
            return
        started = time.perf_counter()
        try:
            results = engine.segment_batch([rgb for _, _, rgb, _ in frames])
        except Exception as exc:  # e.g. out of memory: drop this batch, keep running
            self.batches.failed_batches += 1
            for camera, *_ in frames:
                camera.stats.failed_frames += 1
                self._warn(camera.stats, f'inference failed, frame dropped: '
                                         f'{type(exc).__name__}: {exc}')
            return
        batch_ms = (time.perf_counter() - started) * 1e3
        batches = self.batches
        batches.sizes[len(frames)] = batches.sizes.get(len(frames), 0) + 1
        batches.batch_ms.add(batch_ms)
        batches.frame_ms.add(batch_ms / len(frames))
        for stage, stats in batches.stage_ms.items():
            stats.add(results[0].timings_ms[stage])
        for (camera, header, rgb, arrival), result in zip(frames, results, strict=True):
            if not result.ok:
                camera.stats.failed_frames += 1
                self._warn(camera.stats, f'frame {stamp_ns(header)} dropped: {result.error}')
                continue
            self._output.submit(Output(camera.publishers, camera.stats, header, rgb,
                                       result.labels, engine.palette, arrival,
                                       result.instances, result.segments, camera.tracker))
