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
The output stage on its own: real rclpy publishers and subscribers over DDS, in this process.

The stage publishes through one RosPeer's publishers (wrapped to count what they are asked
to publish) and the module's ``peer`` subscribes, as a viewer in another process would.
"""

import itertools
import threading
import time
from typing import Any

from mask2former_ros.core.cityscapes import CITYSCAPES_COLORS
from mask2former_ros.core.postprocess.instance_tracking import InstanceTracker
from mask2former_ros.core.render.instance_render import colorize_instances
from mask2former_ros.core.render.palette import colorize, overlay
from mask2former_ros.core.results import NO_SEGMENT, Segment
from mask2former_ros.core.runtime.stats import CameraStats
from mask2former_ros.messages.image_conversion import image_to_rgb
from mask2former_ros.ros import output_stage
from mask2former_ros.ros.detections import (
    Detection2DArray, detection_array, detection_box, VISION_MSGS_MISSING)
from mask2former_ros.ros.output_stage import Output, OutputStage
from mask2former_ros_fixtures.ros_harness import labels_array, RosPeer, wait_until
import numpy as np
import pytest
from sensor_msgs.msg import Image
from std_msgs.msg import Header

KINDS = ('labels', 'color', 'overlay')
HEIGHT, WIDTH = 24, 32
_topics = itertools.count()


class CountingPublisher:
    """A real publisher that records what it is asked to publish, optionally held or failing."""

    def __init__(self, publisher: Any) -> None:
        self.publisher = publisher
        self.published: list[Any] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail_next = False

    def publish(self, msg: Any) -> None:
        """Wait for the gate, fail once if asked, then publish for real."""
        self.gate.wait(30.0)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError('injected: publisher destroyed')
        self.published.append(msg)
        self.publisher.publish(msg)

    def get_subscription_count(self) -> int:
        """Return the real publisher's matched subscriptions."""
        return self.publisher.get_subscription_count()


class Bench:
    """A stage publishing on fresh topics from its own node; the peer subscribes."""

    def __init__(self, source: RosPeer, peer: RosPeer) -> None:
        self.peer = peer
        self.prefix = f'/output_stage_{next(_topics)}/segmentation'
        self.publishers = {kind: CountingPublisher(source.publisher(Image, f'{self.prefix}/{kind}',
                                                                    depth=50))
                           for kind in KINDS}
        self.params = {'publish_labels': True, 'publish_color': True, 'publish_overlay': True,
                       'overlay_alpha': 0.5}
        self.warnings: list[str] = []
        self.stats = CameraStats()
        self.stage = OutputStage(self.params.__getitem__, source.node.get_clock(),
                                 lambda stats, text: self.warnings.append(text))
        self.received: dict[str, list] = {}
        self.rng = np.random.default_rng(0)

    def subscribe(self, kind: str) -> list:
        """Subscribe the peer to one output and wait until the stage's publisher sees it."""
        self.received[kind] = self.peer.collect(Image, f'{self.prefix}/{kind}')
        assert self.peer.wait_for_subscribers(self.publishers[kind]), kind
        return self.received[kind]

    def output(self, index: int, stamp_sec: int = 0, arrival: float | None = None) -> Output:
        """Return a frame whose header names ``index``."""
        header = Header(frame_id=f'frame_{index}')
        header.stamp.sec = stamp_sec
        return Output(self.publishers, self.stats, header,
                      self.rng.integers(0, 256, (HEIGHT, WIDTH, 3), np.uint8),
                      self.rng.integers(0, 19, (HEIGHT, WIDTH), np.uint8), CITYSCAPES_COLORS,
                      time.monotonic() if arrival is None else arrival)


@pytest.fixture(scope='module')
def source():
    """Return the node whose publishers the stage uses (as the segmentation node's)."""
    node = RosPeer('output_stage_source')
    yield node
    node.close()


@pytest.fixture
def bench(source, peer):
    b = Bench(source, peer)
    yield b
    for publisher in b.publishers.values():
        publisher.gate.set()
    b.stage.stop()


def frame_ids(messages: list) -> list[str]:
    return [msg.header.frame_id for _, msg in messages]


