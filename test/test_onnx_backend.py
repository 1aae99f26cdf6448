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

"""The onnxruntime backend: export, parity with the torch engine, export cache, bad graphs."""

import json
import os
from pathlib import Path
import shutil
import subprocess
import sys

from mask2former_ros.core.backends.create import create_engine
from mask2former_ros.core.backends.onnx_cache import cache_key, cached_graph, METADATA_PREFIX
from mask2former_ros.core.backends.torch_engine import SegmentationEngine
from mask2former_ros.core.checkpoint import ModelLoadError
from mask2former_ros.core.engine_config import EngineConfig
from mask2former_ros.core.evaluation.panoptic_quality import PanopticQuality
from mask2former_ros.core.results import Segment
from mask2former_ros.core.segmentation_task import TaskMismatchError
from mask2former_ros_fixtures.synthetic import make_panoptic_scene, make_scene
import numpy as np
import onnx
import pytest
from test_segment_bag import assert_one_line_error

SIZES = ((120, 200), (333, 517), (1024, 2048))
MIN_AGREEMENT = 0.995


@pytest.fixture(scope='module')
def graphs(tiny_onnx_graph) -> dict[tuple[int, int], Path]:
    """Return the trained tiny model exported per frame size (conftest: once a run)."""
    return {size: tiny_onnx_graph(size) for size in SIZES}


def seed_cache(cache_home: Path, graph: Path, model: Path, size: tuple[int, int]) -> Path:
    """Put ``graph`` where cached_graph looks for it under ``$XDG_CACHE_HOME=cache_home``."""
    folder = cache_home / 'mask2former_ros' / 'onnx'
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{cache_key(str(model), size, 'checkpoint', 18)}.onnx"
    shutil.copyfile(graph, path)
    return path


@pytest.fixture(scope='module')
def torch_engine(tiny_model_dir) -> SegmentationEngine:
    return SegmentationEngine(EngineConfig(model=str(tiny_model_dir)))


def onnx_engine(model: Path, graph: Path, **kwargs):
    return create_engine(EngineConfig(model=str(model), backend='onnxruntime',
                                      onnx_model=str(graph), **kwargs))


@pytest.mark.parametrize('size', SIZES, ids=lambda s: f'{s[0]}x{s[1]}')
def test_labels_equal_the_torch_engine(graphs, torch_engine, tiny_model_dir, size):
    engine = onnx_engine(tiny_model_dir, graphs[size])
    assert engine.device_name == 'CPUExecutionProvider' and engine.backend == 'onnxruntime'
    for seed in range(3):
        rgb, truth = make_scene(np.random.default_rng(100 + seed), *size)
        expected = torch_engine.segment(rgb).labels
        result = engine.segment(rgb)
        assert result.labels.shape == size and result.labels.dtype == np.uint8
        agreement = float((result.labels == expected).mean())
        print(f'{size[0]}x{size[1]} scene {seed}: {agreement:.4%} of pixels equal')
        assert agreement >= MIN_AGREEMENT
        assert set(result.timings_ms) >= {'preprocess', 'model', 'postprocess', 'batch_size'}


def test_graph_carries_metadata(graphs, torch_engine, tiny_model_dir):
    proto = onnx.load(str(graphs[(120, 200)]), load_external_data=False)
    meta = {p.key[len(METADATA_PREFIX):]: p.value for p in proto.metadata_props}
    assert meta['checkpoint'] == str(tiny_model_dir) and len(meta['checkpoint_sha256']) == 64
    assert meta['frame_size'] == '120x200' and meta['model_input_size'] == '256x512'
    assert json.loads(meta['class_names']) == torch_engine.class_names
    assert json.loads(meta['palette']) == np.asarray(torch_engine.palette).tolist()
    assert meta['opset'] == '18' and meta['precision'] == 'fp32'
    assert {'torch', 'transformers', 'onnx', 'onnxscript'} <= set(json.loads(meta['versions']))
    assert [o.opset_import for o in [proto]][0][0].version >= 18
    graph_input = proto.graph.input[0].type.tensor_type
    assert graph_input.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_value for d in graph_input.shape.dim] == [1, 120, 200, 3]


