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

"""Tests for ROS image <-> RGB numpy conversion (every encoding, padding, errors, compression)."""

import array
import io
import struct
import subprocess
import sys
import types
from typing import Callable
import zlib

import cv2
from mask2former_ros.messages import image_conversion
from mask2former_ros.messages.image_conversion import (
    compressed_to_rgb, image_to_rgb, labels_to_image, rgb_to_image)
from mask2former_ros_fixtures.image_encoding import encode_rgb, make_image_msg
import numpy as np
import PIL.Image
import pytest
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header


ImageConversionError = image_conversion.ImageConversionError
SUPPORTED_ENCODINGS = image_conversion.SUPPORTED_ENCODINGS

EXACT = ('rgb8', 'bgr8', 'rgba8', 'bgra8', '8UC3', '8UC4', 'rgb16', 'bgr16', 'rgba16', 'bgra16')
MONO = ('mono8', 'mono16', '8UC1', '16UC1')
YUV = ('yuv422', 'uyvy', 'yuv422_yuy2', 'yuyv')
BAYER = tuple(e for e in SUPPORTED_ENCODINGS if e.startswith('bayer_'))
WIDE = ('mono16', '16UC1', 'rgb16', 'bgr16', 'rgba16', 'bgra16') + tuple(
    e for e in BAYER if e.endswith('16'))
# Largest per-channel error allowed on smooth regions (away from patch edges and the border):
# 4:2:2 shares one chroma sample per pixel pair (error grows with the horizontal colour
# gradient, here up to ~10 levels/pixel), and Bayer demosaicing interpolates bilinearly.
YUV_TOLERANCE = 14
BAYER_TOLERANCE = 10
PATCH_COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0),
                 (255, 255, 0), (0, 255, 255), (255, 0, 255)]
PURE = {'red': (255, 0, 0), 'green': (0, 255, 0), 'blue': (0, 0, 255)}


