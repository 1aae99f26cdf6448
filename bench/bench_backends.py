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
Backends in one run: torch eager vs ONNX Runtime (CPU), frames/s, ms per stage, labels, RSS.

For each frame size the trained tiny model is exported once (``mask2former_export``; not
timed), then the torch engine and the onnxruntime engine segment the same synthetic scenes on
this thread, ``--rounds`` times, the order reversed every other round (this machine's speed
drifts by up to 20 % between runs). Printed per size: frames/s (mean of the rounds), median ms
per stage, the ratio onnxruntime/torch, and the share of pixels with equal labels. ``--rss``
adds the resident memory of a process that serves with each backend alone (and whether it
imported torch).

    python bench/bench_backends.py                                  # 512x1024 and 1024x2048
    python bench/bench_backends.py --sizes 120x200,333x517,1024x2048 --frames 3 --rounds 1
    python bench/bench_backends.py --rss
"""

import argparse
import json
from pathlib import Path
import statistics
import subprocess
import sys
import tempfile
import time

from bench_node import default_model
from mask2former_ros.core.backends import create_engine
from mask2former_ros.core.engine_config import EngineConfig, parse_frame_size
from mask2former_ros.core.onnx_export import export_graph
from mask2former_ros_fixtures.synthetic import make_scene
import numpy as np

STAGES = ('preprocess', 'model', 'postprocess')
SERVE = """
import json, resource, sys, time
import numpy as np
from mask2former_ros.core.backends import create_engine
from mask2former_ros.core.engine_config import EngineConfig
config = EngineConfig(**json.loads(sys.argv[1]))
engine = create_engine(config)
frame = np.random.default_rng(0).integers(0, 255, (*json.loads(sys.argv[2]), 3), np.uint8)
for _ in range(5):
    engine.segment(frame)
rss = int(open('/proc/self/statm').read().split()[1]) * 4096 / 2**20
print(json.dumps({'rss_mb': rss,
                  'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  'torch_imported': 'torch' in sys.modules,
                  'transformers_imported': 'transformers' in sys.modules}))
"""


def run(engine, frames: list[np.ndarray]) -> tuple[float, dict[str, list[float]], list]:
    """Return (seconds, ms per stage per frame, labels) of segmenting ``frames``."""
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    labels = []
    started = time.perf_counter()
    for frame in frames:
        result = engine.segment(frame)
        labels.append(result.labels)
        for stage in STAGES:
            stages[stage].append(result.timings_ms[stage])
    return time.perf_counter() - started, stages, labels


def serving_rss(model: str, graph: Path, size: tuple[int, int]) -> dict[str, dict]:
    """RSS of a fresh process serving 5 frames with each backend alone."""
    out = {}
    for backend, extra in (('torch', {}), ('onnxruntime', {'onnx_model': str(graph)})):
        config = json.dumps({'model': model, 'backend': backend, **extra})
        done = subprocess.run([sys.executable, '-c', SERVE, config, json.dumps(list(size))],
                              capture_output=True, text=True, check=True)
        out[backend] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the comparison per frame size."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', help='checkpoint (default: the trained tiny model)')
    parser.add_argument('--sizes', default='512x1024,1024x2048', help='frame sizes HxW')
    parser.add_argument('--frames', type=int, default=5, help='scenes per size and round')
    parser.add_argument('--rounds', type=int, default=3, help='rounds, order alternating')
    parser.add_argument('--rss', action='store_true', help='also the RSS of each backend')
    args = parser.parse_args(argv)
    model = default_model(args.model)
    work = Path(tempfile.mkdtemp(prefix='bench_backends_'))
    torch_engine = create_engine(EngineConfig(model=model))
    rows = []
    for text in args.sizes.split(','):
        size = parse_frame_size(text)
        graph = work / f'{text}.onnx'
        started = time.perf_counter()
        export_graph(model, size, graph, log=lambda _t: None)
        export_s = time.perf_counter() - started
        onnx = create_engine(EngineConfig(model=model, backend='onnxruntime',
                                          onnx_model=str(graph)))
        frames = [make_scene(np.random.default_rng(300 + i), *size)[0]
                  for i in range(args.frames)]
        engines = {'torch': torch_engine, 'onnxruntime': onnx}
        for engine in engines.values():  # warm-up
            engine.segment(frames[0])
        seconds = {k: [] for k in engines}
        stages = {k: {s: [] for s in STAGES} for k in engines}
        labels = {}
        for round_index in range(args.rounds):
            order = list(engines) if round_index % 2 == 0 else list(engines)[::-1]
            for name in order:
                took, per_stage, labels[name] = run(engines[name], frames)
                seconds[name].append(took)
                for stage in STAGES:
                    stages[name][stage] += per_stage[stage]
        fps = {k: len(frames) / statistics.mean(v) for k, v in seconds.items()}
        pairs = zip(labels['torch'], labels['onnxruntime'], strict=True)
        same = sum(int((a == b).sum()) for a, b in pairs)
        agreement = same / sum(a.size for a in labels['torch'])
        rows.append({'size': text, 'export_s': export_s, 'fps': fps,
                     'ratio': fps['onnxruntime'] / fps['torch'], 'agreement': agreement,
                     'stages_ms': {k: {s: statistics.median(v) for s, v in st.items()}
                                   for k, st in stages.items()},
                     'rounds_fps': {k: [len(frames) / s for s in v]
                                    for k, v in seconds.items()}})
        print(f'{text}: torch {fps["torch"]:.2f} frames/s, onnxruntime '
              f'{fps["onnxruntime"]:.2f} frames/s (x{rows[-1]["ratio"]:.2f}), labels '
              f'{agreement:.4%} equal, export {export_s:.0f} s', flush=True)
        for name in engines:
            st = rows[-1]['stages_ms'][name]
            print(f'    {name:12s} ' + '  '.join(f'{s} {st[s]:7.2f} ms' for s in STAGES)
                  + f"  rounds {', '.join(f'{v:.2f}' for v in rows[-1]['rounds_fps'][name])}")
    if args.rss:
        size = parse_frame_size(args.sizes.split(',')[-1])
        rss = serving_rss(model, work / f'{args.sizes.split(",")[-1]}.onnx', size)
        for name, info in rss.items():
            print(f"RSS serving with {name}: {info['rss_mb']:.0f} MB (peak "
                  f"{info['peak_rss_mb']:.0f} MB), torch imported: {info['torch_imported']}, "
                  f"transformers imported: {info['transformers_imported']}")
        rows.append({'rss': rss})
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
