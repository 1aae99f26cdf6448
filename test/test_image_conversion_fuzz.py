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

"""Property-based fuzzing: a conversion returns a correct RGB array or ImageConversionError."""

import collections
import types

import cv2
import hypothesis
import hypothesis.strategies as st
from mask2former_ros.messages import image_conversion
from mask2former_ros.messages.image_conversion import compressed_to_rgb, image_to_rgb
from mask2former_ros_fixtures.bridge_reference import MISSING, reference_rgb
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image


ImageConversionError = image_conversion.ImageConversionError

# Bytes per pixel, written out independently of the module under test.
BYTES_PER_PIXEL = {
    'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4, 'mono8': 1, 'mono16': 2, '8uc1': 1, '8uc3': 3,
    '8uc4': 4, '16uc1': 2, 'rgb16': 6, 'bgr16': 6, 'rgba16': 8, 'bgra16': 8, 'yuv422': 2,
    'uyvy': 2, 'yuv422_yuy2': 2, 'yuyv': 2, 'bayer_rggb8': 1, 'bayer_bggr8': 1,
    'bayer_gbrg8': 1, 'bayer_grbg8': 1, 'bayer_rggb16': 2, 'bayer_bggr16': 2,
    'bayer_gbrg16': 2, 'bayer_grbg16': 2,
}
YUV_ENCODINGS = ('yuv422', 'uyvy', 'yuv422_yuy2', 'yuyv')
UNSUPPORTED = ('', 'rgb', '32FC1', '8UC2', '16SC1', '64FC1', 'bayer_rggb', 'yuv420', 'nv12',
               'jpeg', 'rgb8\x00', 'mono 8')
ENCODINGS = (*image_conversion.SUPPORTED_ENCODINGS, 'RGB8', 'Mono8', ' bgr8 ', *UNSUPPORTED)
MAX_BYTES = 1 << 20
MAX_PIXELS = 1_000_000  # keeps decodes of mutated compressed headers small
CASES: collections.Counter = collections.Counter()


def fuzz_settings(max_examples: int) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=max_examples, deadline=None,
        suppress_health_check=[hypothesis.HealthCheck.too_slow,
                               hypothesis.HealthCheck.data_too_large])


def bytes_per_pixel(encoding: object) -> int | None:
    if not isinstance(encoding, str):
        return None
    return BYTES_PER_PIXEL.get(encoding.strip().lower())


def random_bytes(seed: int, size: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, np.uint8).tobytes()


@st.composite
def raw_images(draw) -> Image:
    source = draw(st.sampled_from(['supported'] * 4 + ['any', 'text']))
    if source == 'supported':
        encoding = draw(st.sampled_from(image_conversion.SUPPORTED_ENCODINGS))
    elif source == 'any':
        encoding = draw(st.sampled_from(ENCODINGS))
    else:
        encoding = draw(st.text(max_size=12))
    shape = draw(st.sampled_from(['small', 'small', 'small', 'wide', 'tall']))
    if shape == 'small':
        width, height = draw(st.integers(0, 40)), draw(st.integers(0, 12))
    elif shape == 'wide':  # up to 8K wide, but only a row or two
        width, height = draw(st.integers(4000, 8192)), draw(st.integers(0, 2))
    else:
        width, height = draw(st.integers(0, 3)), draw(st.integers(1000, 4096))
    row = width * (bytes_per_pixel(encoding) or draw(st.integers(1, 8)))
    step_kind = draw(st.sampled_from(['exact'] * 3 + ['padded'] * 2 + ['short', 'odd', 'any']))
    step = {
        'exact': row,
        'padded': row + draw(st.integers(1, 70)),
        'short': max(0, row - draw(st.integers(1, 12))),
        'odd': row | 1,
        'any': draw(st.integers(0, 2 * row + 16)),
    }[step_kind]
    needed = step * height
    size_kind = draw(st.sampled_from(['exact'] * 3 + ['oversized'] * 2 + ['truncated', 'empty',
                                                                          'any']))
    size = {
        'exact': needed,
        'truncated': max(0, needed - draw(st.integers(1, 64))),
        'oversized': needed + draw(st.integers(1, 100)),
        'empty': 0,
        'any': draw(st.integers(0, 2 * needed + 16)),
    }[size_kind]
    msg = Image(encoding=encoding, width=width, height=height, step=step,
                is_bigendian=draw(st.integers(0, 1)))
    msg.data = random_bytes(draw(st.integers(0, 2**32 - 1)), min(size, MAX_BYTES))
    return msg


def is_well_formed(msg: Image) -> bool:
    """Return True when a correct decoder must accept ``msg`` (the documented contract)."""
    bpp = bytes_per_pixel(msg.encoding)
    if bpp is None or msg.width == 0 or msg.height == 0 or msg.step < msg.width * bpp:
        return False
    if len(msg.data) < msg.step * msg.height:
        return False
    name = msg.encoding.strip().lower()
    if name in ('yuv422', 'uyvy', 'yuv422_yuy2', 'yuyv') and msg.width % 2:
        return False
    return not (name.startswith('bayer_') and min(msg.width, msg.height) < 2)