def make_test_image(height: int = 64, width: int = 96,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return a smooth random RGB image with pure-colour patches, and its smooth-region mask."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (height // 32 + 2, width // 32 + 2, 3)).astype(np.float32)
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    rgb = np.clip(np.rint(smooth), 0, 255).astype(np.uint8)
    mask = np.zeros((height, width), bool)
    mask[3:-3, 3:-3] = True
    for index, colour in enumerate(PATCH_COLOURS):
        y, x = 8 + 24 * (index // 4), 8 + 20 * (index % 4)
        rgb[y:y + 10, x:x + 10] = colour
        mask[y - 3:y + 13, x - 3:x + 13] = False
    return rgb, mask


def luma_rgb(rgb: np.ndarray) -> np.ndarray:
    """Return the BT.601 luma of ``rgb`` replicated to three channels."""
    return np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)


def max_error(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> int:
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return int(diff[mask].max() if mask is not None else diff.max())


def bytes_view(msg) -> np.ndarray:
    return np.frombuffer(msg.data, np.uint8)


def raw_msg(encoding: str, width: int, height: int, step: int, data: bytes,
            big_endian: int = 0) -> Image:
    msg = Image(encoding=encoding, width=width, height=height, step=step,
                is_bigendian=big_endian)
    msg.data = data
    return msg


def encoding_cases(extra_padding: Callable[[str], int] | None = None):
    """Yield (encoding, row padding, big endian) for every encoding; ``extra_padding`` adds one."""
    for encoding in SUPPORTED_ENCODINGS:
        paddings = {0, 1, 3, 64} | ({extra_padding(encoding)} if extra_padding else set())
        for padding in sorted(paddings):
            for big_endian in ((False, True) if encoding in WIDE else (False,)):
                yield pytest.param(encoding, padding, big_endian,
                                   id=f'{encoding}-pad{padding}{"-be" if big_endian else ""}')


@pytest.mark.parametrize(('encoding', 'padding', 'big_endian'), list(encoding_cases()))
def test_round_trip_every_encoding(encoding: str, padding: int, big_endian: bool):
    rgb, smooth = make_test_image()
    msg = make_image_msg(rgb, encoding, step_padding=padding, big_endian=big_endian)
    assert (msg.step - padding) % rgb.shape[1] == 0
    assert len(msg.data) == msg.step * msg.height
    out = image_to_rgb(msg)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    if encoding in EXACT:
        np.testing.assert_array_equal(out, rgb)
    elif encoding in MONO:
        np.testing.assert_array_equal(out, luma_rgb(rgb))
    elif encoding in YUV:
        assert max_error(out, rgb, smooth) <= YUV_TOLERANCE
        assert np.abs(out.astype(float) - rgb)[smooth].mean() < 3.0
        # Without chroma detail inside pixel pairs 4:2:2 loses nothing but rounding.
        rgb[:, 1::2] = rgb[:, 0::2]
        pairs = make_image_msg(rgb, encoding, step_padding=padding)
        assert max_error(image_to_rgb(pairs), rgb) <= 2
    else:
        assert encoding in BAYER
        assert max_error(out, rgb, smooth) <= BAYER_TOLERANCE
        assert np.abs(out.astype(float) - rgb)[smooth].mean() < 1.5


def test_encodings_are_all_covered():
    assert set(SUPPORTED_ENCODINGS) == set(EXACT + MONO + YUV + BAYER)
    assert len(SUPPORTED_ENCODINGS) == len(set(SUPPORTED_ENCODINGS))


@pytest.mark.parametrize('encoding', [e for e in SUPPORTED_ENCODINGS if e not in MONO])
@pytest.mark.parametrize('colour', list(PURE))
def test_pure_colour_images_keep_their_colour(encoding: str, colour: str):
    rgb = np.empty((16, 16, 3), np.uint8)
    rgb[:] = PURE[colour]
    out = image_to_rgb(make_image_msg(rgb, encoding))
    assert max_error(out, rgb) <= 3, out[8, 8]


def test_patches_keep_their_colour_in_every_encoding():
    rgb, _ = make_test_image()
    for encoding in SUPPORTED_ENCODINGS:
        out = image_to_rgb(make_image_msg(rgb, encoding))
        for index, colour in enumerate(PATCH_COLOURS):
            y, x = 8 + 24 * (index // 4) + 5, 8 + 20 * (index % 4) + 5
            expected = luma_rgb(rgb)[y, x] if encoding in MONO else colour
            assert max_error(out[y - 2:y + 2, x - 2:x + 2],
                             np.broadcast_to(expected, (4, 4, 3))) <= 3, (encoding, colour)


# Hand-built mosaics (independent of encode_rgb): ROS names the CFA by the top-left 2x2 cell.
@pytest.mark.parametrize('pattern', ['rggb', 'bggr', 'gbrg', 'grbg'])
@pytest.mark.parametrize('colour', list(PURE))
def test_bayer_cfa_convention_matches_ros(pattern: str, colour: str):
    value = dict(zip('rgb', PURE[colour], strict=True))
    cell = np.array([[value[pattern[0]], value[pattern[1]]],
                     [value[pattern[2]], value[pattern[3]]]], np.uint8)
    mosaic = np.tile(cell, (6, 8))
    msg = raw_msg(f'bayer_{pattern}8', 16, 12, 16, mosaic.tobytes())
    out = image_to_rgb(msg)
    np.testing.assert_array_equal(out[2:-2, 2:-2], np.broadcast_to(PURE[colour], (8, 12, 3)))


@pytest.mark.parametrize(('encoding', 'order'), [
    ('yuv422', 'UYVY'), ('uyvy', 'UYVY'), ('yuv422_yuy2', 'YUYV'), ('yuyv', 'YUYV')])
@pytest.mark.parametrize('colour', list(PURE))
def test_yuv422_byte_order_matches_ros(encoding: str, order: str, colour: str):
    red, green, blue = PURE[colour]
    y = round(16 + 0.257 * red + 0.504 * green + 0.098 * blue)
    u = round(128 - 0.148 * red - 0.291 * green + 0.439 * blue)
    v = round(128 + 0.439 * red - 0.368 * green - 0.071 * blue)
    pair = bytes({'Y': y, 'U': u, 'V': v}[c] for c in order)  # one macro-pixel = 2 pixels
    msg = raw_msg(encoding, 8, 2, 16, pair * 8)
    out = image_to_rgb(msg)
    assert max_error(out, np.broadcast_to(PURE[colour], (2, 8, 3))) <= 3, out[0, 0]


def test_mono16_takes_the_high_byte_for_both_endiannesses():
    values = np.array([[0, 255, 256, 0x1234, 0xFF00, 0xFFFF]], np.uint16)
    expected = np.repeat((values >> 8).astype(np.uint8)[:, :, None], 3, axis=2)
    for dtype, big_endian in (('<u2', 0), ('>u2', 1)):
        msg = raw_msg('mono16', 6, 1, 12, values.astype(dtype).tobytes(), big_endian)
        np.testing.assert_array_equal(image_to_rgb(msg), expected)


@pytest.mark.parametrize(('encoding', 'padding'), [
    ('rgb8', 0), ('rgb8', 7), ('rgb8', 64), ('rgba8', 0), ('rgba8', 5), ('rgb16', 2)])
def test_rgb_layouts_are_zero_copy_views(encoding: str, padding: int):
    rgb, _ = make_test_image()
    msg = make_image_msg(rgb, encoding, step_padding=padding)
    out = image_to_rgb(msg)
    assert np.shares_memory(out, bytes_view(msg))
    np.testing.assert_array_equal(out, rgb)


def test_bytes_memoryview_and_oversized_data_are_accepted():
    rgb, _ = make_test_image(8, 10)
    data, step = encode_rgb(rgb, 'rgb8', step_padding=2)
    for payload in (data, memoryview(data), bytearray(data), data + b'trailing junk'):
        msg = types.SimpleNamespace(encoding='rgb8', width=10, height=8, step=step,
                                    is_bigendian=0, data=payload)
        out = image_to_rgb(msg)
        np.testing.assert_array_equal(out, rgb)
        assert np.shares_memory(out, np.frombuffer(payload, np.uint8))
    msg = make_image_msg(rgb, 'bgr8')
    msg.data = bytes(msg.data) + bytes(100)
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)


def test_encoding_names_are_matched_case_insensitively():
    rgb, _ = make_test_image(4, 6)
    msg = make_image_msg(rgb, 'rgb8')
    msg.encoding = 'RGB8'
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)
    msg = make_image_msg(rgb, '8UC3')
    msg.encoding = '8uc3'
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)


