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

"""The class legend a node publishes: JSON on std_msgs/String, and vision_msgs/LabelInfo."""

import json
from typing import Any

from mask2former_ros.core.results import IGNORE_LABEL
from mask2former_ros.core.results import Segmenter
import numpy as np
from std_msgs.msg import String

try:  # vision_msgs/LabelInfo is the agreed standard where it is installed
    from vision_msgs.msg import LabelInfo, VisionClass
except ImportError:  # not on PyPI: unverified in this repository's tests (see README)
    LabelInfo = VisionClass = None


def legend(engine: Segmenter) -> dict[str, Any]:
    """Class ids, names and colours of a loaded model, with the label encoding."""
    return {'model': engine.config.model, 'ignore_index': IGNORE_LABEL,
            'encoding': 'mono8' if engine.label_dtype == np.uint8 else 'mono16',
            'classes': [{'id': i, 'name': n, 'color': [int(c) for c in engine.palette[i]]}
                        for i, n in enumerate(engine.class_names)]}


def legend_string(engine: Segmenter) -> String:
    """Return the legend as a ``std_msgs/String`` holding JSON."""
    return String(data=json.dumps(legend(engine)))


def vision_label_info(engine: Segmenter, stamp: Any) -> Any:
    """Return the legend as ``vision_msgs/LabelInfo`` (None where vision_msgs is missing)."""
    if LabelInfo is None:
        return None
    msg = LabelInfo()
    msg.header.stamp = stamp
    msg.class_map = [VisionClass(class_id=i, class_name=n)
                     for i, n in enumerate(engine.class_names)]
    msg.threshold = 0.0
    return msg
