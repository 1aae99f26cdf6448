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
launch_testing: the installed multi_camera.launch.py serves both cameras of one batched node.

Launches multi_camera.launch.py (cameras:=[front,rear], mode batched, a small random-weight
model on the CPU) from the install space of a colcon build (launch_harness), publishes small
frames on /front/image_raw and /rear/image_raw and checks that labels with each frame's header
arrive on /front/segmentation/labels and /rear/segmentation/labels; after shutdown, that the
node exited cleanly.
"""

import unittest

import launch_harness
from mask2former_ros_fixtures.image_encoding import make_image_msg
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor

REASON = launch_harness.missing_launch_stack()
pytest.importorskip('launch_testing', reason=str(REASON))
import launch  # noqa: E402,I100 - after the skip above
import launch.actions  # noqa: E402
import launch.launch_description_sources  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402

CAMERAS = ('front', 'rear')
HEIGHT, WIDTH = 48, 64
TIMEOUT = 180.0  # seconds: loading torch and the model on a busy CI machine


@pytest.mark.launch_test
def generate_test_description():
    """Launch multi_camera.launch.py for two cameras with a small model on the CPU."""
    if REASON:
        pytest.skip(REASON)
    launch_file = launch_harness.installed_share() / 'launch' / 'multi_camera.launch.py'
    return launch.LaunchDescription([
        # launch's SIGINT-to-SIGTERM escalation after 5 s is too short on a machine busy with
        # other work; test_launch_ros2_cli.py checks the Ctrl-C path with the default.
        launch.actions.SetLaunchConfiguration('sigterm_timeout', '20'),
        launch.actions.IncludeLaunchDescription(
            launch.launch_description_sources.PythonLaunchDescriptionSource(str(launch_file)),
            launch_arguments={
                'cameras': f"[{','.join(CAMERAS)}]",
                'model': str(launch_harness.random_checkpoint()),
                'device': 'cpu',
            }.items()),
        launch_testing.actions.ReadyToTest(),
    ])


class TestMultiCamera(unittest.TestCase):
    """Each camera's frames come back as labels on that camera's topic."""

    @classmethod
    def setUpClass(cls):
        cls.context = rclpy.Context()
        rclpy.init(context=cls.context)
        cls.node = rclpy.create_node('multi_camera_launch_test', context=cls.context)
        cls.executor = SingleThreadedExecutor(context=cls.context)
        cls.executor.add_node(cls.node)

    @classmethod
    def tearDownClass(cls):
        cls.executor.shutdown()
        cls.node.destroy_node()
        rclpy.try_shutdown(context=cls.context)

    def test_both_cameras_are_served(self, proc_output):
        inputs = {f'/{camera}/image_raw': camera for camera in CAMERAS}
        probe = launch_harness.LabelsProbe(self.node, self.executor, {
            topic: f'/{camera}/segmentation/labels' for topic, camera in inputs.items()})
        proc_output.assertWaitFor('active:', timeout=TIMEOUT)

        sent = {camera: set() for camera in CAMERAS}
        rng = np.random.default_rng(3)

        def frame(topic: str, n: int):
            msg = make_image_msg(rng.integers(0, 255, (HEIGHT, WIDTH, 3), np.uint8), 'rgb8')
            msg.header.stamp.sec = n
            msg.header.frame_id = f'{inputs[topic]}_optical'
            sent[inputs[topic]].add((n, msg.header.frame_id))
            return msg

        def matched(camera):
            return any((m.header.stamp.sec, m.header.frame_id) in sent[camera]
                       for m in probe.received[f'/{camera}/image_raw'])
        frames = probe.exchange(frame, lambda: all(map(matched, CAMERAS)), TIMEOUT)
        for camera in CAMERAS:
            self.assertTrue(matched(camera), f'no labels for {camera} after {frames} frames')
            labels = probe.received[f'/{camera}/image_raw'][-1]
            self.assertEqual((labels.height, labels.width), (HEIGHT, WIDTH))


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    """The node stops cleanly when the launch shuts down."""

    def test_exit_codes(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
