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
The node's output stage: one thread that publishes segmented frames in the order produced.

For each :class:`Output` the thread publishes the label image (``publish_labels``) and, only
while they have subscribers, the colour mask and the overlay (``publish_color``,
``publish_overlay``, ``overlay_alpha``), all with the input's header. A panoptic or instance
frame (``instances`` set) also gives, while they have subscribers, the instance-id image and
the detections; its colour mask and overlay shade each instance and outline it. With its
camera's tracker (``tracking``) the output thread first gives the instances their track ids
(stamped by the header, else the arrival time), in the order the frames were segmented. The
parameters are read for every frame, so a live change applies to the next one. Per camera it
counts ``publish_ms`` (tracking included), ``latency_ms`` (from the header stamp, else from
arrival), ``outputs`` and the live ``tracks``.
"""

from dataclasses import dataclass
import queue
import threading
import time
from typing import Any, Callable, Mapping

from mask2former_ros.core.engine_config import EngineConfig
from mask2former_ros.core.postprocess.instance_tracking import InstanceTracker, relabel
from mask2former_ros.core.render.instance_render import colorize_instances
from mask2former_ros.core.render.palette import colorize, overlay
from mask2former_ros.core.results import Segment
from mask2former_ros.core.runtime.stats import CameraStats
from mask2former_ros.messages.image_conversion import labels_to_image, rgb_to_image, stamp_ns
from mask2former_ros.ros.detections import Detection2DArray, detection_array
import numpy as np
from rclpy.clock import Clock
from sensor_msgs.msg import Image
from std_msgs.msg import Header


def output_types(task: str) -> dict[str, Any]:
    """Return the message type of each output ``segmentation/<kind>`` of ``task``."""
    types: dict[str, Any] = {'labels': Image, 'color': Image, 'overlay': Image}
    if task != 'semantic':
        types['instances'] = Image
        if Detection2DArray is not None:  # vision_msgs installed
            types['detections'] = Detection2DArray
    return types


def thresholds(task: str, config: EngineConfig) -> str:
    """Return the thresholds that ``task`` uses (panoptic, instance) for a log line, else ''."""
    if task == 'semantic':
        return ''
    return (f' (score_threshold {config.score_threshold}, mask_threshold '
            f'{config.mask_threshold}, overlap_threshold {config.overlap_threshold})')


@dataclass
class Output:
    """One segmented frame on its way to the output thread."""

    publishers: Mapping[str, Any]  # its camera's: 'labels', 'color', 'overlay' (and for
    # panoptic/instance 'instances', 'detections' where vision_msgs is installed)
    stats: CameraStats  # its camera's statistics
    header: Header
    rgb: np.ndarray
    labels: np.ndarray
    palette: np.ndarray  # of the engine that produced the labels
    arrival: float  # monotonic time the message arrived
    instances: np.ndarray | None = None  # panoptic/instance: (H, W) uint16 ids, 0 = none
    segments: tuple[Segment, ...] = ()  # panoptic/instance: one per id of ``instances``
    tracker: InstanceTracker | None = None  # its camera's tracks (tracking on)
    lut: np.ndarray | None = None  # per-frame id -> track id, until ``instances`` use it

    def track(self, warn: Callable[[str], None]) -> None:
        """Give the segments their track ids; the instance image follows when it is used."""
        stamp = stamp_ns(self.header)
        tracked = self.tracker.update(self.instances, self.segments,
                                      stamp / 1e9 if stamp else self.arrival)
        if tracked.reset:
            warn(f'tracks reset: {tracked.reset}')
        self.segments, self.lut = tracked.segments, tracked.lut
        self.stats.tracks = len(self.tracker.tracks)

    def instance_ids(self) -> np.ndarray:
        """Return the instance image, with track ids once tracked (relabelled on first use)."""
        if self.lut is not None:
            self.instances, self.lut = relabel(self.instances, self.lut), None
        return self.instances


class OutputStage:
    """
    The output thread: publishes each submitted :class:`Output`, first in, first out.

    ``param`` returns a parameter's current value, ``clock`` gives the time latencies end at,
    ``warn(stats, text)`` reports a failed publish. :meth:`halt` stops publishing at once
    while the thread goes on draining the queue, so a producer never blocks on it;
    :meth:`stop` then ends the thread.
    """

    def __init__(self, param: Callable[[str], Any], clock: Clock,
                 warn: Callable[[CameraStats, str], None], maxsize: int = 4) -> None:
        """Create a stopped stage whose queue holds up to ``maxsize`` outputs."""
        self._param, self._clock, self._warn = param, clock, warn
        self._queue: queue.Queue[Output | None] = queue.Queue(maxsize=maxsize)
        self._publishing = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def publishing(self) -> bool:
        """Return whether submitted outputs are published (between start and halt)."""
        return self._publishing.is_set()

    @property
    def thread(self) -> threading.Thread | None:
        """Return the output thread while the stage runs."""
        return self._thread

    def start(self) -> None:
        """Start the output thread; outputs submitted from now on are published."""
        self._publishing.set()
        self._thread = threading.Thread(target=self._loop, name='output', daemon=True)
        self._thread.start()

    def submit(self, out: Output) -> None:
        """Queue ``out`` (waiting while the queue is full); dropped unless publishing."""
        if self._publishing.is_set():
            self._queue.put(out)

    def halt(self) -> None:
        """Publish nothing more; what is queued or submitted later is drained unpublished."""
        self._publishing.clear()

    def stop(self, timeout: float = 4.0) -> None:
        """Halt, then end the thread once it has drained the queue (waits up to ``timeout``)."""
        self.halt()
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def _loop(self) -> None:
        while True:
            out = self._queue.get()
            if out is None:
                return
            if not self._publishing.is_set():
                continue
            started = time.perf_counter()
            try:
                self._publish(out)
            except Exception as exc:  # a publisher destroyed during shutdown
                self._warn(out.stats, f'publish failed: {type(exc).__name__}: {exc}')
                continue
            stats = out.stats
            stats.publish_ms.add((time.perf_counter() - started) * 1e3)
            stamp = stamp_ns(out.header)
            now = self._clock.now().nanoseconds
            stats.latency_ms.add((now - stamp) / 1e6 if stamp
                                 else (time.monotonic() - out.arrival) * 1e3)
            stats.outputs.add()

    def _publish(self, out: Output) -> None:
        if out.tracker is not None and out.instances is not None:
            out.track(lambda text: self._warn(out.stats, text))
        pubs, header, labels = out.publishers, out.header, out.labels
        if self._param('publish_labels'):
            pubs['labels'].publish(labels_to_image(labels, header))
        want_color = self._param('publish_color') and pubs['color'].get_subscription_count() > 0
        want_overlay = (self._param('publish_overlay')
                        and pubs['overlay'].get_subscription_count() > 0)
        if want_color or want_overlay:
            color = (colorize(labels, out.palette) if out.instances is None
                     else colorize_instances(labels, out.instance_ids(), out.palette))
            if want_color:
                pubs['color'].publish(rgb_to_image(color, header))
            if want_overlay:
                pubs['overlay'].publish(rgb_to_image(
                    overlay(out.rgb, labels, out.palette, self._param('overlay_alpha'),
                            color=color), header))
        if out.instances is not None:
            self._publish_instances(out)

    @staticmethod
    def _publish_instances(out: Output) -> None:
        instances, detections = out.publishers.get('instances'), out.publishers.get('detections')
        if instances is not None and instances.get_subscription_count() > 0:
            instances.publish(labels_to_image(out.instance_ids(), out.header))
        if detections is not None and detections.get_subscription_count() > 0:
            detections.publish(detection_array(out.segments, out.header))