def test_frame_of_another_size_fails_alone(graphs, tiny_model_dir):
    engine = onnx_engine(tiny_model_dir, graphs[(120, 200)])
    good, _ = make_scene(np.random.default_rng(1), 120, 200)
    results = engine.segment_batch([good, np.zeros((240, 320, 3), np.uint8), good])
    assert results[0].ok and results[2].ok and not results[1].ok
    assert 'frame 240x320, but the ONNX graph takes 120x200' in results[1].error
    assert 'mask2former_export --size 240x320' in results[1].error


def test_truncated_graph_is_one_clear_error(graphs, tiny_model_dir, tmp_path):
    data = graphs[(120, 200)].read_bytes()
    bad = tmp_path / 'truncated.onnx'
    bad.write_bytes(data[:len(data) // 3])
    with pytest.raises(ModelLoadError, match='cannot load ONNX graph'):
        onnx_engine(tiny_model_dir, bad)
    missing = tmp_path / 'missing.onnx'
    with pytest.raises(ModelLoadError, match='does not exist'):
        onnx_engine(tiny_model_dir, missing)


def test_foreign_graph_is_refused(tiny_model_dir, tmp_path):
    from onnx import helper, TensorProto
    node = helper.make_node('Identity', ['x'], ['y'])
    graph = helper.make_graph([node], 'g', [helper.make_tensor_value_info('x', TensorProto.UINT8,
                                                                          [1, 4, 4, 3])],
                              [helper.make_tensor_value_info('y', TensorProto.UINT8,
                                                             [1, 4, 4, 3])])
    path = tmp_path / 'foreign.onnx'
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 18)]), str(path))
    with pytest.raises(ModelLoadError, match='not a graph written by mask2former_export'):
        onnx_engine(tiny_model_dir, path)


def test_wrong_frame_size_is_refused(graphs, tiny_model_dir):
    with pytest.raises(ModelLoadError, match='takes 120x200 frames, but frame_size is 480x640'):
        onnx_engine(tiny_model_dir, graphs[(120, 200)], frame_size='480x640')
    assert onnx_engine(tiny_model_dir, graphs[(120, 200)], frame_size='120x200').frame_size \
        == (120, 200)


def test_wrong_class_count_is_refused(graphs, tiny_model_dir, tmp_path):
    other = tmp_path / 'five_classes'
    shutil.copytree(tiny_model_dir, other)
    config = json.loads((other / 'config.json').read_text())
    config['id2label'] = {str(i): f'class{i}' for i in range(5)}
    config['label2id'] = {f'class{i}': i for i in range(5)}
    (other / 'config.json').write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match='with 19 classes .* has 5'):
        onnx_engine(other, graphs[(120, 200)])


def test_unavailable_provider_falls_back_with_one_warning(graphs, tiny_model_dir):
    warnings, infos = [], []
    engine = create_engine(EngineConfig(
        model=str(tiny_model_dir), backend='onnxruntime', onnx_model=str(graphs[(120, 200)]),
        onnx_providers=('cuda', 'cpu')), log=infos.append, warn=warnings.append)
    assert engine.device_name == 'CPUExecutionProvider'
    assert len(warnings) == 1 and 'CUDAExecutionProvider is not in this onnxruntime build' \
        in warnings[0]
    # The default order (TensorRT, CUDA, CPU) says so once, as information.
    warnings.clear()
    engine = create_engine(EngineConfig(
        model=str(tiny_model_dir), backend='onnxruntime', onnx_model=str(graphs[(120, 200)])),
        log=infos.append, warn=warnings.append)
    assert engine.device_name == 'CPUExecutionProvider' and not warnings
    assert any('TensorrtExecutionProvider, CUDAExecutionProvider are not in' in i for i in infos)
    with pytest.raises(ModelLoadError, match='no ONNX Runtime provider could run'):
        create_engine(EngineConfig(model=str(tiny_model_dir), backend='onnxruntime',
                                   onnx_model=str(graphs[(120, 200)]),
                                   onnx_providers=('tensorrt',)), warn=warnings.append)


