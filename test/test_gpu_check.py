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

"""bench/gpu_check.py runs on the CPU: CUDA rows say skipped, the CPU rows have numbers."""

import json
from pathlib import Path
import subprocess
import sys

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_without_cuda(tiny_model_dir, tiny_onnx_graph, tmp_path):
    out = tmp_path / 'rows.json'
    graph = tiny_onnx_graph((1024, 2048))  # shared with test_onnx_backend: one export a run
    done = subprocess.run([sys.executable, str(ROOT / 'bench' / 'gpu_check.py'), '--quick',
                           '--tiny', str(tiny_model_dir), '--tiny-graph', str(graph),
                           '--json', str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    table = [line for line in done.stdout.splitlines() if line.startswith('| ')]
    main = [line for line in table if not line.startswith('| e)')]
    assert main[0].startswith('| row | frames/s') and len(main) == 1 + 15, done.stdout
    compiled = [line for line in table if line.startswith('| e)')]
    assert compiled[0].startswith('| e) compiled torch') and len(compiled) == 1 + 14
    rows = {row['row']: row for row in json.loads(out.read_text())}
    for name, row in rows.items():
        if ('cuda' in name.lower() or 'tensorrt' in name.lower() or name.startswith('b)')
                or 'Swin-L' in name):
            assert 'skipped' in row, name
    reference = rows['c) tiny torch cpu fp32 (reference)']
    onnx = rows['c) tiny onnxruntime CPU']
    assert reference['fps'] > 0 and onnx['fps'] > 0
    assert onnx['agreement'] >= 0.995
    # Section e's worker row runs on the CPU: a child process, the inference worker fed at
    # 30 Hz with the newest frame winning, against the engine alone on its thread.
    worker = rows['e) worker at 30 Hz, tiny cpu eager']
    assert worker['fps'] > 0 and worker['alone_fps'] > 0 and worker['status'] == 'off'
    assert worker['input_hz'] > 15 and not worker['worker_death']
    assert not [name for name in rows if name.endswith(('failed', 'skipped'))]
