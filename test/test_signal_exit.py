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

"""The node's spin ends on a shutdown by signal even when rclpy's wake-up came first."""

import threading
import time

from mask2former_ros.ros.signal_exit import SHUTDOWN_CHECK_S, spin
import rclpy
from rclpy.executors import SingleThreadedExecutor


def test_spin_ends_when_the_wake_up_came_before_the_shutdown():
    """
    The rclpy signal thread wakes the executor, then shuts the context down (no Python callback).

    A bag replay's node (simulated time, /clock stopped: no timer fires) hung in
    ``executor.spin()`` after launch's one SIGINT until launch escalated to SIGTERM 15 s later:
    the executor had woken, found the context still up and waited again. Here the two steps
    are done in that order by hand, on a node without timers.
    """
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('spin_probe', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinning = threading.Thread(target=spin, args=(executor, context), daemon=True)
    try:
        spinning.start()
        time.sleep(0.3)
        executor._sigint_gc.trigger()  # what rclpy's signal thread does first
        time.sleep(0.3)  # the executor woke, saw the context up, and waits again
        context._Context__context.shutdown()  # then this: the rcl context only, no callbacks
        spinning.join(10 * SHUTDOWN_CHECK_S)
        assert not spinning.is_alive(), 'the spin did not end after the shutdown'
    finally:
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown(context=context)
