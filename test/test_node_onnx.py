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

"""The node with backend onnxruntime over real DDS: labels, instances, no torch, bad graphs."""

from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from mask2former_ros.core.backends.torch_engine import SegmentationEngine
from mask2former_ros.core.engine_config import EngineConfig
from mask2former_ros.core.evaluation.panoptic_quality import PanopticQuality
from mask2former_ros.ros.detections import Detection2DArray
from mask2former_ros_fixtures.image_encoding import make_image_msg
from mask2former_ros_fixtures.ros_harness import (
    call_service, labels_array, NodeProcess, wait_until)
from mask2former_ros_fixtures.synthetic import make_panoptic_scene, make_scene
import numpy as np
import pytest
from sensor_msgs.msg import Image

SIZE = (240, 320)


@pytest.fixture(scope='module')
def graph(tiny_onnx_graph):
    return tiny_onnx_graph(SIZE)  # one export a run, shared with test_onnx_backend


def _request(peer, pub, labels, rgb, frame: int):
    msg = make_image_msg(rgb, 'rgb8')
    msg.header.stamp.sec, msg.header.frame_id = 2_000_000 + frame, f'cam_{frame}'

    def found():
        return [m for _, m in labels if m.header.frame_id == f'cam_{frame}']
    assert wait_until(lambda: (pub.publish(msg), bool(found()))[1], 30, period=0.5)
    return found()[0]


def test_node_serves_the_graph_without_torch(peer, tiny_model_dir, graph):
    node = NodeProcess({'model': str(tiny_model_dir), 'backend': 'onnxruntime',
                        'onnx_model': str(graph), 'frame_size': '240x320'},
                       name='onnx_node', namespace='/onnx',
                       env={'PYTHONPROFILEIMPORTTIME': '1'})
    try:
        pub = peer.publisher(Image, '/onnx/image')
        labels = peer.collect(Image, '/onnx/segmentation/labels')
        diagnostics = peer.collect(DiagnosticArray, '/diagnostics')
        assert node.wait_for_output('active:', 120), node.output
        assert peer.wait_for_subscribers(pub)
        reference = SegmentationEngine(EngineConfig(model=str(tiny_model_dir)))
        for seed in range(3):
            rgb, _ = make_scene(np.random.default_rng(40 + seed), *SIZE)
            out = _request(peer, pub, labels, rgb, seed)
            assert out.header.stamp.sec == 2_000_000 + seed and out.encoding == 'mono8'
            agreement = float((labels_array(out) == reference.segment(rgb).labels).mean())
            assert agreement >= 0.995, agreement

        def model_status():
            for _, array in reversed(diagnostics):
                for status in array.status:
                    if status.name.endswith(': model') and 'onnx_node' in status.name:
                        return {kv.key: kv.value for kv in status.values}
            return {}
        assert wait_until(lambda: model_status().get('backend') == 'onnxruntime', 10)
        assert model_status()['device'] == 'CPUExecutionProvider'
        assert model_status()['precision'] == 'fp32'
    finally:
        code, _ = node.stop()
    assert code == 0
    # -X importtime lines name every module the process imported.
    assert not _heavy_imports(node)


def _heavy_imports(node: NodeProcess) -> set[str]:
    """Return the torch and transformers modules of an -X importtime node's output."""
    imported = {line.rsplit('|', 1)[-1].strip() for line in node.lines
                if line.startswith('import time:')}
    assert 'rclpy' in imported and 'onnxruntime' in imported
    return {m for m in imported if m.split('.')[0] in ('torch', 'transformers')}


@pytest.mark.skipif(Detection2DArray is None, reason='vision_msgs not installed')
def test_panoptic_node_on_the_graph_publishes_instances_and_detections(
        peer, tiny_panoptic_model_dir, panoptic_graph):
    from test_node_panoptic import check_frame, Outputs
    size = (120, 200)
    node = NodeProcess({'model': str(tiny_panoptic_model_dir), 'backend': 'onnxruntime',
                        'onnx_model': str(panoptic_graph(size))},
                       name='onnx_panoptic', namespace='/onnx_pan',
                       env={'PYTHONPROFILEIMPORTTIME': '1'})
    try:
        outputs = Outputs(peer, node, '/onnx_pan')
        reference = SegmentationEngine(EngineConfig(model=str(tiny_panoptic_model_dir)))
        rng = np.random.default_rng(4400)
        quality = PanopticQuality(19, reference.thing_ids)
        detections = 0
        for _ in range(3):
            rgb, _, _ = make_panoptic_scene(rng, *size)
            header, found = outputs.request(rgb)
            labels, ids = check_frame(outputs, header, found, size)
            expected = reference.segment(rgb)
            quality.add(labels, ids, expected.labels, expected.instances)
            assert float((labels == expected.labels).mean()) >= 0.995
            detections += len(found['detections'].detections)
        assert detections > 0, 'the scenes should hold cars and persons'
        assert quality.summary()['all']['pq'] >= 0.99  # the torch engine's result as truth
        assert 'configured: task panoptic' in node.output  # task auto: the graph's
    finally:
        code, _ = node.stop()
    assert code == 0
    assert not _heavy_imports(node)


def _lifecycle(peer, node: str, transition: int | None = None) -> tuple[bool, str]:
    ok = True
    if transition is not None:
        response = call_service(peer.node, ChangeState, f'/{node}/change_state',
                                ChangeState.Request(transition=Transition(id=transition)), 60.0)
        assert response is not None
        ok = response.success
    response = call_service(peer.node, GetState, f'/{node}/get_state', GetState.Request(), 20.0,
                            repeat_every=5.0)
    assert response is not None
    return ok, response.current_state.label


@pytest.mark.parametrize('problem', ['truncated', 'wrong_size', 'wrong_task'])
def test_bad_graph_fails_configure_once_and_stays_unconfigured(
        peer, tiny_model_dir, graph, tmp_path, problem):
    params = {'model': str(tiny_model_dir), 'backend': 'onnxruntime', 'autostart': False}
    if problem == 'truncated':
        bad = tmp_path / 'truncated.onnx'
        bad.write_bytes(graph.read_bytes()[:100_000])
        params.update(onnx_model=str(bad))
        expected = 'cannot load ONNX graph'
    elif problem == 'wrong_size':
        params.update(onnx_model=str(graph), frame_size='480x640')
        expected = 'takes 240x320 frames, but frame_size is 480x640'
    else:
        params.update(onnx_model=str(graph), task='instance')
        expected = f"task 'instance', but '{graph}' was exported for task semantic"
    name = f'bad_{problem}'
    node = NodeProcess(params, name=name)
    try:
        assert wait_until(lambda: name in ''.join(peer.node.get_node_names()), 30)
        ok, state = _lifecycle(peer, name, Transition.TRANSITION_CONFIGURE)
        assert not ok and state == 'unconfigured'
        assert wait_until(lambda: expected in node.output, 5), node.output
        errors = [line for line in node.lines if 'configure failed' in line]
        assert len(errors) == 1 and expected in errors[0]
        assert 'Traceback' not in node.output
    finally:
        node.stop()
