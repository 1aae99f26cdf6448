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
cv_bridge as the reference for our image conversion, with its known differences spelled out.

cv_bridge (vision_opencv 3.4.0) and ``mask2former_ros.messages.image_conversion`` agree pixel for
pixel except where cv_bridge cannot convert; :func:`reference_rgb` handles those cases the way
docs/node.md's "Image conversion and cv_bridge" section describes, and checks that cv_bridge
still refuses them (a cv_bridge that learns them fails the tests: then drop the workaround).
"""

import copy
from typing import Any

import numpy as np

try:
    from cv_bridge import CvBridge, CvBridgeError
    BRIDGE: Any = CvBridge()  # loads the C++ module, which needs Debian's OpenCV 4.6 libraries
    MISSING: str | None = None
except ImportError as exc:  # not on PyPI: from ROS_WHEELS_DIR, or a ROS installation
    BRIDGE, CvBridgeError = None, Exception
    MISSING = (f'cv_bridge is not usable ({exc}); scripts/setup.sh installs it from '
               'ROS_WHEELS_DIR and, as root, apt-get install libopencv-core406 '
               'libopencv-imgproc406 libopencv-imgcodecs406')

# Encoding names cv_bridge 3.4.0 does not know (newer sensor_msgs aliases) -> the name it knows
# for the same bytes.
ALIASES = {'uyvy': 'yuv422', 'yuyv': 'yuv422_yuy2'}
# Generic OpenCV types cv_bridge refuses to turn into rgb8 ("not a color format"); we read them
# as OpenCV does (8UC3 = BGR, 8UC4 = BGRA, 1 channel = grey).
GENERIC = {'8UC1': 'mono8', '8UC3': 'bgr8', '8UC4': 'bgra8', '16UC1': 'mono16'}


def known_name(encoding: str) -> str:
    """Return the encoding name cv_bridge converts the same bytes under."""
    return ALIASES.get(encoding, GENERIC.get(encoding, encoding))


def relabelled(msg: Any, encoding: str) -> Any:
    """Return a copy of ``msg`` with another encoding name (the same bytes)."""
    other = copy.copy(msg)
    other.encoding = encoding
    return other


def pixel_aligned(msg: Any, bytes_per_pixel: int) -> bool:
    """
    Return whether cv_bridge reads ``msg``'s rows right.

    ``imgmsg_to_cv2`` views the data as ``step // bytes_per_pixel`` whole pixels per row, so
    a row padding that is not a multiple of the pixel size shears the rows.
    """
    return msg.step % bytes_per_pixel == 0


def reference_rgb(msg: Any) -> np.ndarray:
    """Return cv_bridge's rgb8 conversion of ``msg``, via the name it knows for the bytes."""
    name = known_name(msg.encoding)
    if name != msg.encoding:
        try:
            BRIDGE.imgmsg_to_cv2(msg, 'rgb8')
        except CvBridgeError as exc:
            assert ('Unrecognized image encoding' if msg.encoding in ALIASES
                    else 'is not a color format') in str(exc), exc
        else:
            raise AssertionError(f'cv_bridge now converts {msg.encoding} to rgb8: compare '
                                 'with it directly')
    return BRIDGE.imgmsg_to_cv2(relabelled(msg, name), 'rgb8')
