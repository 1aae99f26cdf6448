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
ROS image messages without rclpy: decoding, building and reading them from CDR bytes.

Modules: ``image_conversion`` (sensor_msgs Image and CompressedImage to and from numpy,
duck-typed) and ``serialized_image`` (messages read from their serialized bytes with
``rosbags``). It may import the core's ground floor, ``rosbags`` and ROS message types, never
rclpy, :mod:`mask2former_ros.ros`, :mod:`mask2former_ros.offline` or the fixtures; the node,
the offline tool, the fixtures, tests and benches may import it (see docs/architecture.md).
"""
