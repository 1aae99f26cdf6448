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

"""Faults over real DDS: dying publishers, format switches, bursts, inference errors."""

import resource
import signal
import subprocess
import sys
import textwrap
import time

from diagnostic_msgs.msg import DiagnosticArray
from mask2former_ros.core.evaluation.metrics import miou
from mask2former_ros_fixtures.image_encoding import make_image_msg
from mask2former_ros_fixtures.ros_harness import (
    labels_array, NodeProcess, remove_zombie_segments, shm_segments, wait_until)
from mask2former_ros_fixtures.synthetic import make_scene
import numpy as np
from sensor_msgs.msg import Image


def _miou(truth: np.ndarray, msg: Image) -> float:
    return miou(truth, labels_array(msg), 19)


PUBLISHER = textwrap.dedent("""
    import sys, time
    import numpy as np, rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from mask2former_ros_fixtures.image_encoding import make_image_msg
    from mask2former_ros_fixtures.synthetic import make_scene
    rclpy.init()
    node = rclpy.create_node('camera_driver')
    pub = node.create_publisher(Image, sys.argv[1],
                                QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    rgb, _ = make_scene(np.random.default_rng(int(sys.argv[2])), 240, 320)
    msg = make_image_msg(rgb, 'rgb8')
    i = 0
    while True:
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.header.frame_id = f'{sys.argv[2]}/{i}'
        pub.publish(msg)
        i += 1
        time.sleep(0.1)
""")


def test_publisher_killed_and_restarted(peer, tiny_model_dir):
    node = NodeProcess({'model': str(tiny_model_dir)}, name='fault_node', namespace='/f1')
    labels = peer.collect(Image, '/f1/segmentation/labels')
    try:
        assert node.wait_for_output('active:', 120), node.output
        for generation in ('1', '2'):
            driver = subprocess.Popen([sys.executable, '-c', PUBLISHER, '/f1/image', generation])
            try:
                prefix = f'{generation}/'
                assert wait_until(lambda p=prefix: any(m.header.frame_id.startswith(p)
                                                       for _, m in labels), 60), node.output
                segments = shm_segments(driver.pid)
            finally:
                driver.send_signal(signal.SIGKILL)  # dies without saying goodbye
                driver.wait()
            assert remove_zombie_segments(segments), 'a SIGKILL leaves its segment: none seen'
        assert node.proc.poll() is None
    finally:
        node.stop()


def test_resolution_and_encoding_switch_mid_stream(peer, tiny_model_dir):
    node = NodeProcess({'model': str(tiny_model_dir)}, name='switch_node', namespace='/f2')
    labels = peer.collect(Image, '/f2/segmentation/labels')
    pub = peer.publisher(Image, '/f2/image')
    try:
        assert node.wait_for_output('active:', 120)
        assert peer.wait_for_subscribers(pub)
        for i, (h, w, encoding) in enumerate([(240, 320, 'rgb8'), (480, 640, 'bgr8'),
                                              (300, 400, 'yuv422'), (240, 320, 'bayer_rggb8'),
                                              (480, 640, 'rgb8')]):
            rgb, truth = make_scene(np.random.default_rng(i), h, w)
            msg = make_image_msg(rgb, encoding)
            msg.header.frame_id = f'switch/{i}'

            def arrived(msg=msg, frame_id=f'switch/{i}'):
                pub.publish(msg)
                return any(m.header.frame_id == frame_id for _, m in labels)
            assert wait_until(arrived, 30, period=0.5), (h, w, encoding)
            out = next(m for _, m in labels if m.header.frame_id == f'switch/{i}')
            assert (out.height, out.width) == (h, w)
            assert _miou(truth, out) >= 0.9, encoding
    finally:
        node.stop()


def test_burst_of_200_frames_in_one_second(peer, tiny_model_dir):
    node = NodeProcess({'model': str(tiny_model_dir)}, name='burst_node', namespace='/f3')
    labels = peer.collect(Image, '/f3/segmentation/labels')
    pub = peer.publisher(Image, '/f3/image', depth=200)
    try:
        assert node.wait_for_output('active:', 120)
        assert peer.wait_for_subscribers(pub)
        rgb, truth = make_scene(np.random.default_rng(3), 240, 320)
        msg = make_image_msg(rgb, 'rgb8')
        started = time.monotonic()
        for i in range(200):
            msg.header.frame_id = f'burst/{i}'
            pub.publish(msg)
            time.sleep(max(0.0, started + (i + 1) / 200 - time.monotonic()))
        burst_end = time.monotonic()
        # The newest frame wins: the last frame comes out soon, the backlog is dropped.
        assert wait_until(lambda: any(m.header.frame_id == 'burst/199' for _, m in labels), 10)
        # Bounded in frames, not seconds (the machine may be loaded): after the burst, at most
        # the frames already in inference and in the output queue come out before the newest.
        after = [m.header.frame_id for t, m in labels if t >= burst_end]
        assert after.index('burst/199') <= 2, after
        assert len(labels) < 150
        assert all(_miou(truth, m) >= 0.9 for _, m in labels[-3:])
        assert node.proc.poll() is None
    finally:
        node.stop()