@pytest.mark.parametrize('encoding', BAYER)
@pytest.mark.parametrize('shape', [(2, 2), (2, 3), (3, 2), (2, 9), (3, 3), (5, 7), (7, 4)])
def test_small_and_odd_sized_bayer_images_decode(encoding: str, shape: tuple[int, int]):
    rgb = np.empty(shape + (3,), np.uint8)
    rgb[:] = (200, 100, 50)
    out = image_to_rgb(make_image_msg(rgb, encoding))
    assert max_error(out, rgb) <= 1


@pytest.mark.parametrize('shape', [(1, 1), (1, 8), (6, 1)])
def test_bayer_images_one_pixel_thin_are_refused(shape: tuple[int, int]):
    msg = make_image_msg(np.zeros(shape + (3,), np.uint8), 'bayer_rggb8')
    with pytest.raises(ImageConversionError, match='at least 2x2'):
        image_to_rgb(msg)


def _with(msg: Image, **fields) -> Image:
    for name, value in fields.items():
        setattr(msg, name, value)
    return msg


def _rgb_msg(encoding: str = 'rgb8', width: int = 6, height: int = 4) -> Image:
    return make_image_msg(np.zeros((height, width, 3), np.uint8), encoding)


@pytest.mark.parametrize(('make_msg', 'fragments'), [
    (lambda: _with(_rgb_msg(), encoding='32FC1'), ['unsupported encoding', "'32FC1'", 'rgb8',
                                                   'bayer_rggb8', 'yuv422']),
    (lambda: _with(_rgb_msg(), encoding=''), ['unsupported encoding']),
    (lambda: _with(_rgb_msg(), width=0), ['zero size', 'width=0']),
    (lambda: _with(_rgb_msg(), height=0), ['zero size', 'height=0']),
    (lambda: _with(_rgb_msg(), step=17), ['step 17', '18']),
    (lambda: _with(_rgb_msg('mono16'), step=11), ['step 11', '12']),
    (lambda: _with(_rgb_msg(), data=bytes(18 * 4 - 1)), ['truncated', '72', '71']),
    (lambda: _with(_rgb_msg(), height=5), ['truncated', '90', '72']),
    (lambda: _with(_rgb_msg('yuv422', width=6), width=5, step=10), ['even width', '5']),
    (lambda: _with(_rgb_msg('yuv422_yuy2', width=6), width=3, step=12), ['even width']),
])
def test_bad_raw_images_raise_image_conversion_error(make_msg, fragments):
    with pytest.raises(ImageConversionError) as info:
        image_to_rgb(make_msg())
    for fragment in fragments:
        assert fragment in str(info.value)


