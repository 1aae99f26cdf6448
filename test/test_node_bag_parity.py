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
The running node and ``segment_bag`` give identical outputs for the same recorded frames.

A bag written by rosbags is segmented offline by the ``segment_bag`` command, and played over
real DDS (recorded CDR bytes, one frame at a time so nothing is dropped) into a running
``segmentation_node`` with the same model and parameters. Labels, colour masks and overlays
must be equal pixel for pixel, under the same stamps and frame ids. The two sides share no
engine object: each process loads its own engine from the same checkpoint directory.
"""

import subprocess

from mask2former_ros_fixtures.bag_player import BagPlayer
from mask2former_ros_fixtures.ros_harness import NodeProcess, RosPeer, wait_until
from mask2former_ros_fixtures.sample_bag import typestore, write_sample_bag
import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import Image
from test_segment_bag import SCRIPT

FRAMES = 4
HEIGHT, WIDTH = 200, 300  # not the checkpoint's input size: both sides resize and restore
RAW, COMPRESSED = '/camera/image_raw', '/camera/image_raw/compressed'
OUTPUTS = ('labels', 'color', 'overlay')
ALPHA = 0.35  # a non-default parameter passed to both


def _stamp(header) -> tuple[int, int]:
    return header.stamp.sec, header.stamp.nanosec


def _pixels(msg) -> np.ndarray:
    channels = 3 if msg.encoding == 'rgb8' else 1
    assert msg.step == msg.width * channels
    return np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, channels)


def _offline(bag, topic: str, model, out) -> dict:
    """Run the ``segment_bag`` command; return {kind: {stamp: (frame_id, encoding, pixels)}}."""
    result = subprocess.run(
        [SCRIPT, str(bag), '--topic', topic, '--model', str(model), '--output', str(out),
         '--overlay-alpha', str(ALPHA), '--device', 'cpu', '--no-progress',
         '--outputs', 'labels,color,overlay', '--compress', 'none'],  # as the node publishes
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    found: dict[str, dict] = {kind: {} for kind in OUTPUTS}
    with Reader(out) as reader:
        for conn, _, raw in reader.messages():
            msg = typestore().deserialize_cdr(raw, conn.msgtype)
            found[conn.topic.rsplit('/', 1)[1]][_stamp(msg.header)] = (
                msg.header.frame_id, msg.encoding, _pixels(msg))
    return found


def _online(bag, topic: str, transport: str, model) -> dict:
    """Play ``topic`` into a running node frame by frame; return what it published."""
    node = NodeProcess({'model': str(model), 'device': 'cpu', 'image_transport': transport,
                        'overlay_alpha': ALPHA, 'qos_reliability': 'reliable'},
                       namespace='/parity',
                       remaps={'image' if transport == 'raw' else 'image/compressed': topic})
    peer = RosPeer('parity_player')
    try:
        received = {kind: peer.collect(Image, f'/parity/segmentation/{kind}')
                    for kind in OUTPUTS}
        player = BagPlayer(peer.node, bag, [topic])
        assert player.wait_for_subscribers(60), node.output
        assert node.wait_for_output(f"loaded '{model}'", 60), node.output  # its own engine
        publisher, _ = player.publishers[topic]
        assert wait_until(lambda: all(p.get_publisher_count() for p in
                                      peer.node.subscriptions), 60), node.output
        for index, (_, _, _, raw) in enumerate(player.messages):
            publisher.publish(raw)  # the recorded CDR bytes, as ros2 bag play does
            assert wait_until(lambda i=index: all(len(v) > i for v in received.values()), 60), \
                (index, node.output)
        return {kind: {_stamp(m.header): (m.header.frame_id, m.encoding, _pixels(m))
                       for _, m in messages} for kind, messages in received.items()}
    finally:
        peer.close()
        node.stop()


@pytest.mark.parametrize('topic,transport', [(RAW, 'raw'), (COMPRESSED, 'compressed')])
def test_node_and_segment_bag_agree(tiny_model_dir, tmp_path, topic, transport):
    info = write_sample_bag(tmp_path / 'drive', frames=FRAMES, height=HEIGHT, width=WIDTH,
                            encoding='bgr8', gt_topic=None, seed=11)
    offline = _offline(info['path'], topic, tiny_model_dir, tmp_path / 'offline')
    online = _online(info['path'], topic, transport, tiny_model_dir)
    stamps = sorted(divmod(s, 1_000_000_000) for s in info['stamps'])
    for kind in OUTPUTS:
        assert sorted(offline[kind]) == stamps, kind
        assert sorted(online[kind]) == stamps, kind
        for key in stamps:
            frame_id, encoding, pixels = online[kind][key]
            assert (frame_id, encoding) == offline[kind][key][:2], (kind, key)
            assert frame_id == info['frame_id']
            np.testing.assert_array_equal(pixels, offline[kind][key][2], err_msg=f'{kind} {key}')
    # The frames are segmented, not blank: several classes per frame.
    assert all(len(np.unique(p)) >= 3 for _, _, p in online['labels'].values())