@fuzz_settings(3000)
@hypothesis.given(raw_images())
def test_raw_images_decode_or_raise_conversion_error(msg: Image):
    try:
        out = image_to_rgb(msg)
    except ImageConversionError as exc:
        CASES['raw: ImageConversionError'] += 1
        assert str(exc)
        assert not is_well_formed(msg), f'well-formed message refused: {exc}'
        return
    CASES['raw: decoded'] += 1
    assert is_well_formed(msg)
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.uint8 and out.shape == (msg.height, msg.width, 3)


EXACT_LAYOUTS = {  # encoding: (bytes per pixel, channel indices giving R, G, B)
    'rgb8': (3, [0, 1, 2]), 'bgr8': (3, [2, 1, 0]), '8UC3': (3, [2, 1, 0]),
    'rgba8': (4, [0, 1, 2]), 'bgra8': (4, [2, 1, 0]), '8UC4': (4, [2, 1, 0]),
    'mono8': (1, [0, 0, 0]), '8UC1': (1, [0, 0, 0]),
}


@fuzz_settings(1000)
@hypothesis.given(
    encoding=st.sampled_from(sorted(EXACT_LAYOUTS)),
    size=st.one_of(st.tuples(st.integers(1, 64), st.integers(1, 16)),
                   st.tuples(st.integers(1, 8192), st.integers(1, 2))),
    padding=st.integers(0, 70), extra=st.integers(0, 100), seed=st.integers(0, 2**32 - 1))
def test_well_formed_8_bit_images_decode_exactly(encoding: str, size: tuple[int, int],
                                                 padding: int, extra: int, seed: int):
    width, height = size
    bpp, channels = EXACT_LAYOUTS[encoding]
    step = width * bpp + padding
    data = random_bytes(seed, step * height + extra)
    msg = Image(encoding=encoding, width=width, height=height, step=step)
    msg.data = data
    rows = np.frombuffer(data, np.uint8)[:step * height].reshape(height, step)
    expected = rows[:, :width * bpp].reshape(height, width, bpp)[:, :, channels]
    np.testing.assert_array_equal(image_to_rgb(msg), expected)
    CASES['raw: exact check'] += 1


@st.composite
def well_formed_images(draw) -> Image:
    """Any supported encoding, random bytes, rows padded by whole pixels, either byte order."""
    encoding = draw(st.sampled_from(image_conversion.SUPPORTED_ENCODINGS))
    bpp = BYTES_PER_PIXEL[encoding.lower()]
    # Bayer: OpenCV leaves images under 3 pixels black, we mirror them (bridge_reference).
    smallest = 3 if encoding.startswith('bayer') else 1
    width = draw(st.integers(smallest, 48))
    if encoding in YUV_ENCODINGS:
        width += width % 2  # 4:2:2 pairs pixels
    height = draw(st.integers(smallest, 12))
    step = (width + draw(st.integers(0, 5))) * bpp  # cv_bridge needs whole-pixel padding
    msg = Image(encoding=encoding, width=width, height=height, step=step,
                is_bigendian=draw(st.integers(0, 1)))
    msg.data = random_bytes(draw(st.integers(0, 2**32 - 1)), step * height)
    return msg


@fuzz_settings(500)
@hypothesis.given(well_formed_images())
def test_random_images_decode_like_cv_bridge(msg: Image):
    if MISSING:
        pytest.skip(MISSING)
    ours = image_to_rgb(msg)
    difference = np.abs(ours.astype(np.int16) - reference_rgb(msg)).max()
    # 16-bit: we keep the high byte, cv_bridge rounds v * 255 / 65535 (at most 1 apart).
    assert difference <= ('16' in msg.encoding), (msg.encoding, msg.width, msg.height, msg.step)
    CASES['raw: equal to cv_bridge'] += 1


WEIRD_VALUES = {
    'encoding': st.one_of(st.none(), st.integers(), st.binary(max_size=6)),
    'width': st.one_of(st.none(), st.integers(-3, -1), st.floats(), st.just(True),
                       st.text(max_size=3), st.integers(2**40, 2**70)),
    'height': st.one_of(st.none(), st.integers(-3, -1), st.floats(), st.just(1.0)),
    'step': st.one_of(st.none(), st.integers(-3, -1), st.floats(), st.text(max_size=3)),
    'data': st.one_of(st.none(), st.integers(), st.text(max_size=8),
                      st.lists(st.integers(-300, 300), min_size=1, max_size=40),
                      st.lists(st.lists(st.integers(0, 255), max_size=3), max_size=3)),
}


@fuzz_settings(1000)
@hypothesis.given(
    encoding=st.sampled_from(['rgb8', 'bgr8', 'mono16', 'yuv422']),
    width=st.sampled_from([2, 4]), height=st.integers(1, 4), padding=st.integers(0, 3),
    broken=st.sets(st.sampled_from(sorted(WEIRD_VALUES)), max_size=2), data=st.data())