def test_image_conversion_error_is_a_value_error():
    assert issubclass(ImageConversionError, ValueError)


def test_encode_rgb_layout_and_padding():
    rgb, _ = make_test_image(6, 8)
    data, step = encode_rgb(rgb, 'rgb16', step_padding=3, big_endian=True)
    assert step == 8 * 6 + 3 and len(data) == step * 6
    rows = np.frombuffer(data, np.uint8).reshape(6, step)
    np.testing.assert_array_equal(
        rows[:, :48].copy().view('>u2').reshape(6, 8, 3), rgb.astype(np.uint16) * 257)
    assert (rows[:, 48:] != 0).all()  # padding is a visible filler, not zeros
    with pytest.raises(ImageConversionError, match='even width'):
        encode_rgb(rgb[:, :7], 'yuv422')
    with pytest.raises(ImageConversionError, match='unsupported encoding'):
        encode_rgb(rgb, 'nv12')
    msg = make_image_msg(rgb, 'mono16', header=Header(frame_id='cam'), big_endian=True)
    assert (msg.encoding, msg.width, msg.height, msg.step, msg.is_bigendian) == (
        'mono16', 8, 6, 16, 1)
    assert msg.header.frame_id == 'cam'


# --- compressed images -------------------------------------------------------------------


def compressed(data: bytes, fmt: str = 'jpeg') -> CompressedImage:
    msg = CompressedImage(format=fmt)
    msg.data = data
    return msg


def encode(rgb_or_gray: np.ndarray, ext: str, params: tuple[int, ...] = ()) -> bytes:
    image = rgb_or_gray
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(ext, image, list(params))
    assert ok
    return buffer.tobytes()


