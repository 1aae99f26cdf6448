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
Evaluation of label maps against ground truth: confusion matrix, mIoU, panoptic quality.

Modules: ``metrics`` and ``panoptic_quality`` (the Cityscapes ids stay on the ground floor,
:mod:`mask2former_ros.core.cityscapes`). It may import only the core's ground floor; the
offline tool, the fixtures, tests and benches may import it (see docs/architecture.md).
"""
