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

"""The segmentation node over real DDS: node in a subprocess, publishers in this process."""

import json
import signal
import time

from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from mask2former_ros.core.cityscapes import CITYSCAPES_CLASSES, CITYSCAPES_COLORS
from mask2former_ros.core.evaluation.metrics import ConfusionMatrix, miou
from mask2former_ros.messages.image_conversion import image_to_rgb
from mask2former_ros_fixtures.image_encoding import make_image_msg
from mask2former_ros_fixtures.ros_harness import (
    call_service, labels_array, NodeProcess, RosPeer, shm_segments, wait_until, zombie_segments)
from mask2former_ros_fixtures.synthetic import make_scene
import numpy as np
import pytest
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

try:
    from vision_msgs.msg import LabelInfo
    VISION_MSGS_MISSING = ''
except ImportError as exc:  # not on PyPI: from ROS_WHEELS_DIR or a ROS installation
    LabelInfo, VISION_MSGS_MISSING = None, str(exc)

ENCODINGS = ['rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16', '8UC3', 'yuv422', 'uyvy',
             'yuv422_yuy2', 'bayer_rggb8', 'bayer_bggr8', 'bayer_gbrg8', 'bayer_grbg8']
# Encodings that keep colour: labels must match the ground truth. Mono frames lose the colour
# cues the synthetic classes are told apart by, so for them only sizes and headers are checked.
COLOUR_ENCODINGS = [e for e in ENCODINGS if not e.startswith('mono')]
SCENE_SEEDS = (0, 1, 2)


class Session:
    """A running node plus the test peer's publisher and output subscriptions."""

    def __init__(self, peer: RosPeer, node: NodeProcess, transport: str = 'raw',
                 prefix: str = '') -> None:
        self.peer, self.node = peer, node
        topic = f'{prefix}image' + ('/compressed' if transport == 'compressed' else '')
        self.pub = peer.publisher(CompressedImage if transport == 'compressed' else Image,
                                  topic)
        self.labels = peer.collect(Image, f'{prefix}segmentation/labels')
        self.overlay = peer.collect(Image, f'{prefix}segmentation/overlay')
        self.diagnostics = peer.collect(DiagnosticArray, '/diagnostics')
        assert node.wait_for_output('active:', 120), node.output
        assert peer.wait_for_subscribers(self.pub), 'node never subscribed'
        self._frame = 0

    def request(self, msg, timeout: float = 30.0) -> Image:
        """Publish ``msg`` with a unique stamp and frame id; return the labels for it."""
        self._frame += 1
        msg.header.stamp.sec, msg.header.stamp.nanosec = 1_000_000 + self._frame, 123456789
        msg.header.frame_id = f'camera_optical_{self._frame}'
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pub.publish(msg)
            if wait_until(lambda: self._find(msg.header) is not None, 3.0):
                return self._find(msg.header)
        raise AssertionError(f'no labels for frame {self._frame}\n{self.node.output[-3000:]}')

    def _find(self, header):
        for _, out in reversed(self.labels):
            if (out.header.frame_id == header.frame_id
                    and out.header.stamp.sec == header.stamp.sec
                    and out.header.stamp.nanosec == header.stamp.nanosec):
                return out
        return None

    def last_status(self, suffix: str) -> dict[str, str]:
        """Key-values of the newest diagnostics status whose name ends with ``suffix``."""
        for _, array in reversed(self.diagnostics):
            for status in array.status:
                if status.name.endswith(suffix):
                    return {kv.key: kv.value for kv in status.values}
        return {}


@pytest.fixture(scope='module')
def raw_session(peer, tiny_model_dir):
    node = NodeProcess({'model': str(tiny_model_dir), 'qos_reliability': 'best_effort'})
    yield Session(peer, node)
    node.stop()


def scene(seed: int, height: int = 240, width: int = 320):
    return make_scene(np.random.default_rng(seed), height, width)


@pytest.mark.parametrize('encoding', ENCODINGS)
def test_every_encoding_gives_correct_labels_and_header(raw_session, encoding):
    # The same three scenes for every encoding, scored together: a one-frame mIoU swings with
    # classes of a few pixels (a 22-pixel person), which says nothing about the decoding. A
    # wrong decoding (e.g. swapped channels) scores below 0.5.
    cm = ConfusionMatrix(19)
    for seed in SCENE_SEEDS:
        rgb, truth = scene(seed, 240, 320)
        msg = make_image_msg(rgb, encoding, step_padding=0)
        out = raw_session.request(msg)
        assert (out.height, out.width) == (240, 320)
        cm.update(truth, labels_array(out))
    if encoding in COLOUR_ENCODINGS:
        assert cm.miou() >= 0.9, (encoding, cm.summary(list(CITYSCAPES_CLASSES))['per_class_iou'])


