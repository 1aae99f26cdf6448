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
launch_testing: the installed segmentation.launch.py against a synthetic live camera.

Launches segmentation.launch.py from the install space of a colcon build of this package
(launch_harness; model:=<the tiny model trained on synthetic street scenes>, device:=cpu,
image:=/test_camera/image_raw), publishes synthetic frames on that camera topic from this
process and checks that the node, a launch_ros LifecycleNode that configured and activated
itself (autostart), is ``active`` and that the labels arrive on /segmentation/labels with the
header of the frame they belong to and mostly the right classes; after shutdown, that every
launched process exited cleanly. Runs under pytest (the launch_testing plugin) or
``launch_test``; skipped, saying why, where the launch stack or colcon is missing.
"""

import unittest

import launch_harness
from mask2former_ros_fixtures.image_encoding import make_image_msg
from mask2former_ros_fixtures.synthetic import make_scene
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor

# Without launch_testing (then its pytest plugin is not loaded) this module is skipped here;
# with it, generate_test_description skips when the rest of the stack or colcon is missing.
REASON = launch_harness.missing_launch_stack()
pytest.importorskip('launch_testing', reason=str(REASON))
import launch  # noqa: E402,I100 - after the skip above
import launch.actions  # noqa: E402
import launch.launch_description_sources  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import launch_testing.markers  # noqa: E402
from lifecycle_msgs.srv import GetState  # noqa: E402

CAMERA_TOPIC = '/test_camera/image_raw'
LABELS_TOPIC = '/segmentation/labels'
HEIGHT, WIDTH = 128, 256  # the tiny model's training size: small frames, exact labels
TIMEOUT = 180.0  # seconds: loading torch and the model on a slow CI machine


@pytest.mark.launch_test
@launch_testing.markers.keep_alive
def generate_test_description():
    """Launch segmentation.launch.py with the tiny model on the CPU, then start the tests."""
    from mask2former_ros_fixtures.tiny_model import ensure_tiny_model

    if REASON:
        pytest.skip(REASON)
    launch_file = launch_harness.installed_share() / 'launch' / 'segmentation.launch.py'
    model_dir = ensure_tiny_model()
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
        # launch's SIGINT-to-SIGTERM escalation after 5 s is too short on a machine busy with
        # other work; test_launch_ros2_cli.py checks the Ctrl-C path with the default.
        launch.actions.SetLaunchConfiguration('sigterm_timeout', '20'),
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

    def lifecycle_state(self, node: str) -> str:
        client = self.node.create_client(GetState, f'{node}/get_state')
        self.assertTrue(client.wait_for_service(timeout_sec=30.0))
        future = client.call_async(GetState.Request())
        self.executor.spin_until_future_complete(future, timeout_sec=10.0)
        return future.result().current_state.label

    def test_labels_arrive_with_the_frame_header(self, proc_output, model_dir):
        # Best effort, depth 1: what a camera driver typically offers.
        probe = launch_harness.LabelsProbe(self.node, self.executor, {CAMERA_TOPIC: LABELS_TOPIC},
                                           reliable_input=False)
        proc_output.assertWaitFor('active:', timeout=TIMEOUT)
        self.assertEqual(self.lifecycle_state('/segmentation_node'), 'active')

        rng = np.random.default_rng(7)
        sent = {}  # (sec, nanosec) -> (frame_id, ground-truth labels)

        def frame(topic: str, n: int):
            rgb, truth = make_scene(rng, HEIGHT, WIDTH)
            msg = make_image_msg(rgb, 'rgb8')
            msg.header.stamp.sec, msg.header.stamp.nanosec = 1_000 + n, 500_000_000
            msg.header.frame_id = f'test_camera_optical_{n}'
            sent[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = (
                msg.header.frame_id, truth)
            return msg

        def first_match():
            for labels in probe.received[CAMERA_TOPIC]:
                key = (labels.header.stamp.sec, labels.header.stamp.nanosec)
                if key in sent:
                    return labels, sent[key]
            return None
        frames = probe.exchange(frame, lambda: first_match() is not None, TIMEOUT)
        match = first_match()
        self.assertIsNotNone(match, f'no labels for any of {frames} frames on {LABELS_TOPIC} '
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
