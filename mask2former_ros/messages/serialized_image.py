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
Camera messages read straight from their serialized (CDR) bytes with ``rosbags``.

rclpy's ``deserialize_message`` copies a 1024x2048 frame twice (into the C message, then into
an ``array.array``). ``rosbags`` reads a ``memoryview`` of the same bytes and leaves ``data`` a
read-only numpy view on them, which the image conversion reads in place (the node's decode
stage in ``bench/bench_node.py``: 1.7-3.0 ms before, 0.11-0.14 ms after). The same typestore
writes and reads the offline tool's bags.
"""

from typing import Any

from rosbags.typesys import get_typestore, Stores
from rosbags.typesys.store import Typestore
from std_msgs.msg import Header

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE = 'sensor_msgs/msg/CompressedImage'
# rclpy in this environment is Kilted; its message definitions (and type hashes) match.
TYPESTORE_NAME = Stores.ROS2_KILTED

_TYPESTORE: Typestore | None = None


def typestore() -> Typestore:
    """Return the (cached) rosbags typestore of the ROS 2 message definitions."""
    global _TYPESTORE
    if _TYPESTORE is None:
        _TYPESTORE = get_typestore(TYPESTORE_NAME)
    return _TYPESTORE


def read_image(raw: bytes, compressed: bool) -> Any:
    """
    Return the ``Image`` (or ``CompressedImage``) in ``raw`` without copying its data.

    The message's ``data`` is a read-only view on ``raw``. Raises ``rosbags``' ``SerdeError``
    for bytes that are not such a message (truncated, wrong type, bad encapsulation).
    """
    return typestore().deserialize_cdr(memoryview(raw), COMPRESSED_IMAGE if compressed
                                       else IMAGE)


def ros_header(header: Any) -> Header:
    """Return an rclpy ``std_msgs/Header`` equal to a ``rosbags`` one."""
    out = Header(frame_id=header.frame_id)
    out.stamp.sec = header.stamp.sec
    out.stamp.nanosec = header.stamp.nanosec
    return out
