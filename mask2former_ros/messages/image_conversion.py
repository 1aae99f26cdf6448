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

"""Conversions between ROS image messages and RGB numpy arrays (no cv_bridge needed)."""

import array
import io
from typing import Any, NamedTuple

import cv2
import numpy as np


class ImageConversionError(ValueError):
    """Raised for every image message or array that cannot be converted."""


class _Layout(NamedTuple):
    bytes_per_pixel: int
    wide: bool  # 16 bits per channel (big or little endian, see is_bigendian)
    kind: str  # 'rgb', 'bgr', 'rgba', 'bgra', 'mono', 'uyvy', 'yuyv' or 'bayer'
    cfa: str = ''  # Bayer colour filter pattern, row-major over a 2x2 cell, e.g. 'rggb'


# ROS names the Bayer pattern by the colours of the top-left 2x2 cell; OpenCV's classic codes
# name it by the second row/column, so ROS 'rggb' is OpenCV 'BayerBG' (the same codes
# cv_bridge uses; OpenCV 5 adds the alias COLOR_BayerRGGB2RGB == COLOR_BayerBG2RGB).
_BAYER_CODES = {
    'rggb': cv2.COLOR_BayerBG2RGB,
    'bggr': cv2.COLOR_BayerRG2RGB,
    'gbrg': cv2.COLOR_BayerGR2RGB,
    'grbg': cv2.COLOR_BayerGB2RGB,
}
_YUV_CODES = {'uyvy': cv2.COLOR_YUV2RGB_UYVY, 'yuyv': cv2.COLOR_YUV2RGB_YUYV}

_LAYOUTS: dict[str, _Layout] = {
    'rgb8': _Layout(3, False, 'rgb'),
    'bgr8': _Layout(3, False, 'bgr'),
    'rgba8': _Layout(4, False, 'rgba'),
    'bgra8': _Layout(4, False, 'bgra'),
    'mono8': _Layout(1, False, 'mono'),
    'mono16': _Layout(2, True, 'mono'),
    '8UC1': _Layout(1, False, 'mono'),
    '8UC3': _Layout(3, False, 'bgr'),
    '8UC4': _Layout(4, False, 'bgra'),
    '16UC1': _Layout(2, True, 'mono'),
    'rgb16': _Layout(6, True, 'rgb'),
    'bgr16': _Layout(6, True, 'bgr'),
    'rgba16': _Layout(8, True, 'rgba'),
    'bgra16': _Layout(8, True, 'bgra'),
    'yuv422': _Layout(2, False, 'uyvy'),
    'uyvy': _Layout(2, False, 'uyvy'),
    'yuv422_yuy2': _Layout(2, False, 'yuyv'),
    'yuyv': _Layout(2, False, 'yuyv'),
    **{f'bayer_{cfa}8': _Layout(1, False, 'bayer', cfa) for cfa in _BAYER_CODES},
    **{f'bayer_{cfa}16': _Layout(2, True, 'bayer', cfa) for cfa in _BAYER_CODES},
}
_LAYOUTS_LOWER = {name.lower(): layout for name, layout in _LAYOUTS.items()}

SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_LAYOUTS)

DEFAULT_MAX_PIXELS = 100_000_000
_PAD_BYTE = 0xA5  # row padding written by encode_rgb; non-zero so stray reads show up


def _layout(encoding: Any) -> _Layout:
    layout = None
    if isinstance(encoding, str):
        layout = _LAYOUTS.get(encoding) or _LAYOUTS_LOWER.get(encoding.strip().lower())
    if layout is None:
        raise ImageConversionError(
            f'unsupported encoding {encoding!r}; supported: {", ".join(SUPPORTED_ENCODINGS)}')
    return layout


def _uint(msg: Any, field: str) -> int:
    value = getattr(msg, field, None)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ImageConversionError(f'{field} must be a non-negative integer, got {value!r}')
    return int(value)


