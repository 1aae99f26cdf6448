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
The ROS-free ML core: settings, results and class tables on the ground floor, five rooms above.

Modules: ``engine_config`` (settings parsed once: EngineConfig, the parsers, DEFAULT_MODEL),
``results`` (what backends return, IGNORE_LABEL), ``checkpoint`` (loading a checkpoint),
``segmentation_task`` (semantic, panoptic or instance) and ``cityscapes`` (class names, colours,
label ids). Rooms: ``backends``, ``postprocess``, ``evaluation``, ``render`` and ``runtime``. The
ground floor imports only numpy, OpenCV, torch and transformers (never ROS, a room above it,
:mod:`mask2former_ros.ros`, :mod:`mask2former_ros.offline` or the fixtures); every room, the
other packages, the tests and the benches may import it (see docs/architecture.md).
"""
