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
The ROS-free ML core: engine, post-processing, palette, class tables, metrics, frame slot, stats.

Modules: ``engine_config``, ``checkpoint``, ``engine``, ``semantic_postprocess``,
``inference_worker`` (the one torch thread), ``palette``, ``cityscapes``, ``metrics``,
``frame_slot``, ``stats`` and ``large_buffers``. It imports only numpy, torch, transformers and
OpenCV (never ROS, :mod:`mask2former_ros.ros`, :mod:`mask2former_ros.offline` or the fixtures);
every other room, the tests and the benches may import it (see the README, "Architecture").
"""