def test_export_cache_reuses_and_follows_the_checkpoint(graphs, tiny_model_dir, tmp_path,
                                                        monkeypatch):
    """
    A cached graph is used as it is; another frame size or checkpoint has another key.

    The cache is seeded with a graph exported by the graphs fixture (what a first use writes:
    test_engine_exports_into_the_cache_on_first_use exports into an empty cache), so no export
    runs here; a changed key is what makes cached_graph export again.
    """
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
    first = seed_cache(tmp_path / 'cache', graphs[(120, 200)], tiny_model_dir, (120, 200))
    stamp = first.stat().st_mtime_ns
    logs: list[str] = []
    again = cached_graph(str(tiny_model_dir), (120, 200), log=logs.append)
    assert again == first and first.stat().st_mtime_ns == stamp
    assert not any('exporting' in line for line in logs)
    assert any('using the cached ONNX export' in line for line in logs)
    # Another frame size, input size or a changed checkpoint is another graph.
    assert cache_key(str(tiny_model_dir), (240, 320), 'checkpoint', 18) != first.stem
    assert cache_key(str(tiny_model_dir), (120, 200), 'native', 18) != first.stem
    changed = tmp_path / 'changed'
    shutil.copytree(tiny_model_dir, changed)
    assert cache_key(str(changed), (120, 200), 'checkpoint', 18) == first.stem  # content
    weights = changed / 'model.safetensors'
    data = bytearray(weights.read_bytes())
    data[-8:] = bytes(8)  # the last weights change
    weights.write_bytes(bytes(data))
    assert cache_key(str(changed), (120, 200), 'checkpoint', 18) != first.stem


def _graph_body(path: Path) -> bytes:
    proto = onnx.load(str(path))
    return proto.graph.SerializeToString()


def test_engine_exports_into_the_cache_on_first_use(tiny_panoptic_model_dir, panoptic_graph,
                                                    tmp_path, monkeypatch):
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
    model = str(tiny_panoptic_model_dir)
    with pytest.raises(ModelLoadError, match='set frame_size'):
        create_engine(EngineConfig(model=model, backend='onnxruntime'))
    logs: list[str] = []
    engine = create_engine(EngineConfig(model=model, backend='onnxruntime',
                                        frame_size='120x200', task='instance'), log=logs.append)
    assert engine.path.parent == tmp_path / 'cache' / 'mask2former_ros' / 'onnx'
    assert any('exporting task instance into' in line for line in logs), logs
    assert engine.task == 'instance' and engine.thing_ids == frozenset(range(19))
    rgb, _, _ = make_panoptic_scene(np.random.default_rng(3), 120, 200)
    result = engine.segment(rgb)
    assert result.labels.shape == result.instances.shape == (120, 200)
    # The cache keys on the task: the panoptic graph of the same checkpoint is another file.
    assert cache_key(model, (120, 200), 'checkpoint', 18, 'panoptic') != engine.path.stem
    assert cache_key(model, (120, 200), 'checkpoint', 18, 'instance') == engine.path.stem
    # mask2former_export --task instance writes the panoptic graph with another metadata task
    # (what the session's panoptic_graph fixture relies on for its instance graphs).
    assert _graph_body(engine.path) == _graph_body(panoptic_graph((120, 200)))
    meta = {p.key: p.value for p in onnx.load(str(engine.path)).metadata_props}
    assert meta[METADATA_PREFIX + 'task'] == 'instance' and meta[METADATA_PREFIX + 'format'] \
        == '2'