def png_bomb(width: int, height: int) -> bytes:
    """Return a small valid-looking PNG that claims ``width`` x ``height`` RGB pixels."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack('>I', len(body)) + kind + body
                + struct.pack('>I', zlib.crc32(kind + body)))
    return (b'\x89PNG\r\n\x1a\n'
            + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(bytes(1 << 16), 9)) + chunk(b'IEND', b''))


def jpeg_with_size(jpeg: bytes, width: int, height: int) -> bytes:
    """Patch the SOF0 frame size of a baseline JPEG."""
    sof = jpeg.index(b'\xff\xc0')
    return jpeg[:sof + 5] + struct.pack('>HH', height, width) + jpeg[sof + 9:]


@pytest.mark.parametrize('fmt', ['png', 'bgr8; png compressed bgr8', 'rgb8; png compressed bgr8',
                                 ''])
def test_png_round_trip_is_exact(fmt: str):
    rgb, _ = make_test_image()
    out = compressed_to_rgb(compressed(encode(rgb, '.png'), fmt))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize('fmt', ['jpeg', 'rgb8; jpeg compressed bgr8',
                                 'bgr8; jpeg compressed bgr8', 'JPEG'])
def test_jpeg_round_trip_is_close(fmt: str):
    rgb, smooth = make_test_image(128, 192)
    out = compressed_to_rgb(compressed(encode(rgb, '.jpg', (cv2.IMWRITE_JPEG_QUALITY, 95)), fmt))
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.abs(out.astype(float) - rgb).mean() < 2.0
    assert max_error(out, rgb, smooth) <= 12
    red_patch = out[8 + 3:8 + 7, 8 + 3:8 + 7]  # the first patch is pure red
    assert max_error(red_patch, np.broadcast_to((255, 0, 0), red_patch.shape)) <= 12


def test_mono_jpeg_and_16_bit_png_decode_to_rgb():
    rgb, _ = make_test_image()
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    out = compressed_to_rgb(compressed(encode(gray, '.jpg', (cv2.IMWRITE_JPEG_QUALITY, 95)),
                                       'mono8; jpeg compressed '))
    assert out.shape == rgb.shape
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    assert np.abs(out[..., 0].astype(float) - gray).mean() < 2.0
    out16 = compressed_to_rgb(compressed(encode(gray.astype(np.uint16) * 257, '.png'), 'png'))
    np.testing.assert_array_equal(out16, luma_rgb(rgb))


@pytest.mark.parametrize(('ext', 'params'), [
    ('.bmp', ()), ('.tiff', ()), ('.ppm', ()), ('.webp', (cv2.IMWRITE_WEBP_QUALITY, 101))])
def test_other_lossless_formats_round_trip_exactly(ext: str, params: tuple[int, ...]):
    rgb, _ = make_test_image()
    out = compressed_to_rgb(compressed(encode(rgb, ext, params), ext[1:]))
    np.testing.assert_array_equal(out, rgb)


def test_progressive_jpeg_with_exif_orientation_is_not_rotated():
    rgb, smooth = make_test_image(128, 192)
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees": image_transport ignores it, so do we
    buffer = io.BytesIO()
    PIL.Image.fromarray(rgb).save(buffer, 'JPEG', quality=95, progressive=True, exif=exif)
    out = compressed_to_rgb(compressed(buffer.getvalue()))
    assert out.shape == rgb.shape
    assert max_error(out, rgb, smooth) <= 12


def bmp_with_size(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    PIL.Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(buffer, 'BMP')
    data = bytearray(buffer.getvalue())
    data[18:26] = struct.pack('<ii', width, height)
    return bytes(data)


@pytest.mark.filterwarnings('ignore:Image size')
@pytest.mark.parametrize(('width', 'height', 'fragment'), [
    (12000, 12000, '12000x12000 = 144000000 pixels'), (20000, 20000, 'too large')])
def test_size_limit_applies_to_formats_probed_with_pil(width: int, height: int, fragment: str):
    with pytest.raises(ImageConversionError, match='max_pixels=100000000') as info:
        compressed_to_rgb(compressed(bmp_with_size(width, height), 'bmp'))
    assert fragment in str(info.value)


def _corrupt_jpeg_header() -> bytes:
    jpeg = encode(make_test_image()[0], '.jpg')
    sof = jpeg.index(b'\xff\xc0')
    return jpeg[:sof] + bytes(64) + jpeg[sof + 64:]  # wipes the frame header and tables


def _corrupt_jpeg_tables() -> bytes:
    jpeg = encode(make_test_image()[0], '.jpg')
    dht = jpeg.index(b'\xff\xc4')
    return jpeg[:dht + 4] + bytes(20) + jpeg[dht + 24:]  # invalid Huffman table


def _jpeg_before_scan() -> bytes:
    jpeg = encode(make_test_image()[0], '.jpg')
    return jpeg[:jpeg.index(b'\xff\xda')]


def _corrupt_png_pixels() -> bytes:
    png = bytearray(encode(make_test_image()[0], '.png'))
    start = png.index(b'IDAT') + 40
    png[start:start + 200] = bytes(200)  # zlib stream and CRC no longer match
    return bytes(png)


@pytest.mark.parametrize(('make_data', 'fmt', 'fragments'), [
    (lambda: b'', 'jpeg', ['empty']),
    (lambda: bytes(np.random.default_rng(1).integers(0, 256, 4096, np.uint8)), 'png',
     ['not a recognised image']),
    (lambda: b'\x89PNG\r\n\x1a\n' + bytes(50), 'png', ['PNG data has no IHDR header']),
    (lambda: b'\xff\xd8\xff' + bytes(50), 'jpeg', ['JPEG data has no frame header']),
    (lambda: b'GIF89a' + bytes(50), 'gif', ['not a recognised image']),
    (_corrupt_jpeg_header, 'jpeg', ['JPEG data has no frame header']),
    (_corrupt_jpeg_tables, 'jpeg', ['could not decode', 'JPEG']),
    (_corrupt_png_pixels, 'png', ['could not decode', 'PNG']),
    (lambda: encode(make_test_image()[0], '.jpg')[:1000], 'jpeg', ['truncated JPEG']),
    (lambda: encode(make_test_image()[0], '.jpg')[:-2], 'jpeg', ['truncated JPEG']),
    (_jpeg_before_scan, 'jpeg', ['no start of scan']),
    (lambda: encode(make_test_image()[0], '.png')[:-200], 'png', ['could not decode']),
    (lambda: png_bomb(12000, 12000), 'png', ['12000x12000', 'max_pixels=100000000']),
    (lambda: png_bomb(60000, 60000), 'png', ['60000x60000', 'max_pixels=100000000']),
    (lambda: jpeg_with_size(encode(make_test_image()[0], '.jpg'), 12000, 12000), 'jpeg',
     ['12000x12000 = 144000000 pixels', 'max_pixels']),
    (lambda: jpeg_with_size(encode(make_test_image()[0], '.jpg'), 65535, 65535), 'jpeg',
     ['65535x65535', 'max_pixels']),
    (lambda: encode(make_test_image()[0], '.png'), '16UC1; compressedDepth png',
     ['compressedDepth']),
])
def test_bad_compressed_images_raise_image_conversion_error(make_data, fmt, fragments):
    with pytest.raises(ImageConversionError) as info:
        compressed_to_rgb(compressed(make_data(), fmt))
    for fragment in fragments:
        assert fragment in str(info.value)


def test_decoding_without_imread_color_rgb(monkeypatch):
    # OpenCV < 4.11 has no IMREAD_COLOR_RGB: decode to BGR and swap channels instead.
    monkeypatch.setattr(image_conversion, '_IMREAD_RGB', None)
    rgb, _ = make_test_image()
    np.testing.assert_array_equal(compressed_to_rgb(compressed(encode(rgb, '.png'), 'png')), rgb)


def test_jpeg_with_trailing_bytes_decodes():
    rgb, _ = make_test_image()
    jpeg = encode(rgb, '.jpg')
    expected = compressed_to_rgb(compressed(jpeg))
    for junk in (b'\x00' * 16, b'\xff\xda\x00\x08junk', b'\xff\xd8\xff\xe0'):
        np.testing.assert_array_equal(compressed_to_rgb(compressed(jpeg + junk)), expected)


def test_max_pixels_is_checked_before_decoding():
    rgb, _ = make_test_image()  # 96 x 64 = 6144 pixels
    data = encode(rgb, '.png')
    with pytest.raises(ImageConversionError, match='96x64 = 6144 pixels'):
        compressed_to_rgb(compressed(data, 'png'), max_pixels=6143)
    np.testing.assert_array_equal(compressed_to_rgb(compressed(data, 'png'), max_pixels=6144),
                                  rgb)


# --- building output messages -------------------------------------------------------------


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8'])
def test_rgb_to_image(encoding: str):
    rgb, _ = make_test_image()
    header = Header(frame_id='camera')
    msg = rgb_to_image(rgb, header, encoding)
    assert isinstance(msg, Image)
    assert msg.header is header
    assert (msg.encoding, msg.width, msg.height, msg.step, msg.is_bigendian) == (
        encoding, 96, 64, 96 * 3, 0)
    assert isinstance(msg.data, array.array) and len(msg.data) == rgb.size
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)
    # A non-contiguous view is accepted too.
    view = rgb[::2, ::3]
    np.testing.assert_array_equal(image_to_rgb(rgb_to_image(view, header, encoding)), view)


def test_rgb_to_image_rejects_bad_input():
    header = Header()
    with pytest.raises(ImageConversionError, match='rgb8 and bgr8'):
        rgb_to_image(np.zeros((2, 2, 3), np.uint8), header, 'mono8')
    with pytest.raises(ImageConversionError, match='HxWx3 uint8'):
        rgb_to_image(np.zeros((2, 2, 4), np.uint8), header)
    with pytest.raises(ImageConversionError, match='HxWx3 uint8'):
        rgb_to_image(np.zeros((2, 2, 3), np.float32), header)


def test_labels_to_image_mono8_and_mono16():
    header = Header(frame_id='camera')
    labels8 = np.random.default_rng(0).integers(0, 19, (5, 7), np.uint8)
    msg = labels_to_image(labels8, header)
    assert msg.header is header
    assert (msg.encoding, msg.width, msg.height, msg.step, msg.is_bigendian) == (
        'mono8', 7, 5, 7, 0)
    np.testing.assert_array_equal(bytes_view(msg).reshape(5, 7), labels8)
    np.testing.assert_array_equal(image_to_rgb(msg)[..., 0], labels8)

    labels16 = np.array([[0, 1, 255], [256, 1000, 65535]], np.uint16)
    msg = labels_to_image(labels16, header)
    assert (msg.encoding, msg.width, msg.height, msg.step, msg.is_bigendian) == (
        'mono16', 3, 2, 6, 0)
    np.testing.assert_array_equal(bytes_view(msg).view('<u2').reshape(2, 3), labels16)
    big = labels_to_image(labels16.astype('>u2'), header)  # non-native input still written LE
    assert bytes(big.data) == bytes(msg.data)
    np.testing.assert_array_equal(labels_to_image(np.asfortranarray(labels16), header).data,
                                  msg.data)


@pytest.mark.parametrize('labels', [
    np.zeros((2, 2), np.int32), np.zeros((2, 2), np.float32), np.zeros((2, 2, 1), np.uint8)])
def test_labels_to_image_rejects_other_arrays(labels: np.ndarray):
    with pytest.raises(ImageConversionError, match='uint8 or uint16'):
        labels_to_image(labels, Header())


def test_module_imports_and_converts_without_ros():
    code = (
        'import sys\n'
        'for name in ("rclpy", "sensor_msgs", "sensor_msgs.msg", "std_msgs", "std_msgs.msg"):\n'
        '    sys.modules[name] = None\n'
        'from types import SimpleNamespace\n'
        'from mask2former_ros.messages.image_conversion import image_to_rgb\n'
        'msg = SimpleNamespace(encoding="bgr8", width=2, height=1, step=6, is_bigendian=0,\n'
        '                      data=bytes([1, 2, 3, 4, 5, 6]))\n'
        'print(image_to_rgb(msg).tolist())\n')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == '[[[3, 2, 1], [6, 5, 4]]]'
