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
Fuzz a running node over real DDS: any message gives labels or a counted bad frame.

The node runs active in its own process (random-weight model: labels need not be right) and
receives fuzzed messages one at a time on a reliable subscription; after each one its
/diagnostics must show exactly one more frame received and exactly one outcome (labels
published, a bad frame or a failed frame). Afterwards it is alive and segments a good frame.
"""

import cv2
from diagnostic_msgs.msg import DiagnosticArray
from hypothesis import given, HealthCheck, settings, strategies as st
from mask2former_ros.messages.image_conversion import SUPPORTED_ENCODINGS
from mask2former_ros_fixtures.image_encoding import make_image_msg
from mask2former_ros_fixtures.ros_harness import NodeProcess, RosPeer, wait_until
from mask2former_ros_fixtures.synthetic import make_scene
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image

OUTCOMES = ('frames_processed', 'bad_frames', 'failed_frames')
FUZZ = settings(max_examples=30, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class FuzzedNode:
    """An active node, a reliable publisher to it and the counters it reports."""

    def __init__(self, peer: RosPeer, checkpoint, transport: str) -> None:
        self.ns = f'/fuzz_{transport}'
        self.node = NodeProcess({'model': str(checkpoint), 'image_transport': transport,
                                 'qos_reliability': 'reliable', 'qos_depth': 10,
                                 'diagnostics_period': 0.1, 'warning_throttle': 0.0},
                                name='fuzz_node', namespace=self.ns)
        self.topic = f'{self.ns}/image' + ('/compressed' if transport == 'compressed' else '')
        self.pub = peer.publisher(CompressedImage if transport == 'compressed' else Image,
                                  self.topic, depth=10)
        self.labels = peer.collect(Image, f'{self.ns}/segmentation/labels')
        self.diagnostics = peer.collect(DiagnosticArray, '/diagnostics')
        assert self.node.wait_for_output('active:', 120), self.node.output
        assert peer.wait_for_subscribers(self.pub), self.node.output
        assert wait_until(lambda: self.counters() is not None, 30), self.node.output
        self.count = 0
        self.expected_bad = 0

    def counters(self) -> dict[str, int] | None:
        """Return the newest counters of the camera status, or None before any."""
        for _, array in reversed(self.diagnostics):
            for status in array.status:
                if status.name.endswith(f': {self.topic}'):
                    values = {kv.key: kv.value for kv in status.values}
                    return {key: int(values[key]) for key in
                            ('frames_received', 'frames_dropped', *OUTCOMES)}
        return None

    def send(self, msg) -> dict[str, int]:
        """Publish ``msg``; return how each counter changed once the node has dealt with it."""
        before = self.counters()
        self.count += 1
        msg.header.frame_id = f'fuzz/{self.count}'
        self.pub.publish(msg)

        def settled() -> bool:
            now = self.counters()
            return (now['frames_received'] > before['frames_received']
                    and sum(now[k] for k in OUTCOMES) > sum(before[k] for k in OUTCOMES))
        assert wait_until(settled, 60), (before, self.counters(), self.node.output[-2000:])
        assert self.node.proc.poll() is None, self.node.output[-3000:]
        after = self.counters()
        delta = {key: after[key] - before[key] for key in after}
        if delta['frames_processed']:
            frame_id = msg.header.frame_id
            assert wait_until(lambda: any(m.header.frame_id == frame_id
                                          for _, m in self.labels), 30), delta
        return delta

    def close(self) -> None:
        """Stop the node; it must exit cleanly."""
        code, _ = self.node.stop()
        assert code == 0, self.node.output[-3000:]


@pytest.fixture(scope='module')
def raw_node(peer, random_checkpoint):
    node = FuzzedNode(peer, random_checkpoint, 'raw')
    yield node
    node.close()


@pytest.fixture(scope='module')
def compressed_node(peer, random_checkpoint):
    node = FuzzedNode(peer, random_checkpoint, 'compressed')
    yield node
    node.close()


def _one_outcome(delta: dict[str, int]) -> None:
    assert delta['frames_received'] == 1 and delta['frames_dropped'] == 0, delta
    assert sorted(delta[key] for key in OUTCOMES) == [0, 0, 1], delta


@FUZZ
@given(encoding=st.sampled_from(list(SUPPORTED_ENCODINGS) + ['32FC1', '', 'jpeg', 'RGB8 ']),
       height=st.integers(0, 40), width=st.integers(0, 40),
       step_delta=st.integers(-8, 16), data_delta=st.integers(-64, 64),
       big_endian=st.booleans(), seed=st.integers(0, 255))
def test_raw_messages_never_escape(raw_node, encoding, height, width, step_delta, data_delta,
                                   big_endian, seed):
    step = max(0, width * 3 + step_delta)
    size = max(0, step * height + data_delta)
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=big_endian,
                step=step, data=bytes((seed + i) % 256 for i in range(size)))
    delta = raw_node.send(msg)
    _one_outcome(delta)
    if data_delta < 0 and size < step * height:  # truncated: never labels
        assert delta['bad_frames'] == 1, (delta, msg.encoding, height, width, step, size)
    raw_node.expected_bad += delta['bad_frames']


@FUZZ
@given(fmt=st.sampled_from(['jpeg', 'png', 'rgb8; jpeg compressed bgr8', 'tiff', '']),
       data=st.binary(max_size=512))
def test_compressed_messages_never_escape(compressed_node, fmt, data):
    delta = compressed_node.send(CompressedImage(format=fmt, data=data))
    _one_outcome(delta)
    assert delta['bad_frames'] == 1, delta  # random bytes never decode into an image
    compressed_node.expected_bad += 1


@pytest.mark.parametrize('transport', ['raw', 'compressed'])
def test_node_survives_the_fuzz_and_still_segments(request, transport):
    fuzzed = request.getfixturevalue(f'{transport}_node')
    assert fuzzed.count >= 20, 'the fuzz tests did not run'
    assert fuzzed.node.proc.poll() is None, fuzzed.node.output[-3000:]
    counters = fuzzed.counters()
    assert counters['bad_frames'] == fuzzed.expected_bad >= 10, counters
    assert 'bad frame on' in fuzzed.node.output
    rgb, _ = make_scene(np.random.default_rng(0), 240, 320)
    good = make_image_msg(rgb, 'rgb8')
    if transport == 'compressed':
        ok, png = cv2.imencode('.png', np.ascontiguousarray(rgb[:, :, ::-1]))
        assert ok
        good = CompressedImage(header=good.header, format='rgb8; png compressed bgr8',
                               data=png.tobytes())
    delta = fuzzed.send(good)
    assert delta['frames_processed'] == 1 and delta['bad_frames'] == 0, delta
    out = next(m for _, m in fuzzed.labels if m.header.frame_id == good.header.frame_id)
    assert (out.height, out.width, out.encoding) == (240, 320, 'mono8')
