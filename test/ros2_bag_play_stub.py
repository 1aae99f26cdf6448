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
Stand-in for ``ros2 bag play`` in the launch tests (rosbag2 is not installable from PyPI).

Takes the arguments bag_replay.launch.py gives the player (``<bag> --clock [Hz] --rate R
--disable-keyboard-controls [--loop] [--remap from:=to ...]``), publishes the bag's time on
/clock and its messages at their recorded timing (mask2former_ros_fixtures.bag_player), and
exits 0 at the end of the bag, or never with ``--loop``. Unlike ``ros2 bag play`` it first
waits (``--wait-for-subscribers`` seconds) until every topic has a subscriber, so that a test
need not guess how long the node takes to load its model.

SIGINT and SIGTERM (Ctrl-C under ``ros2 launch`` delivers SIGINT twice: from the terminal's
process group and forwarded by launch) only set a stop flag: rclpy's handlers, which chain to
ours, shut the context down, the player ends at its next message, cleans up and exits 0
(ignoring further signals, as the node does). A
KeyboardInterrupt, raised wherever the main thread happened to be, used to escape from the
cleanup (e.g. ``destroy_node``) as a traceback.

The flag is :class:`StopFlag`, not a ``threading.Event``: ``Event.set`` takes a lock that is not
reentrant, and a Python signal handler runs in the main thread between any two bytecodes, also
inside an ``Event.set`` of the main thread or of the handler for the previous signal. The
second ``set`` then waited for a lock its own thread held, and the player hung (5 of 75 double
Ctrl-Cs under 3 busy loops; 4 of 15 streams of SIGINTs).
"""

import argparse
from pathlib import Path
import signal
import sys
import threading
import time

from mask2former_ros.ros.signal_exit import exit_after_signal
from mask2former_ros_fixtures.bag_player import BagPlayer
import rclpy
from rosbags.highlevel import AnyReader
from rosgraph_msgs.msg import Clock


class StopFlag:
    """A stop flag that a signal handler may set: one attribute store, no lock."""

    def __init__(self) -> None:
        """Create an unset flag."""
        self._set = False

    def trip(self) -> None:
        """Set the flag (safe in a signal handler, also while another ``trip`` runs)."""
        self._set = True

    def is_set(self) -> bool:
        """Return whether the flag is set."""
        return self._set

    def wait(self, timeout: float) -> bool:
        """Sleep ``timeout`` seconds unless the flag is set; return whether it is set."""
        if not self._set:
            time.sleep(timeout)
        return self._set


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse the ``ros2 bag play`` options bag_replay.launch.py uses."""
    parser = argparse.ArgumentParser(prog='ros2_bag_play_stub')
    parser.add_argument('bag')
    parser.add_argument('--clock', nargs='?', type=float, const=40.0, default=0.0)
    parser.add_argument('--rate', type=float, default=1.0)
    parser.add_argument('--loop', action='store_true')
    parser.add_argument('--disable-keyboard-controls', action='store_true')
    parser.add_argument('--remap', nargs='+', default=[])
    parser.add_argument('--wait-for-subscribers', type=float, default=120.0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Play the bag; return 0 at its end."""
    args = parse(sys.argv[1:] if argv is None else argv)
    remap = dict(rule.split(':=', 1) for rule in args.remap)
    with AnyReader([Path(args.bag)]) as reader:
        topics = sorted({connection.topic for connection in reader.connections})
    stop = StopFlag()
    for sig in (signal.SIGINT, signal.SIGTERM):  # before init: rclpy's handlers chain to it
        signal.signal(sig, lambda _signum, _frame: stop.trip())
    rclpy.init(args=['--ros-args'])
    node = rclpy.create_node('rosbag2_player')
    clock_thread: threading.Thread | None = None
    try:
        player = BagPlayer(node, Path(args.bag), topics, remap=remap)
        start_ns = player.messages[0][0]
        if args.clock > 0:
            clock_pub = node.create_publisher(Clock, '/clock', 10)
            started = time.monotonic()

            def publish_clock() -> None:
                while not stop.wait(1.0 / args.clock):
                    msg = Clock()
                    now = start_ns + int((time.monotonic() - started) * args.rate * 1e9)
                    msg.clock.sec, msg.clock.nanosec = divmod(now, 1_000_000_000)
                    try:
                        clock_pub.publish(msg)
                    except Exception:
                        if rclpy.ok():
                            raise
                        return  # the context went down (a signal): end quietly
            clock_thread = threading.Thread(target=publish_clock, daemon=True)
            clock_thread.start()
        print(f'ros2_bag_play_stub: waiting for subscribers of {topics}', flush=True)
        if not player.wait_for_subscribers(args.wait_for_subscribers, stop=stop):
            print('ros2_bag_play_stub: no subscriber; playing anyway', flush=True)
        passes = 0
        while not stop.is_set():
            passes += 1
            count = player.play(rate=args.rate, stop=stop)
            print(f'ros2_bag_play_stub: pass {passes}: {count} messages', flush=True)
            if not args.loop:
                break
    except Exception:
        if rclpy.ok():
            raise  # a real error, not a publish cut off by a signal that took the context
    finally:
        signalled = stop.is_set()
        stop.trip()
        if clock_thread is not None:  # never destroy the publisher under a publish
            clock_thread.join()
        if signalled:  # rclpy's signal thread shuts the context: let it finish, not race it
            deadline = time.monotonic() + 2.0
            while rclpy.ok() and time.monotonic() < deadline:
                time.sleep(0.01)
        node.destroy_node()
        rclpy.try_shutdown()
        if signalled:  # ignores further signals: one during finalisation would kill us (-2)
            exit_after_signal()
    return 0


if __name__ == '__main__':
    sys.exit(main())
