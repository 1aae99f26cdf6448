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
Image conversion against cv_bridge: ms per frame for each encoding, in one run.

Ours: ``mask2former_ros.messages.image_conversion`` (``image_to_rgb``, ``compressed_to_rgb``,
``rgb_to_image``, ``labels_to_image``). cv_bridge: ``imgmsg_to_cv2(msg, 'rgb8')``,
``compressed_imgmsg_to_cv2(msg, 'rgb8')`` and ``cv2_to_imgmsg`` on the same messages, timed in
turns; for the names cv_bridge does not convert (uyvy, yuyv, 8UC*, 16UC1) the same bytes under
the name it does (mask2former_ros_fixtures/bridge_reference.py). "copy-free": our result is a
view of the message buffer.

    python bench/bench_conversion.py                      # 1024x2048, 15 rounds
    python bench/bench_conversion.py --size 480x640 --rounds 50 --encodings rgb8 bayer_rggb8
"""

import argparse
import statistics
import sys
import time
from typing import Any, Callable

import cv2
from mask2former_ros.messages.image_conversion import (
    compressed_to_rgb, image_to_rgb, labels_to_image, rgb_to_image, SUPPORTED_ENCODINGS)
from mask2former_ros_fixtures.bridge_reference import BRIDGE, known_name, MISSING, relabelled
from mask2former_ros_fixtures.image_encoding import make_image_msg
from mask2former_ros_fixtures.synthetic import make_scene
import numpy as np
from sensor_msgs.msg import CompressedImage
from std_msgs.msg import Header


def median_ms(ours: Callable[[], Any], theirs: Callable[[], Any],
              rounds: int) -> tuple[float, float]:
    """Return the median ms of both, timed in turns (a busy machine slows both alike)."""
    ours(), theirs()  # warm-up
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for fn, out in ((ours, times[0]), (theirs, times[1])):
            start = time.perf_counter()
            fn()
            out.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times[0]), statistics.median(times[1])


def cases(rgb: np.ndarray, labels: np.ndarray, encodings: list[str]):
    """Yield (name, ours, cv_bridge, ours' result buffer or None) for every case."""
    for encoding in encodings:
        msg = make_image_msg(rgb, encoding)
        theirs = relabelled(msg, known_name(encoding))
        yield (encoding, lambda m=msg: image_to_rgb(m),
               lambda m=theirs: BRIDGE.imgmsg_to_cv2(m, 'rgb8'), msg.data)
    for fmt, params in (('jpeg', [cv2.IMWRITE_JPEG_QUALITY, 90]), ('png', [])):
        msg = CompressedImage(format=fmt)
        msg.data = cv2.imencode(f'.{fmt}', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)[1]
        yield (f'compressed {fmt}', lambda m=msg: compressed_to_rgb(m),
               lambda m=msg: BRIDGE.compressed_imgmsg_to_cv2(m, 'rgb8'), None)
    header = Header(frame_id='camera')
    yield ('out rgb8 (rgb_to_image)', lambda: rgb_to_image(rgb, header),
           lambda: BRIDGE.cv2_to_imgmsg(rgb, 'rgb8', header), None)
    yield ('out mono8 (labels_to_image)', lambda: labels_to_image(labels, header),
           lambda: BRIDGE.cv2_to_imgmsg(labels, 'mono8', header), None)


def main() -> int:
    """Print the table (markdown) of ms per frame, ratio and copy-freeness."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--size', default='1024x2048', help='HxW (default 1024x2048)')
    parser.add_argument('--rounds', type=int, default=15, help='timed calls per case')
    parser.add_argument('--encodings', nargs='*', default=list(SUPPORTED_ENCODINGS))
    args = parser.parse_args()
    if MISSING:
        print(f'bench_conversion: {MISSING}', file=sys.stderr)
        return 1
    height, width = (int(v) for v in args.size.split('x'))
    rgb, labels = make_scene(np.random.default_rng(0), height, width)
    labels = labels.astype(np.uint8)
    print(f'{height}x{width}, median of {args.rounds}, OpenCV {cv2.__version__}, '
          f'cv2.getNumThreads()={cv2.getNumThreads()}')
    print('| case | ours ms | cv_bridge ms | cv_bridge / ours | ours copy-free |')
    print('|---|---:|---:|---:|---|')
    for name, ours, theirs, buffer in cases(rgb, labels, args.encodings):
        ours_ms, theirs_ms = median_ms(ours, theirs, args.rounds)
        shared = '' if buffer is None else (
            'yes' if np.shares_memory(ours(), np.frombuffer(buffer, np.uint8)) else 'no')
        print(f'| {name} | {ours_ms:.2f} | {theirs_ms:.2f} | {theirs_ms / ours_ms:.1f} '
              f'| {shared} |', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
