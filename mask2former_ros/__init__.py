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
Mask2Former segmentation for ROS 2 camera topics: the installed runtime (four rooms).

Rooms: :mod:`.core` (the ROS-free ML core), :mod:`.messages` (ROS-free image message
converters), :mod:`.ros` (the ROS adapter and the node) and :mod:`.offline` (``segment_bag``).
The test and demo fixtures are the separate, uninstalled ``mask2former_ros_fixtures`` package.
Anyone may import this package; it holds nothing itself and imports none of its rooms, so
importing it loads neither torch nor ROS (see docs/architecture.md).
"""
