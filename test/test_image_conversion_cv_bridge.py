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
Our image conversion against cv_bridge, pixel for pixel, in both directions.

Raw images: every supported encoding, with padded rows and big-endian 16-bit data, through
``imgmsg_to_cv2(msg, 'rgb8')`` and through ``cv2_to_imgmsg``; our output messages against
``cv2_to_imgmsg``; compressed images through ``cv2_to_compressed_imgmsg`` and
``compressed_imgmsg_to_cv2``. A difference is a failure; the deliberate ones (bridge_reference,
docs/node.md, "Image conversion and cv_bridge") are asserted as such.
"""

import io

import cv2
from mask2former_ros.messages import image_conversion
from mask2former_ros.messages.image_conversion import (
    compressed_to_rgb, image_to_rgb, labels_to_image, rgb_to_image)
from mask2former_ros_fixtures.bridge_reference import (
    ALIASES, BRIDGE, CvBridgeError, known_name, MISSING, pixel_aligned, reference_rgb, relabelled)
from mask2former_ros_fixtures.image_encoding import make_image_msg
import numpy as np
import PIL.Image
import pytest
from std_msgs.msg import Header
from test_image_conversion import encoding_cases, make_test_image, WIDE

pytestmark = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))

SUPPORTED_ENCODINGS = image_conversion.SUPPORTED_ENCODINGS


def bytes_per_pixel(encoding: str) -> int:
    return image_conversion._layout(encoding).bytes_per_pixel


def raw_cases():
    """Every encoding, padding and byte order of the round trip, plus whole-pixel padding."""
    return encoding_cases(lambda encoding: 5 * bytes_per_pixel(encoding))


@pytest.mark.parametrize(('encoding', 'padding', 'big_endian'), list(raw_cases()))
def test_imgmsg_to_cv2_rgb8_equals_ours(encoding: str, padding: int, big_endian: bool):
    rgb, _ = make_test_image()
    msg = make_image_msg(rgb, encoding, step_padding=padding, big_endian=big_endian)
    ours = image_to_rgb(msg)
    if pixel_aligned(msg, bytes_per_pixel(encoding)):
        np.testing.assert_array_equal(ours, reference_rgb(msg))
    else:
        # cv_bridge shears rows whose padding is not whole pixels; we follow ``step``. The
        # same pixels without padding are the reference, and cv_bridge's sheared result is
        # asserted to differ, so that a fixed cv_bridge shows up here.
        plain = make_image_msg(rgb, encoding, big_endian=big_endian)
        np.testing.assert_array_equal(ours, reference_rgb(plain))
        assert not np.array_equal(reference_rgb(msg), ours)


@pytest.mark.parametrize('encoding', WIDE)
@pytest.mark.parametrize('big_endian', [False, True])
def test_16_bit_samples_differ_from_cv_bridge_by_rounding_only(encoding: str, big_endian: bool):
    # Any 16-bit values (not the value * 257 of make_image_msg): we keep the high byte
    # (v >> 8, a view), cv_bridge scales by 255 / 65535 and rounds: at most 1 apart.
    msg = make_image_msg(make_test_image()[0], encoding, big_endian=big_endian)
    noise = np.random.default_rng(len(encoding)).integers(0, 256, len(msg.data), np.uint8)
    msg.data = (np.frombuffer(msg.data, np.uint8) ^ noise).tobytes()
    ours, theirs = image_to_rgb(msg), reference_rgb(msg)
    difference = np.abs(ours.astype(np.int16) - theirs)
    assert difference.max() == 1 and difference.mean() < 0.5
    if not encoding.startswith('bayer'):  # demosaicing mixes neighbours: only the bound holds
        values = BRIDGE.imgmsg_to_cv2(relabelled(msg, known_name(encoding)))
        channels = values.reshape(*values.shape[:2], -1)
        rgb_order = [0] if channels.shape[2] == 1 else (
            [2, 1, 0] if encoding.startswith('bgr') else [0, 1, 2])
        expected = channels[:, :, rgb_order]
        np.testing.assert_array_equal(ours, np.broadcast_to(expected >> 8, ours.shape))
        np.testing.assert_array_equal(theirs, np.broadcast_to(
            np.rint(expected * (255 / 65535)), ours.shape))


@pytest.mark.parametrize(('encoding', 'big_endian'), [
    (encoding, big_endian) for encoding in SUPPORTED_ENCODINGS
    for big_endian in ((False, True) if encoding in WIDE else (False,))])
def test_cv2_to_imgmsg_messages_decode_like_ours(encoding: str, big_endian: bool):
    rgb, _ = make_test_image()
    ours = image_to_rgb(make_image_msg(rgb, encoding))
    array = BRIDGE.imgmsg_to_cv2(relabelled(make_image_msg(rgb, encoding), known_name(encoding)))
    if big_endian:
        array = array.astype(array.dtype.newbyteorder('>'))
    if encoding in ALIASES:
        with pytest.raises(CvBridgeError):  # cv_bridge 3.4.0 does not know the name
            BRIDGE.cv2_to_imgmsg(array, encoding)
        msg = relabelled(BRIDGE.cv2_to_imgmsg(array, ALIASES[encoding]), encoding)
    else:
        msg = BRIDGE.cv2_to_imgmsg(array, encoding)
    assert bool(msg.is_bigendian) == big_endian
    np.testing.assert_array_equal(image_to_rgb(msg), ours)


def _fields(msg) -> tuple:
    return (msg.encoding, msg.width, msg.height, msg.step, bool(msg.is_bigendian),
            bytes(msg.data), msg.header.frame_id)


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8'])
def test_rgb_to_image_equals_cv2_to_imgmsg(encoding: str):
    rgb, _ = make_test_image()
    header = Header(frame_id='camera')
    array = rgb if encoding == 'rgb8' else np.ascontiguousarray(rgb[:, :, ::-1])
    ours = rgb_to_image(rgb, header, encoding)
    assert _fields(ours) == _fields(BRIDGE.cv2_to_imgmsg(array, encoding, header))
    np.testing.assert_array_equal(BRIDGE.imgmsg_to_cv2(ours), array)
    np.testing.assert_array_equal(BRIDGE.imgmsg_to_cv2(ours, 'rgb8'), rgb)


@pytest.mark.parametrize('dtype', [np.uint8, np.uint16, np.dtype('>u2')])
def test_labels_to_image_equals_cv2_to_imgmsg(dtype):
    labels = np.random.default_rng(0).integers(0, 300 if dtype != np.uint8 else 19,
                                               (48, 80)).astype(dtype)
    header = Header(frame_id='camera')
    ours = labels_to_image(labels, header)
    encoding = 'mono8' if labels.itemsize == 1 else 'mono16'
    native = labels.astype(labels.dtype.newbyteorder('='))
    # cv_bridge writes a big-endian array as is (is_bigendian=1); we always write little endian.
    assert _fields(ours) == _fields(BRIDGE.cv2_to_imgmsg(native, encoding, header))
    np.testing.assert_array_equal(BRIDGE.imgmsg_to_cv2(ours), labels)
    if dtype == np.dtype('>u2'):
        theirs = BRIDGE.cv2_to_imgmsg(labels, encoding, header)
        assert theirs.is_bigendian and not ours.is_bigendian
        np.testing.assert_array_equal(BRIDGE.imgmsg_to_cv2(theirs), BRIDGE.imgmsg_to_cv2(ours))


# --- compressed images -------------------------------------------------------------------

# OpenCV's default WebP quality (101) is lossless; PPM holds BGR only, JPEG no alpha.
LOSSLESS = ('png', 'bmp', 'tiff', 'ppm', 'webp')


@pytest.mark.parametrize(('fmt', 'channels'), [
    (fmt, channels) for fmt in (*LOSSLESS, 'jpg', 'jpeg', 'jp2') for channels in (3, 1, 4)
    if not (fmt == 'ppm' and channels != 3 or fmt.startswith('jp') and channels == 4)])
def test_compressed_both_ways_equals_cv_bridge(fmt: str, channels: int):
    rgb, _ = make_test_image()
    image = {3: cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), 1: cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY),
             4: cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA)}[channels]
    msg = BRIDGE.cv2_to_compressed_imgmsg(image, fmt)
    ours = compressed_to_rgb(msg)
    np.testing.assert_array_equal(ours, BRIDGE.compressed_imgmsg_to_cv2(msg, 'rgb8'))
    if fmt in LOSSLESS:
        expected = rgb if channels != 1 else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        np.testing.assert_array_equal(ours, expected)


def test_compressed_16_bit_png_keeps_the_high_byte_where_cv_bridge_keeps_16_bits():
    rgb, _ = make_test_image()
    wide = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257 + 100
    msg = BRIDGE.cv2_to_compressed_imgmsg(wide, 'png')
    theirs = BRIDGE.compressed_imgmsg_to_cv2(msg, 'rgb8')
    # compressed_imgmsg_to_cv2 labels every decoded image bgr8 and so returns 16-bit "rgb8".
    assert theirs.dtype == np.uint16
    np.testing.assert_array_equal(compressed_to_rgb(msg), (theirs >> 8).astype(np.uint8))


def test_jpeg_exif_orientation_is_ignored_like_cv_bridge():
    rgb, _ = make_test_image(128, 192)
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees"
    buffer = io.BytesIO()
    PIL.Image.fromarray(rgb).save(buffer, 'JPEG', quality=95, progressive=True, exif=exif)
    msg = BRIDGE.cv2_to_compressed_imgmsg(rgb, 'png')  # a CompressedImage to fill
    msg.format = 'jpeg'
    msg.data = buffer.getvalue()
    ours = compressed_to_rgb(msg)
    assert ours.shape == rgb.shape
    np.testing.assert_array_equal(ours, BRIDGE.compressed_imgmsg_to_cv2(msg, 'rgb8'))


@pytest.mark.parametrize('encoding', ['bayer_rggb8', 'bayer_grbg16'])
def test_bayer_images_under_3_pixels_are_black_in_cv_bridge_and_coloured_here(encoding: str):
    rgb = np.empty((2, 6, 3), np.uint8)
    rgb[:] = (200, 100, 50)
    msg = make_image_msg(rgb, encoding)
    assert not reference_rgb(msg).any()  # OpenCV's demosaicing leaves them black
    assert np.abs(image_to_rgb(msg).astype(np.int16) - rgb).max() <= 1