def test_serving_imports_neither_torch_nor_transformers(graphs, tiny_model_dir):
    code = (
        'import sys, numpy as np\n'
        'from mask2former_ros.core.backends.create import create_engine\n'
        'from mask2former_ros.core.engine_config import EngineConfig\n'
        f'e = create_engine(EngineConfig(model={str(tiny_model_dir)!r}, backend="onnxruntime", '
        f'onnx_model={str(graphs[(120, 200)])!r}))\n'
        'e.warmup()\n'
        'print(e.segment(np.zeros((120, 200, 3), np.uint8)).labels.shape)\n'
        'print(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers")))\n')
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, 'PYTHONWARNINGS': 'ignore'})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ['(120, 200)', '[]'], done.stdout


def test_export_cli_errors(tmp_path):
    done = subprocess.run([sys.executable, '-m', 'mask2former_ros.core.backends.onnx_export',
                           '--model',
                           str(tmp_path / 'nope'), '--size', '120x200', '--output',
                           str(tmp_path / 'x.onnx')], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1 and 'does not exist' in done.stderr
    assert not (tmp_path / 'x.onnx').exists()
    done = subprocess.run([sys.executable, '-m', 'mask2former_ros.core.backends.onnx_export',
                           '--model',
                           str(tmp_path), '--size', '120by200', '--output',
                           str(tmp_path / 'x.onnx')], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and 'HEIGHTxWIDTH' in done.stderr


# --- segment_bag with --backend onnxruntime -------------------------------------------------

def test_segment_bag_miou_equals_the_torch_backend_and_imports_no_torch(
        tiny_model_dir, tiny_onnx_graph, tmp_path):
    from mask2former_ros_fixtures.sample_bag import write_sample_bag
    bag = write_sample_bag(tmp_path / 'bag', frames=4, height=240, width=320, seed=11)['path']
    # The graph for the bag's frame size is in the user cache (as after a first use, which
    # test_engine_exports_into_the_cache_on_first_use exercises): segment_bag must find it.
    seeded = seed_cache(tmp_path / 'cache', tiny_onnx_graph((240, 320)), tiny_model_dir,
                        (240, 320))
    script = shutil.which('segment_bag') or str(Path(sys.executable).with_name('segment_bag'))
    common = [str(bag), '--topic', '/camera/image_raw', '--gt-topic', '/camera/labels_gt',
              '--model', str(tiny_model_dir), '--no-output', '--no-progress']
    env = {**os.environ, 'XDG_CACHE_HOME': str(tmp_path / 'cache')}
    summaries = {}
    for backend in ('torch', 'onnxruntime'):
        done = subprocess.run([sys.executable, '-X', 'importtime', script, *common,
                               '--backend', backend, '--summary', str(tmp_path / backend)],
                              capture_output=True, text=True, timeout=600, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        summaries[backend] = json.loads((tmp_path / backend).read_text())
        imported = {line.rsplit('|', 1)[-1].strip() for line in done.stderr.splitlines()
                    if line.startswith('import time:')}
        heavy = {m for m in imported if m.split('.')[0] in ('torch', 'transformers')}
        assert bool(heavy) == (backend == 'torch'), (backend, sorted(heavy)[:5])
        assert ('using the cached ONNX export' in done.stderr) == (backend == 'onnxruntime')
        assert 'exporting' not in done.stderr, done.stderr[-3000:]
    torch_run, onnx_run = (summaries[b] for b in ('torch', 'onnxruntime'))
    print('mIoU torch', torch_run['metrics']['miou'], 'onnxruntime', onnx_run['metrics']['miou'])
    assert abs(torch_run['metrics']['miou'] - onnx_run['metrics']['miou']) <= 0.002
    assert onnx_run['frames']['processed'] == 4 and onnx_run['backend'] == 'onnxruntime'
    assert onnx_run['device'] == 'CPUExecutionProvider' and onnx_run['torch_threads'] is None
    # The cached graph for the bag's frame size (240x320) was the one served.
    assert list((tmp_path / 'cache' / 'mask2former_ros' / 'onnx').glob('*.onnx')) == [seeded]


# --- panoptic and instance ---------------------------------------------------------------------

# Runs in a child process: the onnxruntime backend on the frames of FRAMES_FILE for each
# (task, size) of JOBS; writes labels, ids and segments, and the torch modules it imported.
SERVE_QUERIES = """
import json, sys
import numpy as np
from mask2former_ros.core.backends.create import create_engine
from mask2former_ros.core.engine_config import EngineConfig
jobs, frames, out = json.loads(sys.argv[1]), np.load(sys.argv[2]), sys.argv[3]
arrays, report = {}, {'segments': {}}
for task, size, graph in jobs:
    engine = create_engine(EngineConfig(model=sys.argv[4], backend='onnxruntime',
                                        onnx_model=graph))
    report.setdefault('tasks', []).append(engine.task)
    key = f'{task}_{size}'
    for i in range(frames[key].shape[0]):
        result = engine.segment(frames[key][i])
        arrays[f'{key}_{i}_labels'], arrays[f'{key}_{i}_ids'] = result.labels, result.instances
        report['segments'][f'{key}_{i}'] = [list(s.__dict__.values()) for s in result.segments]
np.savez(out, **arrays)
report['heavy'] = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers'))
print(json.dumps(report))
"""
QUERY_FRAMES = 2


@pytest.fixture(scope='module')
def torch_query_engines(tiny_panoptic_model_dir):
    return {task: SegmentationEngine(EngineConfig(model=str(tiny_panoptic_model_dir), task=task))
            for task in ('panoptic', 'instance')}


def test_panoptic_and_instance_equal_the_torch_engine_without_torch(
        panoptic_graph, torch_query_engines, tiny_panoptic_model_dir, tmp_path):
    jobs, frames = [], {}
    for task in ('panoptic', 'instance'):
        for size in SIZES:
            key = f'{task}_{size[0]}x{size[1]}'
            jobs.append((task, f'{size[0]}x{size[1]}', str(panoptic_graph(size, task))))
            rng = np.random.default_rng(700 + size[0])
            frames[key] = np.stack([make_panoptic_scene(rng, *size)[0]
                                    for _ in range(QUERY_FRAMES)])
    np.savez(tmp_path / 'frames.npz', **frames)
    done = subprocess.run([sys.executable, '-c', SERVE_QUERIES, json.dumps(jobs),
                           str(tmp_path / 'frames.npz'), str(tmp_path / 'out.npz'),
                           str(tiny_panoptic_model_dir)], capture_output=True, text=True,
                          timeout=600, env={**os.environ, 'PYTHONWARNINGS': 'ignore'})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    assert report['heavy'] == [], report['heavy'][:5]
    assert report['tasks'] == [task for task, _, _ in jobs]  # task auto: the graph's
    served = np.load(tmp_path / 'out.npz')
    instances = 0
    for task, size, _ in jobs:
        engine = torch_query_engines[task]
        quality = PanopticQuality(len(engine.class_names), engine.thing_ids)
        for i in range(QUERY_FRAMES):
            expected = engine.segment(frames[f'{task}_{size}'][i])
            labels, ids = served[f'{task}_{size}_{i}_labels'], served[f'{task}_{size}_{i}_ids']
            segments = [Segment(*s[:3], tuple(s[3]), s[4])
                        for s in report['segments'][f'{task}_{size}_{i}']]
            assert labels.dtype == np.uint8 and ids.dtype == np.uint16
            assert labels.shape == ids.shape == expected.labels.shape
            quality.add(labels, ids, expected.labels, expected.instances)
            equal = float((labels == expected.labels).mean())
            print(f'{task} {size} frame {i}: labels {equal:.4%} equal, {len(segments)} '
                  f'instances (torch {len(expected.segments)})')
            assert equal >= MIN_AGREEMENT
            assert [s.instance_id for s in segments] == list(range(1, len(segments) + 1))
            instances += len(segments)
        pq = quality.summary()['all']['pq']
        print(f'{task} {size}: PQ(onnxruntime, torch) {pq:.4f} over {QUERY_FRAMES} frames')
        assert pq >= 0.99
    assert instances > 0, 'the scenes should hold instances'


def test_graph_task_mismatch_is_one_clear_error(graphs, panoptic_graph, tiny_model_dir,
                                                tiny_panoptic_model_dir, tmp_path):
    from conftest import retask_graph
    semantic, panoptic = graphs[(120, 200)], panoptic_graph((120, 200))
    for graph, asked, recorded in ((semantic, 'panoptic', 'semantic'),
                                   (semantic, 'instance', 'semantic'),
                                   (panoptic, 'semantic', 'panoptic'),
                                   (panoptic_graph((120, 200), 'instance'), 'panoptic',
                                    'instance')):
        model = tiny_model_dir if recorded == 'semantic' else tiny_panoptic_model_dir
        with pytest.raises(TaskMismatchError) as info:
            onnx_engine(model, graph, task=asked)
        message = str(info.value)
        assert f"task '{asked}', but '{graph}' was exported for task {recorded}" in message
        assert f'mask2former_export --task {asked}' in message and '\n' not in message
    assert onnx_engine(tiny_model_dir, semantic).task == 'semantic'
    # A graph from before the task was recorded holds the semantic post-processing.
    old = retask_graph(semantic, None, tmp_path / 'old.onnx')
    engine = onnx_engine(tiny_model_dir, old)
    assert engine.task == 'semantic' and engine.segment(np.zeros((120, 200, 3), np.uint8)).ok
    with pytest.raises(TaskMismatchError, match='from before exported graphs recorded their '
                                                'task: it holds the semantic post-processing'):
        onnx_engine(tiny_model_dir, old, task='panoptic')


def test_segment_bag_panoptic_on_the_graph_equals_the_torch_backend(
        panoptic_graph, tiny_panoptic_model_dir, graphs, tiny_model_dir, tmp_path):
    from mask2former_ros_fixtures.sample_bag import INSTANCES_GT_TOPIC, write_sample_bag
    bag = write_sample_bag(tmp_path / 'bag', frames=3, height=120, width=200, seed=5,
                           instances=True)['path']
    script = shutil.which('segment_bag') or str(Path(sys.executable).with_name('segment_bag'))
    common = [str(bag), '--topic', '/camera/image_raw', '--gt-topic', '/camera/labels_gt',
              '--gt-instances-topic', INSTANCES_GT_TOPIC, '--no-output', '--no-progress']
    summaries = {}
    for backend, extra in (('torch', []), ('onnxruntime', [
            '--onnx-model', str(panoptic_graph((120, 200)))])):
        done = subprocess.run([sys.executable, script, *common, '--model',
                               str(tiny_panoptic_model_dir), '--backend', backend, *extra,
                               '--summary', str(tmp_path / backend)],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        summaries[backend] = json.loads((tmp_path / backend).read_text())
    torch_pq, onnx_pq = (summaries[b]['metrics']['panoptic']['all']['pq']
                         for b in ('torch', 'onnxruntime'))
    print(f'segment_bag PQ against the ground truth: torch {torch_pq}, onnxruntime {onnx_pq}')
    assert summaries['onnxruntime']['task'] == 'panoptic'  # task auto: the graph's
    assert abs(torch_pq - onnx_pq) <= 0.005
    # A semantic graph asked for panoptic: one line, exit 2, nothing segmented.
    done = subprocess.run([sys.executable, script, *common, '--model', str(tiny_model_dir),
                           '--backend', 'onnxruntime', '--onnx-model', str(graphs[(120, 200)]),
                           '--onnx-providers', 'cpu', '--task', 'panoptic'],
                          capture_output=True, text=True, timeout=300)
    assert_one_line_error(done, 2, 'was exported for task semantic',
                          'mask2former_export --task panoptic')
