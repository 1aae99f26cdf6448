"""Faults over real DDS: dying publishers, format switches, bursts, inference errors."""

import os
from pathlib import Path
import signal
import subprocess
import sys
import textwrap
import time

from mask2former_ros.core.metrics import miou
from mask2former_ros.ros.image_conversion import make_image_msg
from mask2former_ros_fixtures.synthetic import make_scene
import numpy as np
import pytest
from ros_harness import labels_array, NodeProcess, RosPeer, wait_until
from sensor_msgs.msg import Image

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope='module')
def peer():
    p = RosPeer('faults_peer')
    yield p
    p.close()


def _miou(truth: np.ndarray, msg: Image) -> float:
    return miou(truth, labels_array(msg), 19)


PUBLISHER = textwrap.dedent("""
    import sys, time
    import numpy as np, rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from mask2former_ros.ros.image_conversion import make_image_msg
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
            finally:
                driver.send_signal(signal.SIGKILL)  # dies without saying goodbye
                driver.wait()
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
        done = next(t for t, m in labels if m.header.frame_id == 'burst/199')
        assert done - burst_end < 3.0
        assert len(labels) < 150
        assert all(_miou(truth, m) >= 0.9 for _, m in labels[-3:])
        assert node.proc.poll() is None
    finally:
        node.stop()


def test_inference_error_on_one_frame_drops_it_and_continues(peer, tiny_model_dir):
    env = {'PYTHONPATH': os.pathsep.join([str(HERE / 'fault_injection'),
                                          os.environ.get('PYTHONPATH', '')]),
           'MASK2FORMER_TEST_FAULT': 'oom_on_black'}
    node = NodeProcess({'model': str(tiny_model_dir)}, name='oom_node', namespace='/f4',
                       env=env)
    labels = peer.collect(Image, '/f4/segmentation/labels')
    pub = peer.publisher(Image, '/f4/image')
    try:
        assert node.wait_for_output('active:', 120)
        assert peer.wait_for_subscribers(pub)
        black = make_image_msg(np.zeros((240, 320, 3), np.uint8), 'rgb8')
        black.header.frame_id = 'black'
        text = 'inference failed, frame dropped: OutOfMemoryError'
        assert wait_until(lambda: (pub.publish(black), text in node.output)[1], 30,
                          period=1.0), node.output[-2000:]
        rgb, truth = make_scene(np.random.default_rng(4), 240, 320)
        good = make_image_msg(rgb, 'rgb8')
        good.header.frame_id = 'good'
        assert wait_until(lambda: (pub.publish(good),
                                   any(m.header.frame_id == 'good' for _, m in labels))[1],
                          30, period=0.5)
        assert not any(m.header.frame_id == 'black' for _, m in labels)
        assert _miou(truth, next(m for _, m in labels if m.header.frame_id == 'good')) >= 0.9
        assert node.proc.poll() is None
    finally:
        node.stop()
