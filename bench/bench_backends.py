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

For each frame size the model is exported once (``mask2former_export``; not timed). Each round
then runs each backend in a fresh process of its own (the two libraries' spinning thread pools
slow each other down inside one process: torch fell from 14.6 to 0.5 frames/s after ONNX
Runtime had run beside it), alternating which goes first, as this machine's speed drifts by up
to 20 % between runs. A process loads its engine, warms up on one frame, segments the same
synthetic scenes and reports frames/s, median ms per stage, its RSS and peak RSS (VmHWM) and
whether it imported torch; its labels are compared across backends. Printed per size: the mean
frames/s of the rounds, the ratio onnxruntime/torch and the share of equal label pixels.

    python bench/bench_backends.py                                  # 512x1024 and 1024x2048
    python bench/bench_backends.py --sizes 120x200,333x517,1024x2048 --frames 3 --rounds 1
    python bench/bench_backends.py --task panoptic --sizes 1024x2048   # tiny panoptic model

With ``--task panoptic`` or ``instance`` (default model: the trained tiny panoptic one) the
graph returns the query outputs and both backends run the same numpy post-processing; the
instance ids are compared too (panoptic quality of onnxruntime against torch).
"""

import argparse
import json
from pathlib import Path
import statistics
import subprocess
import sys
import tempfile

from bench_node import default_model
from frame_timing import STAGES
from mask2former_ros.core.backends.onnx_export import export_graph
from mask2former_ros.core.engine_config import parse_frame_size
from mask2former_ros.core.evaluation.panoptic_quality import PanopticQuality
import numpy as np

SERVE = """
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[5])
from frame_timing import segment_timed
from mask2former_ros.core.backends.create import create_engine
from mask2former_ros.core.engine_config import EngineConfig
from mask2former_ros_fixtures.synthetic import make_panoptic_scene
config, size = json.loads(sys.argv[1]), json.loads(sys.argv[2])
count, out = int(sys.argv[3]), sys.argv[4]
frames = [make_panoptic_scene(np.random.default_rng(300 + i), *size)[0] for i in range(count)]
engine = create_engine(EngineConfig(**config))
engine.segment(frames[0])
fps, stages, labels = segment_timed(engine, frames)
np.save(out, np.stack(labels))
if engine.task != 'semantic':
    np.save(out[:-4] + '_ids.npy', np.stack([engine.segment(f).instances for f in frames]))
status = dict(line.split(':', 1) for line in open('/proc/self/status') if ':' in line)
print(json.dumps({'fps': fps, 'stages': stages,
                  'rss_mb': int(status['VmRSS'].split()[0]) / 1024,
                  'peak_rss_mb': int(status['VmHWM'].split()[0]) / 1024,
                  'torch_imported': 'torch' in sys.modules, 'classes': engine.num_classes,
                  'things': sorted(engine.thing_ids),
                  'transformers_imported': 'transformers' in sys.modules}))