def _byte_view(data: Any) -> np.ndarray:
    """Return ``data`` (bytes, array.array, memoryview, sequence of ints) as flat uint8."""
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError, BufferError):
        pass
    try:
        flat = np.asarray(data, dtype=np.uint8)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ImageConversionError(f'data is not a byte buffer: {exc}') from None
    if flat.ndim != 1:
        raise ImageConversionError(f'data must be one-dimensional, got shape {flat.shape}')
    return flat


def image_to_rgb(msg: Any) -> np.ndarray:
    """
    Convert a ``sensor_msgs/Image`` to an HxWx3 uint8 RGB array.

    Layouts that already hold RGB bytes (rgb8, rgba8, the high bytes of rgb16) are returned
    as views on ``msg.data`` without copying: copy the result before writing into it.
    Raises ImageConversionError for any unsupported or malformed message.
    """
    layout = _layout(getattr(msg, 'encoding', None))
    encoding = msg.encoding
    height, width, step = _uint(msg, 'height'), _uint(msg, 'width'), _uint(msg, 'step')
    if width == 0 or height == 0:
        raise ImageConversionError(f'image has zero size (width={width}, height={height})')
    row_bytes = width * layout.bytes_per_pixel
    if step < row_bytes:
        raise ImageConversionError(
            f'step {step} is shorter than width * bytes per pixel = {width} * '
            f'{layout.bytes_per_pixel} = {row_bytes} for encoding {encoding!r}')
    if layout.kind in _YUV_CODES and width % 2:
        raise ImageConversionError(
            f'encoding {encoding!r} (YUV 4:2:2) needs an even width, got {width}')
    if layout.kind == 'bayer' and (width < 2 or height < 2):
        raise ImageConversionError(
            f'Bayer encoding {encoding!r} needs at least 2x2 pixels, got {width}x{height}')
    flat = _byte_view(msg.data)
    needed = step * height
    if flat.size < needed:
        raise ImageConversionError(
            f'truncated data: expected step * height = {step} * {height} = {needed} bytes, '
            f'got {flat.size}')
    rows = flat[:needed].reshape(height, step)[:, :row_bytes]
    high = 0 if msg.is_bigendian else 1  # byte offset of the most significant byte
    try:
        if layout.wide and layout.kind in ('bgr', 'bgra'):
            # One pass that picks the high bytes of R, G, B: the strided view below would be
            # gathered into a copy before cvtColor (twice as slow, bench/bench_conversion.py).
            out = np.empty((height, width, 3), np.uint8)
            cv2.mixChannels([rows.reshape(height, width, layout.bytes_per_pixel)], [out],
                            [4 + high, 0, 2 + high, 1, high, 2])
            return out
        if layout.wide:
            # Keep the most significant byte of each 16-bit sample (value >> 8) as a view.
            rows = rows[:, high::2]
        return _rows_to_rgb(rows, layout, height, width)
    except cv2.error as exc:
        raise ImageConversionError(
            f'OpenCV failed to convert {encoding!r} {width}x{height}: {exc}') from None


def _rows_to_rgb(rows: np.ndarray, layout: _Layout, height: int, width: int) -> np.ndarray:
    kind = layout.kind
    if kind == 'mono':
        return cv2.cvtColor(rows, cv2.COLOR_GRAY2RGB)
    if kind == 'bayer':
        if height >= 3 and width >= 3:
            return cv2.cvtColor(rows, _BAYER_CODES[layout.cfa])
        # OpenCV leaves images thinner than 3 pixels black; mirroring keeps the CFA phase.
        padded = cv2.copyMakeBorder(rows, 2, 2, 2, 2, cv2.BORDER_REFLECT_101)
        return cv2.cvtColor(padded, _BAYER_CODES[layout.cfa])[2:-2, 2:-2]
    if kind in _YUV_CODES:
        return cv2.cvtColor(rows.reshape(height, width, 2), _YUV_CODES[kind])
    pixels = rows.reshape(height, width, -1)
    if kind in ('rgb', 'rgba'):
        return pixels[:, :, :3]
    if kind == 'bgr':
        return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB)