def test_fake_messages_with_wrong_field_types(encoding: str, width: int, height: int,
                                              padding: int, broken: set[str],
                                              data: st.DataObject):
    step = width * BYTES_PER_PIXEL[encoding] + padding
    fields = {'encoding': encoding, 'width': width, 'height': height, 'step': step,
              'data': [i % 251 for i in range(step * height)]}
    for name in sorted(broken):
        fields[name] = data.draw(WEIRD_VALUES[name], label=name)
    msg = types.SimpleNamespace(is_bigendian=0, **fields)
    try:
        out = image_to_rgb(msg)
    except ImageConversionError:
        CASES['fake: ImageConversionError'] += 1
        assert broken
        return
    CASES['fake: decoded'] += 1
    assert out.dtype == np.uint8 and out.shape == (height, width, 3)


def _encoded(ext: str, gray: bool, params: tuple[int, ...] = ()) -> bytes:
    rng = np.random.default_rng(7)
    image = cv2.resize(rng.integers(0, 256, (4, 6, 3), np.uint8), (24, 16))
    if gray:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    ok, buffer = cv2.imencode(ext, image, list(params))
    assert ok
    return buffer.tobytes()


VALID_COMPRESSED = {
    'png': _encoded('.png', False), 'png gray': _encoded('.png', True),
    'jpeg': _encoded('.jpg', False), 'jpeg gray': _encoded('.jpg', True),
    'jpeg progressive': _encoded('.jpg', False, (cv2.IMWRITE_JPEG_PROGRESSIVE, 1)),
    'tiff': _encoded('.tiff', False), 'bmp': _encoded('.bmp', False),
}
MAGIC = {'png': b'\x89PNG\r\n\x1a\n', 'jpeg': b'\xff\xd8\xff', 'tiff': b'II*\x00', 'bmp': b'BM'}
FORMATS = ('jpeg', 'png', 'rgb8; jpeg compressed bgr8', 'bgr8; png compressed bgr8',
           'mono8; jpeg compressed ', '', 'tiff', 'garbage')


@st.composite
def compressed_images(draw) -> tuple[CompressedImage, str, str]:
    base_name = draw(st.sampled_from(sorted(VALID_COMPRESSED)))
    base = VALID_COMPRESSED[base_name]
    mode = draw(st.sampled_from(['random', 'valid', 'truncated', 'flipped', 'appended',
                                 'magic prefix']))
    if mode == 'random':
        data = draw(st.binary(max_size=4096))
    elif mode == 'valid':
        data = base
    elif mode == 'truncated':
        data = base[:draw(st.integers(0, len(base) - 1))]
    elif mode == 'flipped':
        mutable = bytearray(base)
        for _ in range(draw(st.integers(1, 8))):
            mutable[draw(st.integers(0, len(base) - 1))] = draw(st.integers(0, 255))
        data = bytes(mutable)
    elif mode == 'appended':
        data = base + draw(st.binary(min_size=1, max_size=64))
    else:
        data = MAGIC[base_name.split()[0]] + draw(st.binary(max_size=512))
    msg = CompressedImage(format=draw(st.sampled_from(FORMATS)))
    msg.data = data
    return msg, mode, base_name


@pytest.mark.filterwarnings('ignore::UserWarning', 'ignore:Image size')  # PIL, corrupt headers
@fuzz_settings(1000)
@hypothesis.given(compressed_images())
def test_compressed_bytes_decode_or_raise_conversion_error(case):
    msg, mode, base_name = case
    try:
        out = compressed_to_rgb(msg, max_pixels=MAX_PIXELS)
    except ImageConversionError as exc:
        CASES['compressed: ImageConversionError'] += 1
        assert str(exc)
        assert mode not in ('valid', 'appended'), f'{mode} {base_name} refused: {exc}'
        return
    CASES['compressed: decoded'] += 1
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8
    assert out.ndim == 3 and out.shape[2] == 3
    assert 0 < out.shape[0] * out.shape[1] <= MAX_PIXELS
    if mode in ('valid', 'appended'):
        assert out.shape == (16, 24, 3)
    if mode == 'valid' and base_name == 'png':
        expected = cv2.imdecode(np.frombuffer(msg.data, np.uint8), cv2.IMREAD_COLOR)
        np.testing.assert_array_equal(out, expected[:, :, ::-1])


def test_zz_fuzz_case_count(record_property):
    """Report how many fuzz cases ran (shown with ``pytest -s``); runs after the fuzz tests."""
    if not CASES:
        pytest.skip('the fuzz tests did not run')
    total = sum(CASES.values())
    record_property('fuzz_cases', total)
    print(f'\nimage conversion fuzz cases: {total} {dict(sorted(CASES.items()))}')
    assert total >= 3000
    for kind in ('raw', 'fake', 'compressed'):  # both outcomes were exercised
        assert CASES[f'{kind}: ImageConversionError'] > 20, kind
        assert CASES[f'{kind}: decoded'] > 20, kind
