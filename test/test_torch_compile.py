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
torch.compile of the torch engine: the labels of eager fp32, compiled at construction only.

Compiling the tiny model costs about a minute of this CPU (cold; about 25 s with Inductor's
cache in ``$XDG_CACHE_HOME/mask2former_ros/torch_compile`` warm), so the suite pays two: one per
precision. Every frame size goes through the one compiled model input (the checkpoint squashes
frames to 256x512), so no frame compiles again. The compile uses ``fullgraph=True``: a graph
break in the model forward would be a compile failure, and ``compile_status`` would say so.
"""

import json
import os
from pathlib import Path
import subprocess
import sys

from compile_toy import Toy
from mask2former_ros.core.backends.onnx_cache import cache_root
from mask2former_ros.core.backends.torch_compile import (
    _torch_default_cache_dir, ModelForward, resolve_compile)
from mask2former_ros.core.backends.torch_engine import SegmentationEngine
from mask2former_ros.core.engine_config import EngineConfig
from mask2former_ros_fixtures.synthetic import make_scene
import numpy as np
import pytest
import torch
HERE = Path(__file__).resolve().parent
SIZES = ((120, 200), (333, 517), (1024, 2048))
USER_CACHE = os.environ.get('TORCHINDUCTOR_CACHE_DIR')


@pytest.fixture(scope='module')
def scenes() -> list[np.ndarray]:
    return [make_scene(np.random.default_rng(280 + i), h, w)[0]
            for i, (h, w) in enumerate(SIZES)]


@pytest.fixture(scope='module')
def eager_labels(tiny_model_dir, scenes) -> list[np.ndarray]:
    engine = SegmentationEngine(EngineConfig(model=str(tiny_model_dir), compile='off'))
    assert engine.compile_status == 'off' and engine.compile_seconds == 0.0
    return [engine.segment(scene).labels for scene in scenes]


@pytest.mark.parametrize('precision', ['fp32', 'bf16'])
def test_compiled_labels_agree_with_eager_fp32(tiny_model_dir, scenes, eager_labels,
                                               precision):
    logs, warnings = [], []
    engine = SegmentationEngine(EngineConfig(model=str(tiny_model_dir), precision=precision,
                                             compile='default'),
                                log=logs.append, warn=warnings.append)
    assert engine.compile_status == 'default' and not warnings, warnings
    configured = engine.compile_seconds
    assert configured > 0
    assert sum('compiling the model forward for input 1x3x256x512' in line
               for line in logs) == 1, logs
    labels = [engine.segment(scene).labels for scene in scenes]
    assert engine.compile_seconds == configured  # no frame size compiled on the data path
    for size, ours, reference in zip(SIZES, labels, eager_labels, strict=True):
        assert ours.shape == size
        assert (ours == reference).mean() >= 0.995, (size, (ours == reference).mean())
    cache = Path(os.environ['TORCHINDUCTOR_CACHE_DIR'])
    if USER_CACHE in (None, _torch_default_cache_dir()):  # else the user's choice is kept
        assert cache == cache_root() / 'torch_compile' / 'inductor'
    assert any(cache.rglob('*')), cache


def test_compile_failure_is_one_warning_and_eager_serving(tiny_model_dir, tmp_path):
    """A process without a C++ compiler: Inductor cannot build CPU code, the engine serves."""
    script = (
        'import json\n'
        'import numpy as np\n'
        'from mask2former_ros.core.backends.create import create_engine\n'
        'from mask2former_ros.core.engine_config import EngineConfig\n'
        'warnings = []\n'
        f"engine = create_engine(EngineConfig(model={str(tiny_model_dir)!r}, compile='default'),\n"
        '                       warn=warnings.append)\n'
        'engine.warmup()\n'
        'labels = engine.segment(np.full((120, 200, 3), 90, np.uint8)).labels\n'
        "print(json.dumps({'status': engine.compile_status, 'warnings': warnings,\n"
        "                  'shape': list(labels.shape)}))\n")
    result = _run_python(script, tmp_path, CXX=str(tmp_path / 'no-such-c++'))
    assert result['status'].startswith('off (failed: InvalidCxxCompiler'), result
    assert 'no-such-c++' in result['status']
    assert len(result['warnings']) == 1, result['warnings']
    assert 'compile=default failed, the model runs eager' in result['warnings'][0]
    assert result['shape'] == [120, 200]


def test_a_compiler_that_fails_mid_compile_leaves_the_forward_eager(tmp_path):
    """A C++ compiler that answers --version but cannot compile: Inductor fails while building."""
    compiler = tmp_path / 'broken-c++'
    compiler.write_text('#!/bin/sh\n[ "$1" = --version ] && echo "g++ 12" && exit 0\nexit 1\n')
    compiler.chmod(0o755)
    script = (
        'import json, torch\n'
        'from compile_toy import Toy\n'
        'from mask2former_ros.core.backends.torch_compile import ModelForward\n'
        'warnings = []\n'
        "forward = ModelForward(Toy().eval(), torch.device('cpu'), torch.float32, 'default',\n"
        '                       lambda _: None, warnings.append)\n'
        'forward.prepare((1, 3, 16, 16))\n'
        'with torch.inference_mode():\n'
        '    masks = forward(torch.rand(1, 3, 16, 16))[1]\n'
        "print(json.dumps({'status': forward.status, 'warnings': warnings,\n"
        "                  'active': forward.active, 'shape': list(masks.shape)}))\n")
    result = _run_python(script, tmp_path, CXX=str(compiler))
    assert result['status'].startswith('off (failed: InductorError: CppCompileError'), result
    assert len(result['warnings']) == 1 and not result['active']
    assert result['shape'] == [1, 4, 16, 16]


def _run_python(script: str, tmp_path: Path, **env: str) -> dict:
    """Run ``script`` in a fresh process with an empty cache and ``env``; return its JSON line."""
    environ = {k: v for k, v in os.environ.items()
               if k not in ('TORCHINDUCTOR_CACHE_DIR', 'TRITON_CACHE_DIR')}
    environ.update(env, XDG_CACHE_HOME=str(tmp_path / 'cache'),
                   PYTHONPATH=os.pathsep.join([str(HERE), environ.get('PYTHONPATH', '')]))
    done = subprocess.run([sys.executable, '-c', script], env=environ, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_new_shapes_compile_once_each_up_to_a_bound_then_run_eager():
    torch.manual_seed(0)
    logs, warnings = [], []
    forward = ModelForward(Toy().eval(), torch.device('cpu'), torch.float32, 'default',
                           logs.append, warnings.append, max_shapes=2)
    shapes = [(1, 3, 16, 24), (1, 3, 32, 16), (1, 3, 24, 24)]
    inputs = [torch.rand(shape) for shape in shapes]
    with torch.inference_mode():
        forward.prepare(shapes[0])
        assert forward.shapes == [shapes[0]] and forward.covers(shapes[0])
        seconds = []
        for _ in range(4):  # alternating sizes: the third is over the bound
            for x in inputs:
                _, masks = forward(x)
                torch.testing.assert_close(masks, forward.eager(x)[1])
            seconds.append(forward.compile_seconds)
    assert forward.shapes == shapes[:2] and forward.status == 'default'
    assert seconds[0] > 0 and len(set(seconds)) == 1  # compiled in round one, never again
    compiling = [line for line in logs if 'compiling the model forward' in line]
    assert len(compiling) == 2 and 'input 1x3x32x16 (shape 2 of at most 2' in compiling[1]
    assert len(warnings) == 1 and 'input 1x3x24x24 runs eager' in warnings[0], warnings


def test_auto_is_off_on_the_cpu_and_cuda_graphs_on_cuda():
    assert resolve_compile('auto', torch.device('cpu')) == 'off'
    assert resolve_compile(' Auto', torch.device('cuda', 0)) == 'reduce-overhead'
    assert resolve_compile('max-autotune', torch.device('cpu')) == 'max-autotune'
    with pytest.raises(ValueError, match='allowed auto, off, default, reduce-overhead'):
        resolve_compile('fast', torch.device('cpu'))


def test_segment_bag_takes_compile_and_reads_the_frame_size_it_needs():
    from mask2former_ros.offline.cli import build_parser
    from mask2former_ros.offline.options import Options
    from mask2former_ros.offline.run import needs_frame_size

    parser = build_parser()
    args = parser.parse_args(['in.mcap', '--topic', '/image', '--compile', 'reduce-overhead'])
    assert args.compile == 'reduce-overhead'
    with pytest.raises(SystemExit):
        parser.parse_args(['in.mcap', '--topic', '/image', '--compile', 'fast'])
    assert Options(topic='/image').compile == 'auto'
    assert needs_frame_size(Options(topic='/image', compile='default'))
    assert not needs_frame_size(Options(topic='/image', compile='default', frame_size='8x8'))
    assert not needs_frame_size(Options(topic='/image'))  # auto: no bag read for the CPU


def test_diagnostics_say_the_compile_mode_or_why_it_is_off():
    from mask2former_ros.core.runtime.stats import WindowStats
    from mask2former_ros.ros.diagnostics import BatchStats, model_status, ModelInfo

    batches = BatchStats({}, WindowStats(), WindowStats(), {})
    failed = 'off (failed: InvalidCxxCompiler: No working C++ compiler found)'
    status = model_status('node', ModelInfo(model='m', loaded=True, compile=failed,
                                            compile_seconds=0.5), batches)
    values = {kv.key: kv.value for kv in status.values}
    assert values['compile'] == failed and values['compile_seconds'] == '0.50'
    assert status.message == 'loaded'  # serving eager: not an error