@pytest.mark.parametrize('encoding,padding,big_endian', [
    ('rgb8', 64, False), ('bgr8', 3, False), ('mono16', 10, True), ('yuv422', 8, False)])
def test_padded_rows_and_big_endian(raw_session, encoding, padding, big_endian):
    rgb, truth = scene(50 + padding, 200, 300)
    msg = make_image_msg(rgb, encoding, step_padding=padding, big_endian=big_endian)
    labels = labels_array(raw_session.request(msg))
    assert labels.shape == (200, 300)
    # The node's labels for the padded (byte-swapped) frame equal those for the same frame
    # unpadded in little-endian order: ignoring the padding or the byte order changes them.
    plain = make_image_msg(rgb, encoding, step_padding=0, big_endian=False)
    assert plain.step < msg.step
    if encoding == 'mono16':  # make_image_msg repeats the high byte: make the low bytes differ
        noise = np.random.default_rng(padding).integers(0, 256, (200, 300), np.uint8)
        for m in (msg, plain):
            rows = np.frombuffer(bytes(m.data), np.uint8).reshape(200, m.step).copy()
            rows[:, (1 if m.is_bigendian else 0):600:2] = noise
            m.data = rows.tobytes()
        labels = labels_array(raw_session.request(msg))
    np.testing.assert_array_equal(labels, labels_array(raw_session.request(plain)))
    if encoding != 'mono16':
        assert miou(truth, labels, 19) >= 0.9


def test_overlay_has_header_and_blends_palette(raw_session):
    rgb, truth = scene(77)
    out = raw_session.request(make_image_msg(rgb, 'rgb8'))
    assert wait_until(lambda: any(m.header.frame_id == out.header.frame_id
                                  for _, m in raw_session.overlay), 10)
    msg = next(m for _, m in raw_session.overlay if m.header.frame_id == out.header.frame_id)
    assert msg.header.stamp == out.header.stamp and msg.encoding == 'rgb8'
    got = image_to_rgb(msg).astype(int)
    expected = (rgb.astype(int) + CITYSCAPES_COLORS[labels_array(out)].astype(int)) / 2
    assert np.abs(got - expected).max() <= 2


def test_bad_frames_warn_and_good_frames_still_work(raw_session):
    bad = [
        Image(height=10, width=10, encoding='rgb8', step=30, data=b'123'),  # truncated
        Image(height=4, width=4, encoding='32FC1', step=16, data=bytes(64)),  # unsupported
        Image(height=0, width=0, encoding='rgb8', step=0, data=b''),  # zero size
        Image(height=4, width=4, encoding='rgb8', step=6, data=bytes(48)),  # step too short
    ]

    def sent_and_counted() -> bool:
        for msg in bad:
            raw_session.pub.publish(msg)
            time.sleep(0.3)
        return int(raw_session.last_status('/image').get('bad_frames', 0)) >= 4
    # Best effort and newest frame wins: a bad frame replaced in the node's slot before the
    # inference thread took it is dropped, not decoded (2 of 4 were counted on a loaded
    # machine), so the four are sent again until the node has counted four.
    assert wait_until(sent_and_counted, 60, period=1.0), raw_session.last_status('/image')
    rgb, truth = scene(99)
    labels = labels_array(raw_session.request(make_image_msg(rgb, 'bgr8')))
    assert miou(truth, labels, 19) >= 0.9
    assert raw_session.node.proc.poll() is None
    assert 'bad frame on /image' in raw_session.node.output


def test_diagnostics_report_rates_latency_device_and_model(raw_session, tiny_model_dir):
    rgb, _ = scene(5)
    for _ in range(3):
        raw_session.request(make_image_msg(rgb, 'rgb8'))
    assert wait_until(lambda: raw_session.last_status('/image').get('frames_processed', '0')
                      not in ('0', ''), 5)
    camera = raw_session.last_status('/image')
    for key in ('input_rate_hz', 'output_rate_hz', 'frames_dropped', 'latency_p50_ms',
                'latency_p95_ms', 'inference_ms'):
        assert key in camera
    assert camera['device'] == 'cpu' and camera['precision'] == 'fp32'
    assert camera['compile'] == 'off'  # compile auto: off on the CPU
    assert camera['model'] == str(tiny_model_dir)
    assert int(camera['frames_processed']) >= 3
    model = raw_session.last_status(': model')
    assert float(model['inference_ms_per_frame_p50']) > 0
    assert json.loads(model['batch_size_histogram'])['1'] >= 3
    assert model['compile'] == 'off' and float(model['compile_seconds']) == 0.0
    assert camera['task'] == model['task'] == 'semantic'


