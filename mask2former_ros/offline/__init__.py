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
Offline segmentation of rosbag2 bags (``segment_bag``): one bag, or a fleet of bags.

Modules: ``errors`` (exit codes, SegmentBagError), ``options`` (the options table), ``bag_io``
(rosbags reading and writing), ``ground_truth``, ``stages`` (per-frame work), ``pipeline``
(prefetch and writer threads), ``run`` (one bag), ``fleet`` and ``driver`` (several bags),
``ray_workers`` (Ray actors), ``summary``, ``report``, ``report_format``, ``progress``,
``tracking_metrics``, ``tracking_report`` and ``cli``. It may import :mod:`mask2former_ros.core`
and :mod:`mask2former_ros.messages` (``rosbags`` reads and writes the bags; never rclpy,
:mod:`mask2former_ros.ros` or the fixtures), and nothing here imports torch until a model is
loaded; the ``segment_bag`` console script, tests and benches may import it (see
docs/architecture.md).
"""

from mask2former_ros.offline.driver import segment_fleet
from mask2former_ros.offline.errors import SegmentBagError
from mask2former_ros.offline.options import FleetOptions, Options
from mask2former_ros.offline.run import segment_bag

__all__ = ['FleetOptions', 'Options', 'SegmentBagError', 'segment_bag', 'segment_fleet']
