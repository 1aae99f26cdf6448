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
launch_testing: the node as a launch_ros LifecycleNode driven by launch events or a manager.

Two instances of the installed segmentation.launch.py with ``autostart:=false`` (a small
random-weight model on the CPU, each in its own namespace):

- ``/by_launch/segmentation_node`` is brought up by launch itself: a
  ``launch_ros.events.lifecycle.ChangeState`` (configure) event, then an ``OnStateTransition``
  handler that activates it once it is ``inactive``, as launch files that manage lifecycle
  nodes do;
- ``/by_manager/segmentation_node`` is brought up by this test acting as an external lifecycle
  manager (as Nav2's lifecycle_manager does): ``change_state`` service calls, with
  ``get_state`` checks in between, then deactivated again.

Both must end ``active`` and segment frames. The ``autostart:=true`` path (the default) is
covered by test_launch_live_camera.py.
"""

import time
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
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402

BY_LAUNCH = '/by_launch/segmentation_node'
BY_MANAGER = '/by_manager/segmentation_node'
TIMEOUT = 180.0  # seconds: loading torch and the model on a busy CI machine


def _segmentation(namespace: str):
    launch_file = launch_harness.installed_share() / 'launch' / 'segmentation.launch.py'
    return launch.actions.IncludeLaunchDescription(
        launch.launch_description_sources.PythonLaunchDescriptionSource(str(launch_file)),
        launch_arguments={
            'namespace': namespace,
            'image': f'/{namespace}/image_raw',
            'model': str(launch_harness.random_checkpoint()),
            'device': 'cpu',
            'autostart': 'false',
        }.items())


@pytest.mark.launch_test
def generate_test_description():
    """Two lifecycle nodes waiting; launch events bring up the first one."""
    if REASON:
        pytest.skip(REASON)
    from launch_ros.event_handlers import OnStateTransition
    from launch_ros.events.lifecycle import ChangeState as ChangeStateEvent
    from launch_ros.events.lifecycle import StateTransition

    def by_launch(node_action) -> bool:
        return node_action.node_name == BY_LAUNCH

    def transition(transition_id: int) -> launch.actions.EmitEvent:
        return launch.actions.EmitEvent(event=ChangeStateEvent(
            lifecycle_node_matcher=by_launch, transition_id=transition_id))

    return launch.LaunchDescription([
        # launch's SIGINT-to-SIGTERM escalation after 5 s is too short on a machine busy with
        # other work; test_launch_ros2_cli.py checks the Ctrl-C path with the default.
        launch.actions.SetLaunchConfiguration('sigterm_timeout', '20'),
        _segmentation('by_launch'),
        _segmentation('by_manager'),
        launch.actions.RegisterEventHandler(OnStateTransition(
            matcher=lambda event: (isinstance(event, StateTransition)
                                   and event.action.node_name == BY_LAUNCH
                                   and event.goal_state == 'inactive'),
            entities=[launch.actions.LogInfo(msg='by_launch inactive: activating'),
                      transition(Transition.TRANSITION_ACTIVATE)])),
        transition(Transition.TRANSITION_CONFIGURE),
        launch_testing.actions.ReadyToTest(),
    ])


class TestLifecycle(unittest.TestCase):
    """Launch events and an external manager both bring the node up."""

    @classmethod
    def setUpClass(cls):
        cls.context = rclpy.Context()
        rclpy.init(context=cls.context)
        cls.node = rclpy.create_node('lifecycle_launch_test', context=cls.context)
        cls.executor = SingleThreadedExecutor(context=cls.context)
        cls.executor.add_node(cls.node)

    @classmethod
    def tearDownClass(cls):
        cls.executor.shutdown()
        cls.node.destroy_node()
        rclpy.try_shutdown(context=cls.context)

    def call(self, srv_type, name: str, request, timeout: float = TIMEOUT):
        client = self.node.create_client(srv_type, name)
        self.assertTrue(client.wait_for_service(timeout_sec=60.0), f'no service {name}')
        future = client.call_async(request)
        self.executor.spin_until_future_complete(future, timeout_sec=timeout)
        self.assertTrue(future.done(), f'{name} did not answer')
        return future.result()

    def state(self, node: str) -> str:
        return self.call(GetState, f'{node}/get_state', GetState.Request()).current_state.label

    def change(self, node: str, transition_id: int) -> bool:
        request = ChangeState.Request()
        request.transition.id = transition_id
        return self.call(ChangeState, f'{node}/change_state', request).success

    def assert_segments(self, namespace: str) -> None:
        probe = launch_harness.LabelsProbe(self.node, self.executor, {
            f'/{namespace}/image_raw': f'/{namespace}/segmentation/labels'})
        probe.exchange(lambda topic, n: make_image_msg(np.zeros((32, 48, 3), np.uint8), 'rgb8'),
                       None, 60.0)
        self.assertTrue(probe.all_received(), f'no labels on /{namespace}/segmentation/labels')

    def test_external_manager_drives_the_transitions(self):
        self.assertEqual(self.state(BY_MANAGER), 'unconfigured')
        self.assertTrue(self.change(BY_MANAGER, Transition.TRANSITION_CONFIGURE))
        self.assertEqual(self.state(BY_MANAGER), 'inactive')
        self.assertTrue(self.change(BY_MANAGER, Transition.TRANSITION_ACTIVATE))
        self.assertEqual(self.state(BY_MANAGER), 'active')
        self.assert_segments('by_manager')
        self.assertTrue(self.change(BY_MANAGER, Transition.TRANSITION_DEACTIVATE))
        self.assertEqual(self.state(BY_MANAGER), 'inactive')

    def test_launch_events_drive_the_transitions(self, proc_output):
        deadline = time.monotonic() + TIMEOUT
        while self.state(BY_LAUNCH) != 'active' and time.monotonic() < deadline:
            time.sleep(0.5)
        self.assertEqual(self.state(BY_LAUNCH), 'active')
        self.assert_segments('by_launch')


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    """Both nodes stop cleanly when the launch shuts down."""

    def test_exit_codes(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
