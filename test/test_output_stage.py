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

from mask2former_ros.core.palette import CITYSCAPES_COLORS, colorize, overlay
from mask2former_ros.core.stats import CameraStats
from mask2former_ros.ros import output_stage
from mask2former_ros.ros.image_conversion import image_to_rgb
from mask2former_ros.ros.output_stage import Output, OutputStage
import numpy as np
import pytest
from ros_harness import labels_array, RosPeer, wait_until
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
