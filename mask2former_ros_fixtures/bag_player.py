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
Publish a rosbag2 bag's messages over ROS 2 at their recorded timing (a small `ros2 bag play`).

Used by the demo, tests and benchmarks where rosbag2 is not installed. Messages are published
as the recorded CDR bytes (``rclpy.serialization``), so stamps and payloads are unchanged.
"""

import importlib
from pathlib import Path
import time
from typing import Callable, Protocol

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from rosbags.highlevel import AnyReader


def get_message(msgtype: str) -> type:
    """Return the rclpy message class of a type name like ``sensor_msgs/msg/Image``."""
    package, _, name = msgtype.split('/')
    return getattr(importlib.import_module(f'{package}.msg'), name)


def read_messages(bag: Path, topics: list[str]) -> list[tuple[int, str, str, bytes]]:
    """Return (log time ns, topic, type, raw CDR) of ``topics`` in bag order."""
    with AnyReader([Path(bag)]) as reader:
        connections = [c for c in reader.connections if c.topic in topics]
        missing = set(topics) - {c.topic for c in connections}
        if missing:
            raise ValueError(f"topics {sorted(missing)} not in bag '{bag}'")
        return [(t, c.topic, c.msgtype, bytes(raw))
                for c, t, raw in reader.messages(connections=connections)]


class StopSignal(Protocol):
    """What the player reads to stop early: a ``threading.Event`` or any flag with ``is_set``."""

    def is_set(self) -> bool:
        """Return True once playback should stop."""


class BagPlayer:
    """Publishes recorded messages with the bag's relative timing, scaled by ``rate``."""

    def __init__(self, node: Node, bag: Path, topics: list[str],
                 remap: dict[str, str] | None = None, reliable: bool = True) -> None:
        """Read the bag and create one publisher per topic (reliable, like camera drivers)."""
        self.node = node
        self.messages = read_messages(bag, topics)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE if reliable
                         else ReliabilityPolicy.BEST_EFFORT)
        self.publishers = {}
        for _, topic, msgtype, _ in self.messages:
            if topic not in self.publishers:
                cls = get_message(msgtype)
                self.publishers[topic] = (node.create_publisher(
                    cls, (remap or {}).get(topic, topic), qos), cls)

    def wait_for_subscribers(self, timeout: float = 30.0,
                             stop: StopSignal | None = None) -> bool:
        """Wait until every publisher has a subscriber (or ``stop`` is set)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (stop is not None and stop.is_set()):
            if all(p.get_subscription_count() for p, _ in self.publishers.values()):
                return True
            time.sleep(0.05)
        return False

    def play(self, rate: float = 1.0, on_publish: Callable[[str, object], None] | None = None,
             stop: StopSignal | None = None) -> int:
        """Publish every message at its recorded offset / ``rate``; return the count."""
        if not self.messages:
            return 0
        t0_bag, t0 = self.messages[0][0], time.monotonic()
        count = 0
        for log_time, topic, _, raw in self.messages:
            if stop is not None and stop.is_set():
                break
            delay = t0 + (log_time - t0_bag) / 1e9 / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            publisher, cls = self.publishers[topic]
            publisher.publish(raw)  # the recorded CDR bytes, not re-serialised
            count += 1
            if on_publish:
                on_publish(topic, deserialize_message(raw, cls))
        return count