def test_fifo_order_header_labels_and_stats(bench):
    labels = bench.subscribe('labels')
    bench.stage.start()
    outputs = [bench.output(i) for i in range(12)]
    for out in outputs:  # more than the queue holds: submit waits, nothing is lost
        bench.stage.submit(out)
    assert wait_until(lambda: len(labels) == len(outputs), 20), frame_ids(labels)
    assert frame_ids(labels) == [f'frame_{i}' for i in range(12)]
    for (_, msg), out in zip(labels, outputs, strict=True):
        assert msg.header == out.header
        assert np.array_equal(labels_array(msg), out.labels)
    stats = bench.stats
    assert stats.outputs.total == stats.publish_ms.total == stats.latency_ms.total == 12
    assert not bench.warnings


def test_color_and_overlay_only_while_subscribed(bench, monkeypatch):
    colorized = []
    monkeypatch.setattr(output_stage, 'colorize',
                        lambda *args: colorized.append(1) or colorize(*args))
    labels = bench.subscribe('labels')
    bench.stage.start()
    bench.stage.submit(bench.output(0))
    assert wait_until(lambda: len(labels) == 1, 20)
    assert not colorized, 'nobody watches colour or overlay: no colour work'
    assert [len(bench.publishers[k].published) for k in KINDS] == [1, 0, 0]

    overlays = bench.subscribe('overlay')
    out = bench.output(1)
    bench.stage.submit(out)
    assert wait_until(lambda: len(overlays) == 1, 20)
    msg = overlays[0][1]
    assert msg.header == out.header and msg.encoding == 'rgb8'
    assert np.array_equal(image_to_rgb(msg), overlay(out.rgb, out.labels, CITYSCAPES_COLORS, 0.5))
    assert [len(bench.publishers[k].published) for k in KINDS] == [2, 0, 1]

    colors = bench.subscribe('color')
    bench.params['publish_overlay'] = False  # live parameters apply to the next frame
    out = bench.output(2)
    bench.stage.submit(out)
    assert wait_until(lambda: len(colors) == 1, 20)
    assert colors[0][1].header == out.header
    assert np.array_equal(image_to_rgb(colors[0][1]), colorize(out.labels, CITYSCAPES_COLORS))
    assert wait_until(lambda: len(labels) == 3, 20)
    assert [len(bench.publishers[k].published) for k in KINDS] == [3, 1, 1]

    bench.params.update(publish_labels=False, publish_color=False)
    bench.stage.submit(bench.output(3))
    assert wait_until(lambda: bench.stats.outputs.total == 4, 20)  # handled, nothing to send
    assert [len(bench.publishers[k].published) for k in KINDS] == [3, 1, 1]


def test_latency_from_the_stamp_or_else_from_arrival(bench, source):
    bench.subscribe('labels')
    bench.stage.start()
    now = source.node.get_clock().now().nanoseconds // 1_000_000_000
    bench.stage.submit(bench.output(0, stamp_sec=now - 5))
    assert wait_until(lambda: bench.stats.latency_ms.total == 1, 20)
    bench.stage.submit(bench.output(1, arrival=time.monotonic() - 0.3))
    assert wait_until(lambda: bench.stats.latency_ms.total == 2, 20)
    from_arrival, from_stamp = bench.stats.latency_ms.percentiles(0, 100)
    assert 4000 < from_stamp < 7000, from_stamp  # stamp has whole seconds: up to 1 s more
    assert 300 <= from_arrival < 2000, from_arrival


def test_halt_stops_publishing_at_once_and_stop_drains_without_publishing(bench):
    labels_pub = bench.publishers['labels']
    bench.stage.start()
    labels_pub.gate.clear()  # the output thread will hang in the first publish
    bench.stage.submit(bench.output(0))
    assert wait_until(lambda: bench.stage._queue.empty(), 10)
    for i in range(1, 5):  # fills the queue (4) behind the held frame
        bench.stage.submit(bench.output(i))
    bench.stage.halt()
    assert not bench.stage.publishing
    started = time.monotonic()
    for i in range(5, 15):  # dropped at once: a producer never waits after halt
        bench.stage.submit(bench.output(i))
    assert time.monotonic() - started < 1.0
    thread = bench.stage.thread
    labels_pub.gate.set()
    bench.stage.stop(timeout=10.0)
    assert not thread.is_alive() and bench.stage.thread is None
    assert bench.stage._queue.empty()
    assert frame_ids([(0, m) for m in labels_pub.published]) == ['frame_0']
    assert bench.stats.outputs.total == 1