_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_JPEG_SIGNATURE = b'\xff\xd8\xff'
# Start-of-frame markers SOF0..SOF15 (0xC4 DHT, 0xC8 JPG and 0xCC DAC are not frames).
_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Other formats both PIL (header) and OpenCV (pixels) read; JPEG and PNG are parsed here.
_PIL_FORMATS = ('TIFF', 'WEBP', 'BMP', 'PPM', 'JPEG2000')


def _png_size(raw: bytes) -> tuple[int, int]:
    if len(raw) < 24 or raw[12:16] != b'IHDR':
        raise ImageConversionError('PNG data has no IHDR header (corrupt or truncated)')
    return int.from_bytes(raw[16:20], 'big'), int.from_bytes(raw[20:24], 'big')


def _jpeg_header(raw: bytes) -> tuple[int, int, int]:
    """Return (width, height, offset of the first start-of-scan) of a JPEG stream."""
    pos, end, size = 2, len(raw), None
    while pos + 4 <= end and raw[pos] == 0xFF:
        marker = raw[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
        elif marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
        elif marker == 0xD9:  # end of image before any scan
            break
        elif marker == 0xDA:
            if size is None:
                break
            return size[0], size[1], pos
        else:
            length = int.from_bytes(raw[pos + 2:pos + 4], 'big')
            if marker in _JPEG_FRAME_MARKERS and size is None:
                if length < 7 or pos + 9 > end:
                    break
                size = (int.from_bytes(raw[pos + 7:pos + 9], 'big'),
                        int.from_bytes(raw[pos + 5:pos + 7], 'big'))
            if length < 2:
                break
            pos += 2 + length
    if size is None:
        raise ImageConversionError('JPEG data has no frame header (corrupt or truncated)')
    raise ImageConversionError('JPEG data has no start of scan (corrupt or truncated)')


def _probe_size(raw: bytes, max_pixels: int) -> tuple[str, int, int]:
    """Return (format, width, height) from the image header without decoding pixels."""
    if raw.startswith(_PNG_SIGNATURE):
        return ('PNG', *_png_size(raw))
    if raw.startswith(_JPEG_SIGNATURE):
        width, height, scan = _jpeg_header(raw)
        # Stuffing keeps markers out of entropy-coded data, so a complete stream has an
        # end-of-image marker after its first scan (an EXIF thumbnail's sits before it).
        if raw.find(b'\xff\xd9', scan) < 0:
            raise ImageConversionError(
                'truncated JPEG: no end-of-image marker after the start of scan')
        return 'JPEG', width, height
    from PIL import Image as PilImage
    try:
        with PilImage.open(io.BytesIO(raw), formats=_PIL_FORMATS) as probe:
            width, height = probe.size
            return str(probe.format), int(width), int(height)
    except (PilImage.DecompressionBombError, PilImage.DecompressionBombWarning) as exc:
        raise ImageConversionError(
            f'compressed image is too large for max_pixels={max_pixels}: {exc}') from None
    except Exception as exc:  # noqa: BLE001 - PIL raises many types on hostile headers
        raise ImageConversionError(
            f'compressed data is not a recognised image ({type(exc).__name__}: {exc})') from None


_IMREAD_RGB = getattr(cv2, 'IMREAD_COLOR_RGB', None)  # OpenCV >= 4.11 decodes to RGB


def compressed_to_rgb(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """
    Decode a ``sensor_msgs/CompressedImage`` (JPEG, PNG, ...) to an HxWx3 uint8 RGB array.

    The header is read first (JPEG and PNG here, other formats with PIL) and images over
    ``max_pixels`` are refused before any pixel memory is allocated. EXIF orientation is
    ignored, as in image_transport.
    """
    fmt = getattr(msg, 'format', '')
    if isinstance(fmt, str) and 'compresseddepth' in fmt.lower():
        raise ImageConversionError(f'compressedDepth images are not colour images: {fmt!r}')
    flat = _byte_view(getattr(msg, 'data', None))
    if flat.size == 0:
        raise ImageConversionError(f'compressed image (format {fmt!r}) has empty data')
    raw = flat.tobytes()
    kind, width, height = _probe_size(raw, max_pixels)
    if width <= 0 or height <= 0:
        raise ImageConversionError(f'compressed image header has zero size {width}x{height}')
    if width * height > max_pixels:
        raise ImageConversionError(
            f'compressed image is {width}x{height} = {width * height} pixels, over the '
            f'limit of max_pixels={max_pixels} (decompression bomb?)')
    flags = cv2.IMREAD_IGNORE_ORIENTATION | (
        cv2.IMREAD_COLOR if _IMREAD_RGB is None else _IMREAD_RGB)
    try:
        decoded = cv2.imdecode(flat, flags)
    except cv2.error as exc:
        raise ImageConversionError(f'OpenCV failed to decode {kind} data: {exc}') from None
    if decoded is None:
        raise ImageConversionError(
            f'OpenCV could not decode the {kind} data (format {fmt!r}, {flat.size} bytes)')
    if (decoded.dtype != np.uint8 or decoded.ndim != 3 or decoded.shape[2] != 3
            or decoded.shape[0] * decoded.shape[1] > max_pixels):
        raise ImageConversionError(
            f'unexpected decoded image {decoded.shape} {decoded.dtype} from {kind} data')
    if _IMREAD_RGB is None:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    return decoded


def stamp_ns(header: Any) -> int:
    """Return a ``std_msgs/Header`` stamp in integer nanoseconds (0 for an unset stamp)."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _check_rgb(rgb: Any) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 \
            or rgb.shape[2] != 3:
        shape = getattr(rgb, 'shape', None)
        dtype = getattr(rgb, 'dtype', type(rgb).__name__)
        raise ImageConversionError(f'expected an HxWx3 uint8 array, got {shape} {dtype}')
    return rgb


def _to_byte_array(pixels: np.ndarray) -> array.array:
    # One memcpy into an array.array('B'): rclpy's setter keeps it as is when it checks fields
    # and copies it with a fast memcpy otherwise (bytes would be checked element by element).
    data = array.array('B')
    data.frombytes(np.ascontiguousarray(pixels).view(np.uint8))
    return data


def _new_image(header: Any, height: int, width: int, encoding: str, step: int,
               data: array.array, big_endian: bool = False) -> Any:
    from sensor_msgs.msg import Image
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height = height
    msg.width = width
    msg.encoding = encoding
    msg.is_bigendian = int(big_endian)
    msg.step = step
    msg.data = data
    return msg


def rgb_to_image(rgb: np.ndarray, header: Any, encoding: str = 'rgb8') -> Any:
    """Build a ``sensor_msgs/Image`` (rgb8 or bgr8) from an HxWx3 uint8 RGB array."""
    rgb = _check_rgb(rgb)
    if encoding == 'bgr8':
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    elif encoding == 'rgb8':
        pixels = rgb
    else:
        raise ImageConversionError(f'rgb_to_image supports rgb8 and bgr8, not {encoding!r}')
    height, width = rgb.shape[:2]
    return _new_image(header, height, width, encoding, width * 3, _to_byte_array(pixels))


def labels_to_image(labels: np.ndarray, header: Any) -> Any:
    """Build a mono8 (uint8 labels) or mono16 (uint16, little endian) ``sensor_msgs/Image``."""
    if not isinstance(labels, np.ndarray) or labels.ndim != 2 or labels.dtype.kind != 'u' \
            or labels.dtype.itemsize > 2:
        shape = getattr(labels, 'shape', None)
        dtype = getattr(labels, 'dtype', type(labels).__name__)
        raise ImageConversionError(
            f'expected an HxW uint8 or uint16 label array, got {shape} {dtype}')
    height, width = labels.shape
    if labels.dtype.itemsize == 1:
        return _new_image(header, height, width, 'mono8', width, _to_byte_array(labels))
    return _new_image(header, height, width, 'mono16', width * 2,
                      _to_byte_array(labels.astype('<u2', copy=False)))