def test_semantic_task_has_no_instance_outputs(peer, raw_session):
    assert 'configured: task semantic; outputs segmentation/{labels,color,overlay}' in \
        raw_session.node.output
    assert peer.node.count_publishers('/segmentation/labels') == 1
    assert peer.node.count_publishers('/segmentation/instances') == 0
    assert peer.node.count_publishers('/segmentation/detections') == 0


def test_label_info_is_latched_json(peer, raw_session):
    received = peer.collect(String, 'segmentation/label_info', latched=True)
    assert wait_until(lambda: received, 10)
    info = json.loads(received[0][1].data)
    assert [c['name'] for c in info['classes']] == list(CITYSCAPES_CLASSES)
    assert [tuple(c['color']) for c in info['classes']] == [tuple(c) for c in CITYSCAPES_COLORS]
    assert [c['id'] for c in info['classes']] == list(range(19))
    assert info['encoding'] == 'mono8'


def test_vision_label_info_is_latched_with_the_checkpoint_classes(peer, raw_session,
                                                                  tiny_model_dir):
    if LabelInfo is None:
        pytest.skip(f'vision_msgs not installed ({VISION_MSGS_MISSING}); scripts/setup.sh '
                    'installs it from ROS_WHEELS_DIR')
    # Subscribed only now, long after the node published it once: transient local delivers it.
    assert raw_session.node.wait_for_output('active:', 10)
    received = peer.collect(LabelInfo, 'segmentation/vision_label_info', latched=True)
    assert wait_until(lambda: received, 10), 'no LabelInfo on segmentation/vision_label_info'
    time.sleep(0.5)
    assert len(received) == 1, 'LabelInfo is published once, at configure'
    info = received[0][1]
    config = json.loads((tiny_model_dir / 'config.json').read_text())
    expected = sorted((int(i), name) for i, name in config['id2label'].items())
    assert [(c.class_id, c.class_name) for c in info.class_map] == expected
    assert [name for _, name in expected] == list(CITYSCAPES_CLASSES)
    assert info.threshold == 0.0  # argmax: every pixel gets its best class, none is dropped
    assert info.header.stamp.sec > 0


def _set_parameter(peer: RosPeer, node: str, name: str, value) -> tuple[bool, str]:
    response = call_service(peer.node, SetParameters, f'/{node}/set_parameters',
                            SetParameters.Request(parameters=[
                                Parameter(name, value=value).to_parameter_msg()]), 10.0)
    assert response is not None, f'/{node}/set_parameters did not answer'
    result = response.results[0]
    return result.successful, result.reason


@pytest.mark.parametrize('name,value,reason', [
    ('overlay_alpha', 1.5, 'within [0.0, 1.0]'),
    ('device', 'tpu', 'auto, cpu, cuda'),
    ('precision', 'int4', 'auto, fp32, fp16, bf16'),
    ('qos_reliability', 'sometimes', 'best_effort, reliable'),
    ('image_transport', 'theora', 'raw, compressed'),
    ('qos_depth', 0, 'within [1, 100]'),
    ('input_size', 'big', 'checkpoint, native'),
    ('compile', 'fast', 'auto, off, default, reduce-overhead, max-autotune'),
    ('overlay_alpha', 'half', 'Wrong parameter type'),  # rclpy's own type check
])
def test_invalid_parameters_are_refused_with_what_is_allowed(peer, raw_session, name, value,
                                                             reason):
    ok, text = _set_parameter(peer, 'segmentation_node', name, value)
    assert not ok and reason in text, text


def test_valid_live_parameter_is_accepted(peer, raw_session):
    ok, _ = _set_parameter(peer, 'segmentation_node', 'overlay_alpha', 0.5)
    assert ok


