"""One node, one model, several cameras: batched inference over real DDS."""

import json
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from mask2former_ros.core.metrics import ConfusionMatrix
from mask2former_ros.ros.image_conversion import make_image_msg
from mask2former_ros_fixtures.synthetic import make_scene
import numpy as np
import pytest
from ros_harness import labels_array, NodeProcess, RosPeer, wait_until
from sensor_msgs.msg import Image

CAMERAS = {  # name: (height, width, rate Hz)
    'front': (360, 640, 8.0),
    'left': (240, 320, 5.0),
    'right': (300, 400, 3.0),
}


@pytest.fixture(scope='module')
def peer():
    p = RosPeer('multi_camera_peer')
    yield p
    p.close()


@pytest.mark.parametrize('params', [
    {},  # one worker, every pending camera in one batch
    {'max_batch_size': 1},  # one camera per batch, cameras in turn
], ids=['one_batch', 'two_workers'])
def test_three_cameras_one_model(peer, tiny_model_dir, params):
    node = NodeProcess({'model': str(tiny_model_dir), 'cameras': list(CAMERAS), **params},
                       name='multi_node', namespace='/vehicle')
    try:
        assert node.wait_for_output('active:', 120), node.output
        scenes, pubs, outputs = {}, {}, {}
        for name, (h, w, _) in CAMERAS.items():
            rng = np.random.default_rng(len(name) * 100 + h)
            scenes[name] = [make_scene(rng, h, w) for _ in range(3)]
            pubs[name] = peer.publisher(Image, f'/vehicle/{name}/image')
            outputs[name] = peer.collect(Image, f'/vehicle/{name}/segmentation/labels')
        diagnostics = peer.collect(DiagnosticArray, '/diagnostics')
        for pub in pubs.values():
            assert peer.wait_for_subscribers(pub)
        running = {name: threading.Event() for name in CAMERAS}
        for event in running.values():
            event.set()
        sent = dict.fromkeys(CAMERAS, 0)

        def publish(name: str) -> None:
            rate = CAMERAS[name][2]
            # Built once; only the stamp changes. frame_id names the scene for scoring.
            msgs = [make_image_msg(rgb, 'rgb8') for rgb, _ in scenes[name]]
            for i, msg in enumerate(msgs):
                msg.header.frame_id = f'{name}_optical/{i}'
            index = 0
            while running[name].is_set():
                msg = msgs[index % 3]
                msg.header.stamp = peer.now_msg()
                pubs[name].publish(msg)
                sent[name] += 1
                index += 1
                time.sleep(1.0 / rate)
        threads = [threading.Thread(target=publish, args=(n,), daemon=True) for n in CAMERAS]
        for thread in threads:
            thread.start()
        assert wait_until(lambda: all(len(outputs[n]) >= 3 for n in CAMERAS), 60), {
            n: len(v) for n, v in outputs.items()}
        # Stop one camera: the others keep flowing.
        running['right'].clear()
        time.sleep(0.5)
        counts = {n: len(outputs[n]) for n in CAMERAS}
        time.sleep(4.0)
        for name in ('front', 'left'):
            assert len(outputs[name]) >= counts[name] + 3, (name, counts, len(outputs[name]))
        assert len(outputs['right']) <= counts['right'] + 1
        for event in running.values():
            event.clear()
        for thread in threads:
            thread.join(2)

        for name, (h, w, _) in CAMERAS.items():
            stamps = [(m.header.stamp.sec, m.header.stamp.nanosec) for _, m in outputs[name]]
            assert stamps == sorted(stamps), f'{name}: outputs went back in time'
            cm = ConfusionMatrix(19)
            for _, msg in outputs[name]:
                assert (msg.height, msg.width) == (h, w)
                prefix, _, index = msg.header.frame_id.partition('/')
                assert prefix == f'{name}_optical', msg.header.frame_id
                truth = scenes[name][int(index)][1]
                cm.update(truth, labels_array(msg))
            assert cm.miou() >= 0.9, (name, cm.miou())

        assert wait_until(lambda: len(diagnostics) >= 2, 5)
        statuses = {s.name: {kv.key: kv.value for kv in s.values}
                    for s in diagnostics[-1][1].status}
        for name in CAMERAS:
            key = f'/vehicle/multi_node: /vehicle/{name}/image'
            assert key in statuses, list(statuses)
            assert int(statuses[key]['frames_processed']) >= 3
            assert int(statuses[key]['late_frames']) >= 0
        model = statuses['/vehicle/multi_node: model']
        histogram = {int(k): v for k, v in json.loads(model['batch_size_histogram']).items()}
        assert sum(histogram.values()) > 0
        assert max(histogram) <= params.get('max_batch_size', 3), histogram
        assert float(model['inference_ms_per_batch_p50']) > 0
    finally:
        code, seconds = node.stop()
    assert code is not None and seconds < 5.0
