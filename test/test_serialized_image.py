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

"""The node reads camera messages from rclpy's serialized bytes with rosbags, without a copy."""

from hypothesis import given, settings, strategies as st
from mask2former_ros.messages.image_conversion import compressed_to_rgb, image_to_rgb
from mask2former_ros.messages.serialized_image import read_image, ros_header
import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.serde import SerdeError
from sensor_msgs.msg import CompressedImage, Image


def _image(height: int, width: int, encoding: str, channels: int, pad: int, seed: int,
           frame_id: str, sec: int, nanosec: int) -> Image:
    rng = np.random.default_rng(seed)
    msg = Image(height=height, width=width, encoding=encoding, step=width * channels + pad)
    msg.data = rng.integers(0, 256, msg.step * height, dtype=np.uint8).tobytes()
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
    return msg


@settings(max_examples=40, deadline=None)
@given(height=st.integers(1, 9), width=st.integers(1, 9), pad=st.integers(0, 5),
       encoding=st.sampled_from([('rgb8', 3), ('bgr8', 3), ('mono8', 1), ('rgba8', 4)]),
       seed=st.integers(0, 2**16), frame_id=st.text(max_size=12),
       sec=st.integers(0, 2**31 - 1), nanosec=st.integers(0, 999_999_999))
def test_read_image_matches_rclpy(height, width, pad, encoding, seed, frame_id, sec, nanosec):
    msg = _image(height, width, encoding[0], encoding[1], pad, seed, frame_id, sec, nanosec)
    raw = serialize_message(msg)
    ours, theirs = read_image(raw, compressed=False), deserialize_message(raw, Image)
    for name in ('height', 'width', 'encoding', 'step', 'is_bigendian'):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert bytes(ours.data) == bytes(theirs.data)
    assert ros_header(ours.header) == theirs.header
    np.testing.assert_array_equal(image_to_rgb(ours), image_to_rgb(theirs))


def test_pixels_are_a_view_on_the_received_bytes():
    raw = serialize_message(_image(64, 80, 'rgb8', 3, 0, 1, 'cam', 1, 2))
    msg = read_image(raw, compressed=False)
    assert np.shares_memory(msg.data, np.frombuffer(raw, np.uint8))
    assert not msg.data.flags.writeable


def test_compressed_image():
    import cv2
    rgb = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    data = cv2.imencode('.png', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
    raw = serialize_message(CompressedImage(format='png', data=data))
    np.testing.assert_array_equal(compressed_to_rgb(read_image(raw, compressed=True)), rgb)


@pytest.mark.parametrize('cut', ['truncated', 'header only', 'garbage', 'empty', 'wrong type'])
def test_bytes_that_are_not_an_image_raise_serde_error(cut):
    raw = serialize_message(_image(8, 8, 'rgb8', 3, 0, 2, 'cam', 1, 2))
    bad = {'truncated': raw[:-10], 'header only': raw[:40], 'garbage': b'\x00\x01\x00\x00' +
           bytes(range(7)), 'empty': b'',
           'wrong type': serialize_message(CompressedImage(format='png', data=b'x' * 5000))}
    with pytest.raises(SerdeError):
        read_image(bad[cut], compressed=False)