def test_compressed_jpeg_and_png_input(peer, tiny_model_dir):
    node = NodeProcess({'model': str(tiny_model_dir), 'image_transport': 'compressed'},
                       name='compressed_node', namespace='/cam_c')
    try:
        session = Session(peer, node, transport='compressed', prefix='/cam_c/')
        import cv2
        for fmt, ext in (('jpeg', '.jpg'), ('png', '.png'), ('rgb8; jpeg compressed bgr8',
                                                             '.jpg')):
            rgb, truth = scene(len(fmt), 240, 320)
            ok, data = cv2.imencode(ext, rgb[..., ::-1].copy(), [cv2.IMWRITE_JPEG_QUALITY, 95])
            msg = CompressedImage(format=fmt, data=data.tobytes())
            labels = labels_array(session.request(msg))
            assert miou(truth, labels, 19) >= 0.9, fmt
        garbage = CompressedImage(format='jpeg', data=b'\xff\xd8\xff\xe0garbage')

        def sent_and_counted() -> bool:
            session.pub.publish(garbage)
            time.sleep(0.3)
            status = session.last_status('/cam_c/image/compressed')
            return int(status.get('bad_frames', 0)) >= 1
        # Newest frame wins: a bad frame replaced in the slot before the inference thread took
        # it is never decoded, so it is sent again until the node has counted it.
        assert wait_until(sent_and_counted, 60, period=0.5)
        rgb, truth = scene(3)
        ok, data = cv2.imencode('.png', rgb[..., ::-1].copy())
        labels = labels_array(session.request(CompressedImage(format='png',
                                                              data=data.tobytes())))
        assert miou(truth, labels, 19) >= 0.9
        assert wait_until(lambda: 'bad frame on /cam_c/image/compressed' in node.output, 10)
        assert node.proc.poll() is None
    finally:
        node.stop()


def test_reliable_qos_without_the_large_image_profile(peer, random_checkpoint):
    """The default Fast DDS transports with reliable QoS also deliver large frames."""
    env = {'FASTDDS_DEFAULT_PROFILES_FILE': ''}
    node = NodeProcess({'model': str(random_checkpoint), 'qos_reliability': 'reliable'},
                       name='reliable_node', namespace='/rel', env=env)
    # The test peer keeps the profile: its publisher is the camera driver here.
    try:
        session = Session(peer, node, prefix='/rel/')
        out = session.request(make_image_msg(np.zeros((1024, 2048, 3), np.uint8), 'rgb8'))
        assert (out.height, out.width) == (1024, 2048)
    finally:
        node.stop()


def test_model_load_failure_is_one_error_and_nonzero_exit(tmp_path):
    node = NodeProcess({'model': str(tmp_path / 'missing_model')}, name='failing_node')
    code = node.proc.wait(60)
    node.stop()
    assert code == 1
    assert 'does not exist' in node.output
    assert 'Traceback' not in node.output


def test_invalid_startup_parameter_exits_nonzero(random_checkpoint):
    node = NodeProcess({'model': str(random_checkpoint), 'overlay_alpha': 3.0},
                       name='bad_param_node')
    code = node.proc.wait(60)
    node.stop()
    assert code == 2 and 'overlay_alpha' in node.output and 'Traceback' not in node.output


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_signals_stop_the_node_within_5_s(peer, random_checkpoint, sig):
    node = NodeProcess({'model': str(random_checkpoint)}, name=f'sig_node_{sig}',
                       namespace=f'/sig{int(sig)}')
    session = Session(peer, node, prefix=f'/sig{int(sig)}/')
    msg = make_image_msg(np.zeros((480, 640, 3), np.uint8), 'rgb8')
    session.request(msg)
    segments = shm_segments(node.proc.pid)
    assert segments, 'the node mapped no Fast DDS segment: nothing to check below'
    for _ in range(10):  # keep the worker busy while the signal arrives
        session.pub.publish(msg)
    code, seconds = node.stop(sig)
    assert code is not None and seconds < 5.0, (code, seconds, node.output[-2000:])
    assert 'Traceback' not in node.output
    # Its DDS participant was destroyed: no shared-memory segment of it outlives the process
    # (each left behind keeps up to 70 MB of RAM in /dev/shm until `fastdds shm clean`).
    assert not zombie_segments(segments)


def _lifecycle(peer: RosPeer, node: str, transition: int | None = None) -> str:
    if transition is not None:
        response = call_service(peer.node, ChangeState, f'/{node}/change_state',
                                ChangeState.Request(transition=Transition(id=transition)), 60.0)
        assert response is not None, f'/{node}/change_state did not answer'
        assert response.success
    response = call_service(peer.node, GetState, f'/{node}/get_state', GetState.Request(), 20.0,
                            repeat_every=5.0)
    assert response is not None, f'/{node}/get_state did not answer'
    return response.current_state.label


