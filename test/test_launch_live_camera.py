"""
launch_testing: launch/segmentation.launch.py against a synthetic live camera.

Launches the real launch file (model:=<the tiny model trained on synthetic street scenes>,
device:=cpu, image:=/test_camera/image_raw), publishes synthetic frames on that camera topic
from this process and checks that the labels arrive on /segmentation/labels with the
header of the frame they belong to and mostly the right classes; after shutdown, that every
launched process exited cleanly. Needs a ROS 2 install with launch_testing and launch_ros
(run by ``colcon test`` or ``launch_test test/test_launch_live_camera.py``); skipped
otherwise.
"""

import time
import unittest

from mask2former_ros.ros.image_conversion import make_image_msg
from mask2former_ros_fixtures.synthetic import make_scene
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

# Skip (before anything below needs them) where ROS launch is not installed. The submodules
# are imported explicitly: a source tree's launch/ folder can pass for a 'launch' package.
for _module in ('launch', 'launch.actions', 'launch.launch_description_sources',
                'launch_ros', 'launch_testing', 'launch_testing.actions',
                'launch_testing.asserts', 'launch_testing.markers'):
    pytest.importorskip(_module)
launch = pytest.importorskip('launch')
launch_testing = pytest.importorskip('launch_testing')

CAMERA_TOPIC = '/test_camera/image_raw'
LABELS_TOPIC = '/segmentation/labels'
HEIGHT, WIDTH = 128, 256  # the tiny model's training size: small frames, exact labels
TIMEOUT = 180.0  # seconds: loading torch and the model on a slow CI machine


@pytest.mark.launch_test
@launch_testing.markers.keep_alive
def generate_test_description():
    """Launch segmentation.launch.py with the tiny model on the CPU, then start the tests."""
    from pathlib import Path

    from mask2former_ros_fixtures.tiny_model import ensure_tiny_model

    model_dir = ensure_tiny_model()
    launch_file = Path(__file__).resolve().parents[1] / 'launch' / 'segmentation.launch.py'
    segmentation = launch.actions.IncludeLaunchDescription(
        launch.launch_description_sources.PythonLaunchDescriptionSource(str(launch_file)),
        launch_arguments={
            'model': str(model_dir),
            'device': 'cpu',
            'image': CAMERA_TOPIC,
            'image_transport': 'raw',
            'log_level': 'info',
        }.items())
    return launch.LaunchDescription([
        segmentation,
        launch_testing.actions.ReadyToTest(),
    ]), {'model_dir': model_dir}


class TestLiveCamera(unittest.TestCase):
    """Frames published on the camera topic come back as labels with their header."""

    @classmethod
    def setUpClass(cls):
        cls.context = rclpy.Context()
        rclpy.init(context=cls.context)
        cls.node = rclpy.create_node('live_camera_test', context=cls.context)
        cls.executor = SingleThreadedExecutor(context=cls.context)
        cls.executor.add_node(cls.node)

    @classmethod
    def tearDownClass(cls):
        cls.executor.shutdown()
        cls.node.destroy_node()
        rclpy.try_shutdown(context=cls.context)

    def test_labels_arrive_with_the_frame_header(self, proc_output, model_dir):
        received = []
        self.node.create_subscription(
            Image, LABELS_TOPIC, received.append,
            QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        # Best effort, depth 1: what a camera driver typically offers.
        publisher = self.node.create_publisher(
            Image, CAMERA_TOPIC,
            QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        proc_output.assertWaitFor('active:', timeout=TIMEOUT)

        rng = np.random.default_rng(7)
        sent = {}  # (sec, nanosec) -> (frame_id, ground-truth labels)
        match = None
        deadline = time.monotonic() + TIMEOUT
        frame = 0
        while match is None and time.monotonic() < deadline:
            frame += 1
            rgb, truth = make_scene(rng, HEIGHT, WIDTH)
            msg = make_image_msg(rgb, 'rgb8')
            msg.header.stamp.sec, msg.header.stamp.nanosec = 1_000 + frame, 500_000_000
            msg.header.frame_id = f'test_camera_optical_{frame}'
            sent[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = (
                msg.header.frame_id, truth)
            publisher.publish(msg)
            end = time.monotonic() + 0.5
            while match is None and time.monotonic() < end:
                self.executor.spin_once(timeout_sec=0.05)
                for labels in received:
                    key = (labels.header.stamp.sec, labels.header.stamp.nanosec)
                    if key in sent:
                        match = labels, sent[key]
                        break
        self.assertIsNotNone(match, f'no labels for any of {frame} frames on {LABELS_TOPIC} '
                                    f'(model {model_dir})')
        labels, (frame_id, truth) = match
        self.assertEqual(labels.header.frame_id, frame_id)
        self.assertEqual(labels.encoding, 'mono8')
        self.assertEqual((labels.height, labels.width, labels.step), (HEIGHT, WIDTH, WIDTH))
        predicted = np.frombuffer(bytes(labels.data), np.uint8).reshape(HEIGHT, WIDTH)
        accuracy = float(np.mean(predicted == truth))
        self.assertGreater(accuracy, 0.8, 'the tiny model segments synthetic scenes well')


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    """The node stops cleanly when the launch shuts down."""

    def test_exit_codes(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
