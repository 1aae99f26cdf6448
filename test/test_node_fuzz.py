"""Fuzz the node's message handling in-process: any message gives labels or a counted warning."""

import time

from hypothesis import given, HealthCheck, settings, strategies as st
from mask2former_ros.ros.image_conversion import SUPPORTED_ENCODINGS
from mask2former_ros.ros.node import SegmentationNode
import pytest
import rclpy
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image

CASES = {'count': 0}


@pytest.fixture(scope='module')
def node(random_checkpoint):
    context = rclpy.Context()
    rclpy.init(context=context)
    n = SegmentationNode('fuzz_node', context=context, parameter_overrides=[
        Parameter('model', value=str(random_checkpoint)),
        Parameter('autostart', value=False)])
    assert n.trigger_configure() == TransitionCallbackReturn.SUCCESS
    yield n
    n._release()
    n.destroy_node()
    rclpy.try_shutdown(context=context)


def _outcome(node, msg) -> tuple[int, int]:
    camera = node.cameras['']
    before = (camera.bad_frames, camera.output_stats.total)
    node._process({'': (msg, time.monotonic())})
    return (camera.bad_frames - before[0], camera.output_stats.total - before[1])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(encoding=st.sampled_from(list(SUPPORTED_ENCODINGS) + ['32FC1', '', 'jpeg', 'RGB8 ']),
       height=st.integers(0, 40), width=st.integers(0, 40),
       step_delta=st.integers(-8, 16), data_delta=st.integers(-64, 64),
       big_endian=st.booleans(), seed=st.integers(0, 255))
def test_raw_messages_never_escape(node, encoding, height, width, step_delta, data_delta,
                                   big_endian, seed):
    step = max(0, width * 3 + step_delta)
    size = max(0, step * height + data_delta)
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=big_endian,
                step=step, data=bytes((seed + i) % 256 for i in range(size)))
    bad, published = _outcome(node, msg)
    assert bad + published == 1  # exactly one outcome: labels, or a counted bad frame
    CASES['count'] += 1


@settings(max_examples=60, deadline=None)
@given(fmt=st.sampled_from(['jpeg', 'png', 'rgb8; jpeg compressed bgr8', 'tiff', '']),
       data=st.binary(max_size=512))
def test_compressed_messages_never_escape(node, fmt, data):
    bad, published = _outcome(node, CompressedImage(format=fmt, data=data))
    assert bad == 1 and published == 0  # random bytes never decode into an image
    CASES['count'] += 1


def test_fuzz_case_count():
    print(f'node message fuzz cases: {CASES["count"]}')
    assert CASES['count'] >= 200