def test_lifecycle_transitions_over_services(peer, tiny_model_dir):
    node = NodeProcess({'model': str(tiny_model_dir), 'autostart': False},
                       name='managed_node', namespace='/managed')
    try:
        name = 'managed/managed_node'
        assert wait_until(lambda: 'managed_node' in ''.join(peer.node.get_node_names()), 30)
        pub = peer.publisher(Image, '/managed/image')
        labels = peer.collect(Image, '/managed/segmentation/labels')
        assert _lifecycle(peer, name) == 'unconfigured'
        assert _lifecycle(peer, name, Transition.TRANSITION_CONFIGURE) == 'inactive'
        assert pub.get_subscription_count() == 0
        assert _lifecycle(peer, name, Transition.TRANSITION_ACTIVATE) == 'active'
        assert peer.wait_for_subscribers(pub)
        rgb, _ = scene(1)
        msg = make_image_msg(rgb, 'rgb8')
        assert wait_until(lambda: (pub.publish(msg), bool(labels))[1], 30, period=0.5)
        assert _lifecycle(peer, name, Transition.TRANSITION_DEACTIVATE) == 'inactive'
        assert wait_until(lambda: pub.get_subscription_count() == 0, 10)
        count = len(labels)
        pub.publish(msg)
        time.sleep(1.0)
        assert len(labels) == count
        assert _lifecycle(peer, name, Transition.TRANSITION_CLEANUP) == 'unconfigured'
        assert _lifecycle(peer, name, Transition.TRANSITION_CONFIGURE) == 'inactive'
        assert _lifecycle(peer, name, Transition.TRANSITION_ACTIVATE) == 'active'
        assert peer.wait_for_subscribers(pub)
        assert wait_until(lambda: (pub.publish(msg), len(labels) > count)[1], 30, period=0.5)
        assert _lifecycle(peer, name,
                          Transition.TRANSITION_ACTIVE_SHUTDOWN) == 'finalized'
        assert node.proc.poll() is None  # finalized but still answering until signalled
    finally:
        code, seconds = node.stop()
    assert code is not None and seconds < 5.0
    assert 'Traceback' not in node.output


def test_newest_frame_wins_under_a_slow_model(peer, tiny_model_dir):
    """30 Hz input, inference slower than 33 ms: bounded latency, drops counted, no backlog."""
    node = NodeProcess({'model': str(tiny_model_dir), 'input_size': 'native',
                        'publish_overlay': False}, name='slow_node', namespace='/slow')
    try:
        session = Session(peer, node, prefix='/slow/')
        rgb, _ = scene(2, 480, 640)
        msg = make_image_msg(rgb, 'rgb8')
        session.request(msg)  # warm-up
        start = len(session.labels)
        sent = 0
        t_end = time.monotonic() + 8.0
        while time.monotonic() < t_end:
            msg.header.stamp = peer.now_msg()
            msg.header.frame_id = f'burst_{sent}'
            session.pub.publish(msg)
            sent += 1
            time.sleep(1 / 30)
        time.sleep(1.5)
        outputs = [(t, m) for t, m in session.labels[start:]
                   if m.header.frame_id.startswith('burst_')]
        latencies = [t_recv - _stamp_to_monotonic(peer, m.header.stamp, t_recv)
                     for t_recv, m in outputs]
        status = session.last_status('/slow/image')
        inference_ms = float(status['inference_ms'])
        print(f'sent {sent}, outputs {len(outputs)}, inference {inference_ms:.0f} ms, '
              f'dropped {status["frames_dropped"]}, latency first {latencies[:3]} '
              f'last {latencies[-3:]}')
        assert inference_ms > 40, 'the model must be slower than the camera for this test'
        assert 0 < len(outputs) < sent * 0.8
        expected = 8.0 * 1000 / inference_ms
        assert 0.4 * expected <= len(outputs) <= 1.5 * expected + 2
        # Every received frame is accounted for: processed, dropped (replaced unprocessed), or
        # still on its way (one pending, one in inference, one in the output queue).
        received, dropped = int(status['frames_received']), int(status['frames_dropped'])
        assert 0 <= received - dropped - int(status['frames_processed']) <= 3, status
        assert dropped >= received - len(outputs) - 3 - 1  # - 1: the warm-up frame
        bound = 3 * inference_ms / 1000 + 0.3
        assert max(latencies[-5:]) <= max(max(latencies[:5]), bound), latencies
    finally:
        node.stop()


def _stamp_to_monotonic(peer: RosPeer, stamp, t_recv: float) -> float:
    """Map a ROS wall-clock stamp to this process' monotonic clock."""
    now_ros = peer.node.get_clock().now().nanoseconds / 1e9
    offset = now_ros - time.monotonic()
    return stamp.sec + stamp.nanosec / 1e9 - offset
