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
The segmentation engines: torch eager, ONNX Runtime, the ONNX export and the choice between them.

Modules: ``create`` (the engine of a backend), ``torch_engine``, ``torch_device``,
``torch_compile``, ``onnx_engine``, ``onnx_export``, ``onnx_cache`` and ``serving_graph``. Its
modules may import the core's ground floor, :mod:`~mask2former_ros.core.postprocess` and
:mod:`~mask2former_ros.core.render` (a checkpoint's palette); only ``create`` is imported by the
runtime, the node and ``segment_bag``, and importing ``create`` loads no torch (see
docs/architecture.md).
"""
