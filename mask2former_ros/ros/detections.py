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
``vision_msgs/Detection2DArray`` of a panoptic or instance result: one detection per segment.

Each :class:`~mask2former_ros.core.results.Segment` becomes a ``Detection2D`` with ``id`` =
its instance id (its value in ``segmentation/instances``), one hypothesis (``class_id`` = the
numeric class id as a string, the key of LabelInfo's ``class_map`` and of the label_info
legend; ``score`` = the segment's score) and a ``bbox`` in input pixels. Pixel ``(u, v)``
covers ``[u, u + 1) x [v, v + 1)`` (pixel-edge convention, as OpenCV rectangles and COCO
boxes), so a segment spanning columns ``x_min..x_max`` gives ``size_x = x_max - x_min + 1``
and ``center.x = x_min + size_x / 2``; ``x_min = center.x - size_x / 2`` exactly.
"""

from typing import Any, Iterable

from mask2former_ros.core.results import Segment

try:  # a ROS package, not on PyPI: see the README for the wheel CI uses
    from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose
    VISION_MSGS_MISSING = ''
except ImportError as exc:
    Detection2D = Detection2DArray = ObjectHypothesisWithPose = None
    VISION_MSGS_MISSING = str(exc) or type(exc).__name__


def detection_array(segments: Iterable[Segment], header: Any) -> Any:
    """Return the ``Detection2DArray`` of ``segments`` with ``header`` (vision_msgs needed)."""
    msg = Detection2DArray(header=header)
    for segment in segments:
        x_min, y_min, x_max, y_max = segment.box
        detection = Detection2D(header=header, id=str(segment.instance_id))
        box = detection.bbox
        box.size_x, box.size_y = float(x_max - x_min + 1), float(y_max - y_min + 1)
        box.center.position.x = x_min + box.size_x / 2.0
        box.center.position.y = y_min + box.size_y / 2.0
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id = str(segment.class_id)
        hypothesis.hypothesis.score = float(segment.score)
        detection.results.append(hypothesis)
        msg.detections.append(detection)
    return msg


def detection_box(detection: Any) -> tuple[int, int, int, int]:
    """Return ``(x_min, y_min, x_max, y_max)``, inclusive pixel bounds, of a ``Detection2D``."""
    box = detection.bbox
    x_min = round(box.center.position.x - box.size_x / 2.0)
    y_min = round(box.center.position.y - box.size_y / 2.0)
    return x_min, y_min, x_min + round(box.size_x) - 1, y_min + round(box.size_y) - 1
