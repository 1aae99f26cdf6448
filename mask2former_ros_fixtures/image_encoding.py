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
Test and benchmark encoders: any sensor_msgs/Image encoding the node decodes, from an RGB array.

The inverse of :func:`mask2former_ros.messages.image_conversion.image_to_rgb`, for building
input messages: mono uses BT.601 luma, 16-bit samples are ``value * 257``, YUV is BT.601
limited-range 4:2:2 and Bayer keeps one channel per filter site.
"""

import array
from typing import Any

import cv2
from mask2former_ros.messages.image_conversion import (
    _check_rgb, _layout, _new_image, _PAD_BYTE, _YUV_CODES, ImageConversionError)
import numpy as np


def _luma(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def _yuv422(rgb: np.ndarray, kind: str) -> np.ndarray:
    # BT.601 limited range, the inverse of OpenCV's COLOR_YUV2RGB_UYVY / _YUYV; chroma is the
    # mean of each horizontal pixel pair.
    f = rgb.astype(np.float32)
    red, green, blue = f[..., 0], f[..., 1], f[..., 2]
    luma = 16.0 + 0.2568 * red + 0.5041 * green + 0.0979 * blue
    u = 128.0 - 0.1482 * red - 0.2910 * green + 0.4392 * blue
    v = 128.0 + 0.4392 * red - 0.3678 * green - 0.0714 * blue
    u = (u[:, 0::2] + u[:, 1::2]) / 2.0
    v = (v[:, 0::2] + v[:, 1::2]) / 2.0
    out = np.empty(rgb.shape[:2] + (2,), np.float32)
    luma_channel, chroma_channel = (1, 0) if kind == 'uyvy' else (0, 1)
    out[:, :, luma_channel] = luma
    out[:, 0::2, chroma_channel] = u
    out[:, 1::2, chroma_channel] = v
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _mosaic(rgb: np.ndarray, cfa: str) -> np.ndarray:
    out = np.empty(rgb.shape[:2], np.uint8)
    for index, colour in enumerate(cfa):
        dy, dx = divmod(index, 2)
        out[dy::2, dx::2] = rgb[dy::2, dx::2, 'rgb'.index(colour)]
    return out


def encode_rgb(rgb: np.ndarray, encoding: str, step_padding: int = 0,
               big_endian: bool = False) -> tuple[bytes, int]:
    """
    Encode an HxWx3 uint8 RGB array as the raw bytes of ``encoding``; return (data, step).

    Test and benchmark helper: mono uses BT.601 luma, 16-bit samples are ``value * 257``,
    YUV is BT.601 limited-range 4:2:2 and Bayer keeps one channel per filter site. Each row
    is followed by ``step_padding`` filler bytes.
    """
    layout = _layout(encoding)
    rgb = _check_rgb(rgb)
    height, width = rgb.shape[:2]
    if step_padding < 0:
        raise ImageConversionError(f'step_padding must be >= 0, got {step_padding}')
    if layout.kind in _YUV_CODES and width % 2:
        raise ImageConversionError(f'{encoding!r} (YUV 4:2:2) needs an even width, got {width}')
    kind = layout.kind
    if kind == 'mono':
        pixels = _luma(rgb)
    elif kind == 'bayer':
        pixels = _mosaic(rgb, layout.cfa)
    elif kind in _YUV_CODES:
        pixels = _yuv422(rgb, kind)
    else:
        pixels = rgb[:, :, ::-1] if kind in ('bgr', 'bgra') else rgb
        if kind in ('rgba', 'bgra'):
            alpha = np.full(rgb.shape[:2] + (1,), 255, np.uint8)
            pixels = np.concatenate([pixels, alpha], axis=2)
    if layout.wide:
        pixels = (pixels.astype(np.uint16) * 257).astype('>u2' if big_endian else '<u2')
    row_bytes = width * layout.bytes_per_pixel
    step = row_bytes + step_padding
    buffer = np.full((height, step), _PAD_BYTE, np.uint8)
    buffer[:, :row_bytes] = np.ascontiguousarray(pixels).view(np.uint8).reshape(height, -1)
    return buffer.tobytes(), step


def make_image_msg(rgb: np.ndarray, encoding: str, header: Any = None,
                   step_padding: int = 0, big_endian: bool = False) -> Any:
    """Build a ``sensor_msgs/Image`` of any supported encoding from an RGB array (tests)."""
    data, step = encode_rgb(rgb, encoding, step_padding, big_endian)
    wide = _layout(encoding).wide
    height, width = rgb.shape[:2]
    raw = array.array('B')
    raw.frombytes(data)
    return _new_image(header, height, width, encoding, step, raw,
                      big_endian=big_endian and wide)
