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
The ROS adapter: the lifecycle node and its parameters, messages, diagnostics and launch helpers.

Modules: ``node`` (lifecycle wiring), ``parameters``, ``inference_stage``, ``output_stage``,
``detections``, ``diagnostics``, ``label_info``, ``signal_exit`` and ``launch_support``. It may
import :mod:`mask2former_ros.core`, :mod:`mask2former_ros.messages`, rclpy and ROS messages
(never :mod:`mask2former_ros.offline` or the fixtures); the launch files, tests and benches
may import it (see docs/architecture.md).
"""
