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

"""One node, one model, several cameras: batched inference over real DDS."""

import json
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from mask2former_ros.core.backends.torch_engine import SegmentationEngine
from mask2former_ros.core.engine_config import EngineConfig
from mask2former_ros_fixtures.image_encoding import make_image_msg
from mask2former_ros_fixtures.ros_harness import labels_array, NodeProcess, RosPeer, wait_until
from mask2former_ros_fixtures.synthetic import make_scene
import numpy as np
import pytest
from sensor_msgs.msg import Image

CAMERAS = {  # name: (height, width, rate Hz)
    'front': (360, 640, 8.0),
    'left': (240, 320, 5.0),
    'right': (300, 400, 3.0),
}
BROKEN = 'right'  # sends truncated frames in the second phase
IN_FLIGHT = 3  # frames a camera may have between its slot, the batch and the output queue


def _stamp(msg) -> tuple[int, int]:
    return msg.header.stamp.sec, msg.header.stamp.nanosec


class Camera:
    """A publishing thread for one camera and what it sent."""

    def __init__(self, peer: RosPeer, name: str, reference: SegmentationEngine) -> None:
        self.peer, self.name = peer, name
        h, w, self.rate = CAMERAS[name]
        rng = np.random.default_rng(len(name) * 100 + h)
        self.scenes = [make_scene(rng, h, w) for _ in range(3)]
        # What the model makes of each scene, in this process: the node's labels for a frame
        # must be these (batching may flip a pixel on a near-tie), whatever the model's quality.
        self.expected = [reference.segment(rgb).labels for rgb, _ in self.scenes]
        self.pub = peer.publisher(Image, f'/vehicle/{name}/image')
        self.outputs = peer.collect(Image, f'/vehicle/{name}/segmentation/labels')
        # Built once; only the stamp changes. frame_id names the camera and the scene.
        self.good = [make_image_msg(rgb, 'rgb8') for rgb, _ in self.scenes]
        for i, msg in enumerate(self.good):
            msg.header.frame_id = f'{name}_optical/{i}'
        self.bad = make_image_msg(self.scenes[0][0], 'rgb8')
        self.bad.header.frame_id = f'{name}_optical/truncated'
        self.bad.data = bytes(self.bad.data)[:len(self.bad.data) // 2]
        self.sent: list[tuple[tuple[int, int], str]] = []  # (stamp, frame_id) in order
        self.sent_bad = 0
        self.send_bad = threading.Event()
        self.running = threading.Event()
        self.thread = threading.Thread(target=self._publish, daemon=True)

    def start(self) -> None:
        """Start publishing good frames at the camera's rate."""
        self.running.set()
        self.thread.start()

    def stop(self) -> None:
        """Stop publishing."""
        self.running.clear()
        if self.thread.is_alive():
            self.thread.join(5)

    def _publish(self) -> None:
        index = 0
        while self.running.is_set():
            bad = self.send_bad.is_set()
            msg = self.bad if bad else self.good[index % 3]
            msg.header.stamp = self.peer.now_msg()
            self.pub.publish(msg)
            self.sent.append((_stamp(msg), msg.header.frame_id))
            self.sent_bad += bad
            index += 1
            time.sleep(1.0 / self.rate)


def _camera_counters(diagnostics: list, key: str) -> dict[str, str] | None:
    for _, array in reversed(diagnostics):
        for status in array.status:
            if status.name == key:
                return {kv.key: kv.value for kv in status.values}
    return None


def _unaccounted(values: dict[str, str]) -> int:
    """Frames received but neither dropped nor finished (labels, bad or failed): in flight."""
    n = {k: int(values[k]) for k in ('frames_received', 'frames_dropped', 'frames_processed',
                                     'bad_frames', 'failed_frames')}
    return (n['frames_received'] - n['frames_dropped'] - n['frames_processed']
            - n['bad_frames'] - n['failed_frames'])


@pytest.fixture(scope='module')
def reference(tiny_model_dir):
    """Return the tiny model in this process, to know the labels each scene must get."""
    return SegmentationEngine(EngineConfig(model=str(tiny_model_dir)))


@pytest.mark.parametrize('params', [
    {},  # every pending camera in one batch
    {'max_batch_size': 1},  # one camera per batch, cameras in turn
], ids=['one_batch', 'one_camera_per_batch'])
def test_three_cameras_one_model(peer, tiny_model_dir, reference, params):
    node = NodeProcess({'model': str(tiny_model_dir), 'cameras': list(CAMERAS),
                        'diagnostics_period': 0.5, **params},
                       name='multi_node', namespace='/vehicle')
    cameras: dict[str, Camera] = {}
    try:
        assert node.wait_for_output('active:', 120), node.output
        cameras = {name: Camera(peer, name, reference) for name in CAMERAS}
        diagnostics = peer.collect(DiagnosticArray, '/diagnostics')
        for camera in cameras.values():
            assert peer.wait_for_subscribers(camera.pub)
        for camera in cameras.values():
            camera.start()
        assert wait_until(lambda: all(len(c.outputs) >= 3 for c in cameras.values()), 120), {
            n: len(c.outputs) for n, c in cameras.items()}

        # An error in one camera's frames never stops the others: BROKEN sends only truncated
        # frames from now on, the other cameras keep getting labels.
        broken = cameras[BROKEN]
        broken.send_bad.set()
        counts = {n: len(c.outputs) for n, c in cameras.items()}
        key = {n: f'/vehicle/multi_node: /vehicle/{n}/image' for n in CAMERAS}

        def bad_frames(name: str) -> int:
            values = _camera_counters(diagnostics, key[name])
            return int(values['bad_frames']) if values else 0
        assert wait_until(lambda: bad_frames(BROKEN) >= 5 and all(
            len(c.outputs) >= counts[n] + 5 for n, c in cameras.items() if n != BROKEN), 120), (
            counts, {n: len(c.outputs) for n, c in cameras.items()}, bad_frames(BROKEN),
            node.output[-2000:])
        assert 'truncated data' in node.output, node.output[-2000:]
        for camera in cameras.values():
            camera.stop()
        assert node.proc.poll() is None, node.output[-3000:]

        # Quiet: wait until the node has finished every frame and the test has every output.
        def settled() -> bool:
            for name, camera in cameras.items():
                values = _camera_counters(diagnostics, key[name])
                if (values is None or _unaccounted(values) != 0
                        or int(values['frames_processed']) != len(camera.outputs)):
                    return False
            return True
        wait_until(settled, 30)  # the checks below allow for frames still in flight

        for name, camera in cameras.items():
            h, w, _ = CAMERAS[name]
            # Only this camera's frames, each once, in the order they were sent.
            sent = dict(camera.sent)
            order = [stamp for stamp, _ in camera.sent]
            stamps = [_stamp(m) for _, m in camera.outputs]
            for stamp, (_, msg) in zip(stamps, camera.outputs, strict=True):
                assert sent.get(stamp) == msg.header.frame_id, (
                    name, stamp, msg.header.frame_id)
                assert not msg.header.frame_id.endswith('truncated'), name
            assert all(a < b for a, b in zip(stamps, stamps[1:], strict=False)), \
                f'{name}: outputs went back in time or repeated: {stamps}'
            positions = [order.index(stamp) for stamp in stamps]
            assert positions == sorted(positions), name
            # Each output holds its own scene's labels (not another camera's or frame's).
            for _, msg in camera.outputs:
                assert (msg.height, msg.width) == (h, w)
                index = int(msg.header.frame_id.rpartition('/')[2])
                agreement = float(np.mean(labels_array(msg) == camera.expected[index]))
                assert agreement >= 0.99, (name, msg.header.frame_id, agreement)

            # Diagnostics tell the truth about this camera.
            values = _camera_counters(diagnostics, key[name])
            n = {k: int(v) for k, v in values.items()
                 if k.startswith(('frames_', 'bad_', 'failed_'))}
            assert 0 <= _unaccounted(values) <= IN_FLIGHT, (name, values)
            assert 0 <= n['frames_processed'] - len(camera.outputs) <= IN_FLIGHT, (
                name, values, len(camera.outputs))
            assert len(camera.outputs) <= n['frames_received'] <= len(camera.sent), (
                name, values, len(camera.sent))
            assert n['failed_frames'] == 0, (name, values)
            if name == BROKEN:
                assert 5 <= n['bad_frames'] <= camera.sent_bad, (name, values)
                assert 'truncated data' in values['last_problem'], values
            else:
                assert n['bad_frames'] == 0, (name, values)

        model = _camera_counters(diagnostics, '/vehicle/multi_node: model')
        histogram = {int(k): v for k, v in json.loads(model['batch_size_histogram']).items()}
        assert sum(histogram.values()) > 0
        assert max(histogram) <= params.get('max_batch_size', 3), histogram
        assert float(model['inference_ms_per_batch_p50']) > 0
    finally:
        for camera in cameras.values():
            camera.stop()
        code, _ = node.stop()
    assert code == 0, node.output[-3000:]
