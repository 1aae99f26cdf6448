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
The serving runtime's ROS-free parts: frame slots, the inference thread, stats, buffers.

Modules: ``frame_slot``, ``inference_worker`` (the one thread that runs the model), ``stats``
and ``large_buffers``. It may import the core's ground floor and the rooms
:mod:`~mask2former_ros.core.backends`, :mod:`~mask2former_ros.core.postprocess` and
:mod:`~mask2former_ros.core.render`; the node, the offline tool, tests and benches may import it
(see docs/architecture.md).
"""
