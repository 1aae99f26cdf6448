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
Test and demo fixtures: the tiny trained model, synthetic scenes, sample bags, the demo.

Modules: ``tiny_model`` (training and caching the tiny model), ``model_factory``, ``synthetic``
(street scenes with labels), ``sequences`` (moving objects with persistent ids), ``image_encoding``
(RGB to any sensor_msgs/Image encoding), ``hf_reference`` (transformers' own post-processing),
``bridge_reference`` (what cv_bridge does), ``ros_harness`` (a node process and a ROS peer for
tests and benches), ``sample_bag``, ``bag_player`` and ``demo``. Not part of the installed runtime:
it may import everything (the runtime package, torch, ROS), and only the tests, the benches and the
demo may import it; the node and ``segment_bag`` never do (see docs/architecture.md).
"""