def test_failed_publish_is_warned_and_the_next_frame_goes_out(bench):
    labels = bench.subscribe('labels')
    bench.publishers['labels'].fail_next = True
    bench.stage.start()
    bench.stage.submit(bench.output(0))
    bench.stage.submit(bench.output(1))
    assert wait_until(lambda: len(labels) == 1, 20)
    assert frame_ids(labels) == ['frame_1']
    assert bench.warnings == ['publish failed: RuntimeError: injected: publisher destroyed']
    assert bench.stats.outputs.total == 1


def test_restart_after_stop(bench):
    labels = bench.subscribe('labels')
    for i in range(2):  # deactivate, activate: a fresh thread each time
        bench.stage.start()
        assert bench.stage.publishing and bench.stage.thread.name == 'output'
        bench.stage.submit(bench.output(i))
        assert wait_until(lambda n=i: len(labels) == n + 1, 20)
        bench.stage.stop()
        assert bench.stage.thread is None and not bench.stage.publishing
    assert frame_ids(labels) == ['frame_0', 'frame_1']


# --- panoptic / instance frames ----------------------------------------------------------------

CAR, PERSON, ROAD = 13, 11, 0


def panoptic_frame() -> tuple[np.ndarray, np.ndarray, tuple[Segment, ...]]:
    """Return labels, instances and segments of a hand-made frame: two touching cars, a person."""
    labels = np.full((HEIGHT, WIDTH), ROAD, np.uint8)
    labels[:3, :] = NO_SEGMENT
    instances = np.zeros((HEIGHT, WIDTH), np.uint16)
    for segment_id, cls, (x0, y0, x1, y1) in ((1, CAR, (2, 5, 9, 12)), (2, CAR, (10, 6, 15, 12)),
                                              (3, PERSON, (20, 4, 22, 20))):
        instances[y0:y1 + 1, x0:x1 + 1] = segment_id
        labels[y0:y1 + 1, x0:x1 + 1] = cls
    segments = tuple(
        Segment(i, int(labels[instances == i][0]), score, _bounds(instances == i),
                int((instances == i).sum()))
        for i, score in ((1, 0.97), (2, 0.91), (3, 0.6)))
    return labels, instances, segments