def _vm(pid: int) -> dict[str, int]:
    """Return the Vm* lines of /proc/<pid>/status in bytes."""
    with open(f'/proc/{pid}/status') as status:
        return {key: int(value.split()[0]) * 1024 for key, value in
                (line.split(':', 1) for line in status if line.startswith('Vm'))}


def _camera_status(diagnostics: list, topic: str) -> dict[str, str]:
    for _, array in reversed(diagnostics):
        for status in array.status:
            if status.name.endswith(topic):
                return {kv.key: kv.value for kv in status.values}
    return {}


# Measured: a 2048x2048 frame at native input size takes the node's peak address space 1.2 GB
# above its steady peak on the tiny model. Larger frames are not delivered with the shipped
# Fast DDS profile (3072x3072 and 4096x4096 rgb8 never arrived in a best-effort subscription).
HUGE = 2048
HEADROOM = 512 * 1024 * 1024  # address space allowed above the steady peak


def test_out_of_memory_on_one_frame_drops_it_and_continues(peer, tiny_model_dir):
    node = NodeProcess({'model': str(tiny_model_dir), 'input_size': 'native',
                        'diagnostics_period': 0.5}, name='oom_node', namespace='/f4')
    labels = peer.collect(Image, '/f4/segmentation/labels')
    diagnostics = peer.collect(DiagnosticArray, '/diagnostics')
    pub = peer.publisher(Image, '/f4/image')
    rgb, truth = make_scene(np.random.default_rng(4), 240, 320)

    def segmented(frame_id: str) -> bool:
        good = make_image_msg(rgb, 'rgb8')
        good.header.frame_id = frame_id
        return wait_until(lambda: (pub.publish(good),
                                   any(m.header.frame_id == frame_id for _, m in labels))[1],
                          60, period=1.0)
    try:
        assert node.wait_for_output('active:', 120)
        assert peer.wait_for_subscribers(pub)
        assert segmented('before'), node.output[-2000:]
        # Real exhaustion: the node may only grow its address space a little above the steady
        # peak it reached loading the model and segmenting a normal frame.
        limit = _vm(node.proc.pid)['VmPeak'] + HEADROOM
        resource.prlimit(node.proc.pid, resource.RLIMIT_AS, (limit, limit))
        assert resource.prlimit(node.proc.pid, resource.RLIMIT_AS) == (limit, limit)
        huge = make_image_msg(np.random.default_rng(5).integers(
            0, 256, (HUGE, HUGE, 3), np.uint8), 'rgb8')
        huge.header.frame_id = 'huge'
        # Best effort input: published again should one get lost (each takes seconds to fail).
        assert wait_until(lambda: (pub.publish(huge), wait_until(
            lambda: 'inference failed' in node.output or node.proc.poll() is not None, 60))[1],
            300, period=0), node.output[-2000:]
        warning = next(line for line in node.lines if 'inference failed' in line)
        assert 'frame dropped' in warning, warning
        assert "can't allocate memory" in warning or 'out of memory' in warning, warning
        assert node.proc.poll() is None, node.output[-2000:]
        assert wait_until(lambda: int(_camera_status(diagnostics, '/f4/image').get(
            'failed_frames', 0)) >= 1, 30), _camera_status(diagnostics, '/f4/image')
        # Still under the limit, normal frames get labels again.
        assert segmented('after'), node.output[-2000:]
        assert not any(m.header.frame_id == 'huge' for _, m in labels)
        assert _miou(truth, next(m for _, m in labels if m.header.frame_id == 'after')) >= 0.9
        status = _camera_status(diagnostics, '/f4/image')
        assert status['bad_frames'] == '0' and int(status['failed_frames']) >= 1, status
        assert _vm(node.proc.pid)['VmPeak'] <= limit
        assert node.proc.poll() is None
    finally:
        node.stop()