"""


def serve(config: dict, size: tuple[int, int], frames: int, labels: Path) -> dict:
    """Run one backend in a fresh process; return its measurements."""
    done = subprocess.run([sys.executable, '-c', SERVE, json.dumps(config),
                           json.dumps(list(size)), str(frames), str(labels),
                           str(Path(__file__).resolve().parent)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def _query_quality(work: Path, frames: int, classes: int, things: list[int]) -> float:
    """Return PQ of the onnxruntime labels and ids with the torch ones as the reference."""
    quality = PanopticQuality(classes, things)
    arrays = {name: (np.load(work / f'{name}.npy'), np.load(work / f'{name}_ids.npy'))
              for name in ('torch', 'onnxruntime')}
    for i in range(frames):
        quality.add(*(a[i] for a in arrays['onnxruntime']), *(a[i] for a in arrays['torch']))
    return quality.summary()['all']['pq']


def main(argv: list[str] | None = None) -> int:
    """Print the comparison per frame size."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', help='checkpoint (default: the trained tiny model)')
    parser.add_argument('--sizes', default='512x1024,1024x2048', help='frame sizes HxW')
    parser.add_argument('--frames', type=int, default=6, help='scenes per size and round')
    parser.add_argument('--rounds', type=int, default=3, help='rounds, order alternating')
    parser.add_argument('--input-size', default='checkpoint',
                        help="model input: 'checkpoint' (default), 'native' or a short side")
    parser.add_argument('--task', default='semantic', choices=('semantic', 'panoptic', 'instance'),
                        help='task of the graph and the torch engine (default semantic)')
    parser.add_argument('--json', help='also write the results to this file')
    args = parser.parse_args(argv)
    if args.model is None and args.task != 'semantic':
        from mask2former_ros_fixtures.tiny_model import ensure_tiny_panoptic_model
        args.model = str(ensure_tiny_panoptic_model())
    model = default_model(args.model)
    work = Path(tempfile.mkdtemp(prefix='bench_backends_'))
    results = []
    for text in args.sizes.split(','):
        size = parse_frame_size(text)
        graph = work / f'{text}.onnx'
        export_graph(model, size, graph, input_size=args.input_size, log=lambda _t: None,
                     task=args.task)
        configs = {'torch': {'model': model, 'input_size': args.input_size, 'task': args.task},
                   'onnxruntime': {'model': model, 'backend': 'onnxruntime',
                                   'onnx_model': str(graph), 'task': args.task}}
        runs: dict[str, list[dict]] = {name: [] for name in configs}
        for round_index in range(args.rounds):
            order = list(configs) if round_index % 2 == 0 else list(configs)[::-1]
            for name in order:
                runs[name].append(serve(configs[name], size, args.frames,
                                        work / f'{name}.npy'))
        labels = {name: np.load(work / f'{name}.npy') for name in configs}
        agreement = float((labels['torch'] == labels['onnxruntime']).mean())
        pq = None if args.task == 'semantic' else _query_quality(
            work, len(labels['torch']), runs['torch'][0]['classes'], runs['torch'][0]['things'])
        fps = {name: statistics.mean(r['fps'] for r in rs) for name, rs in runs.items()}
        row = {'size': text, 'fps': fps, 'ratio': fps['onnxruntime'] / fps['torch'],
               'agreement': agreement, 'pq_onnxruntime_vs_torch': pq,
               'rounds_fps': {n: [round(r['fps'], 2) for r in rs] for n, rs in runs.items()},
               'stages_ms': {n: {s: statistics.median(sum((r['stages'][s] for r in rs), []))
                                 for s in STAGES} for n, rs in runs.items()},
               'rss_mb': {n: max(r['rss_mb'] for r in rs) for n, rs in runs.items()},
               'peak_rss_mb': {n: max(r['peak_rss_mb'] for r in rs) for n, rs in runs.items()},
               'torch_imported': {n: rs[0]['torch_imported'] for n, rs in runs.items()}}
        results.append(row)
        print(f'{text}: torch {fps["torch"]:.2f} frames/s, onnxruntime '
              f'{fps["onnxruntime"]:.2f} frames/s (x{row["ratio"]:.2f}), labels '
              f'{agreement:.4%} equal' + ('' if pq is None else f', PQ(onnxruntime, torch) '
                                          f'{pq:.4f}') + f' ({args.frames} scenes, task '
              f'{args.task}, input size {args.input_size})', flush=True)
        for name in configs:
            st = row['stages_ms'][name]
            print(f'    {name:12s} ' + '  '.join(f'{s} {st[s]:7.2f} ms' for s in STAGES)
                  + f"  rounds {row['rounds_fps'][name]}  RSS {row['rss_mb'][name]:.0f} MB "
                  f"(peak {row['peak_rss_mb'][name]:.0f} MB), torch imported: "
                  f"{row['torch_imported'][name]}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