def _bounds(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def test_detection_boxes_use_pixel_edges():
    header = Header(frame_id='cam')
    header.stamp.sec, header.stamp.nanosec = 7, 9
    if Detection2DArray is None:
        pytest.skip(f'vision_msgs not installed ({VISION_MSGS_MISSING})')
    segment = Segment(4, CAR, 0.75, (2, 3, 5, 7), 20)
    msg = detection_array([segment], header)
    assert msg.header == header and len(msg.detections) == 1
    detection = msg.detections[0]
    assert detection.header == header and detection.id == '4'
    box = detection.bbox
    # Columns 2..5 cover [2, 6): 4 px wide, centre 4.0; rows 3..7 cover [3, 8): centre 5.5.
    assert (box.center.position.x, box.center.position.y, box.size_x, box.size_y) == (
        4.0, 5.5, 4.0, 5.0)
    assert box.center.theta == 0.0
    assert [(r.hypothesis.class_id, r.hypothesis.score) for r in detection.results] == [
        (str(CAR), 0.75)]
    assert detection_box(detection) == segment.box
    assert detection_array([], header).detections == []


@pytest.fixture
def panoptic_bench(source, peer):
    if Detection2DArray is None:
        pytest.skip(f'vision_msgs not installed ({VISION_MSGS_MISSING})')
    b = Bench(source, peer)
    b.publishers['instances'] = CountingPublisher(source.publisher(
        Image, f'{b.prefix}/instances', depth=50))
    b.publishers['detections'] = CountingPublisher(source.publisher(
        Detection2DArray, f'{b.prefix}/detections', depth=50))
    yield b
    b.stage.stop()


def _panoptic_output(bench: Bench, index: int) -> output_stage.Output:
    out = bench.output(index)
    out.labels, out.instances, out.segments = panoptic_frame()
    return out


def test_instances_and_detections_only_while_subscribed(panoptic_bench):
    bench = panoptic_bench
    labels = bench.subscribe('labels')
    bench.stage.start()
    bench.stage.submit(_panoptic_output(bench, 0))
    assert wait_until(lambda: len(labels) == 1, 20)
    assert np.array_equal(labels_array(labels[0][1]), panoptic_frame()[0])
    assert not bench.publishers['instances'].published
    assert not bench.publishers['detections'].published

    instances = bench.subscribe('instances')
    detections = bench.peer.collect(Detection2DArray, f'{bench.prefix}/detections')
    assert bench.peer.wait_for_subscribers(bench.publishers['detections'])
    out = _panoptic_output(bench, 1)
    bench.stage.submit(out)
    assert wait_until(lambda: instances and detections, 20)
    image, array = instances[0][1], detections[0][1]
    assert image.header == out.header and array.header == out.header
    assert (image.encoding, image.height, image.width, image.step) == (
        'mono16', HEIGHT, WIDTH, 2 * WIDTH)
    assert not image.is_bigendian
    ids = np.frombuffer(bytes(image.data), '<u2').reshape(HEIGHT, WIDTH)
    assert np.array_equal(ids, out.instances)
    assert [d.id for d in array.detections] == ['1', '2', '3']
    for detection, segment in zip(array.detections, out.segments, strict=True):
        assert detection.header == out.header
        assert detection_box(detection) == _bounds(ids == int(detection.id)) == segment.box
        hypothesis = detection.results[0].hypothesis
        assert (hypothesis.class_id, hypothesis.score) == (str(segment.class_id), segment.score)
    assert not bench.warnings


def test_panoptic_colour_and_overlay_shade_and_outline_instances(panoptic_bench):
    bench = panoptic_bench
    colors, overlays = bench.subscribe('color'), bench.subscribe('overlay')
    bench.stage.start()
    out = _panoptic_output(bench, 0)
    bench.stage.submit(out)
    assert wait_until(lambda: colors and overlays, 20)
    expected = colorize_instances(out.labels, out.instances, CITYSCAPES_COLORS)
    assert np.array_equal(image_to_rgb(colors[0][1]), expected)
    assert not np.array_equal(expected, colorize(out.labels, CITYSCAPES_COLORS))
    assert np.array_equal(image_to_rgb(overlays[0][1]), overlay(
        out.rgb, out.labels, CITYSCAPES_COLORS, 0.5, color=expected))


def test_semantic_frames_publish_no_instances(panoptic_bench):
    bench = panoptic_bench
    labels, colors = bench.subscribe('labels'), bench.subscribe('color')
    instances = bench.subscribe('instances')
    bench.stage.start()
    out = bench.output(0)
    bench.stage.submit(out)
    assert wait_until(lambda: labels and colors, 20)
    assert np.array_equal(image_to_rgb(colors[0][1]), colorize(out.labels, CITYSCAPES_COLORS))
    time.sleep(0.3)
    assert not instances and not bench.publishers['detections'].published


def test_tracked_outputs_publish_track_ids_per_camera(panoptic_bench):
    # Two cameras' outputs through one stage, each with its own tracker: camera B sees camera
    # A's frame mirrored (no object of a class where A has one), then A sees its frame again.
    bench = panoptic_bench
    instances = bench.subscribe('instances')
    detections = bench.peer.collect(Detection2DArray, f'{bench.prefix}/detections')
    assert bench.peer.wait_for_subscribers(bench.publishers['detections'])
    bench.stage.start()
    trackers = {'a': InstanceTracker(), 'b': InstanceTracker()}
    for index, (camera, stamp) in enumerate((('a', 1), ('b', 1), ('a', 2))):
        out = _panoptic_output(bench, index)
        out.header.stamp.sec = stamp
        if camera == 'b':
            out.labels, out.instances = np.fliplr(out.labels), np.fliplr(out.instances)
            out.segments = tuple(Segment(s.instance_id, s.class_id, s.score,
                                         (WIDTH - 1 - s.box[2], s.box[1], WIDTH - 1 - s.box[0],
                                          s.box[3]), s.area) for s in out.segments)
        out.tracker = trackers[camera]
        bench.stage.submit(out)
    assert wait_until(lambda: len(instances) == 3 and len(detections) == 3, 20)
    for (_, image), (_, array) in zip(instances, detections, strict=True):
        ids = np.frombuffer(bytes(image.data), '<u2').reshape(HEIGHT, WIDTH)
        assert sorted(d.id for d in array.detections) == ['1', '2', '3']  # per camera
        for detection in array.detections:
            assert detection_box(detection) == _bounds(ids == int(detection.id))
    assert [trackers[c].tracks[0].hits for c in 'ab'] == [2, 1]
    assert bench.stats.tracks == 3 and not bench.warnings
