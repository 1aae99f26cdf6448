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
torch.compile against eager on this machine's CPU, in one run: ms per stage, labels, compile time.

One engine per compile mode and precision (eager fp32 is the reference) on the trained tiny
model, with ``input_size native`` by default so that the model runs at the frame size. Each
compiled engine compiles at construction for the first frame size (the configure of the node)
and once more for the second size. Then rounds alternate between the engines over the same
frames (each frame through every engine back to back); per frame size and engine the table
gives the median ms per stage, the model stage's speed-up against eager fp32 (median of the
ratios of the same frame and round), the share of labels equal to eager fp32's,
the seconds of the configure (load and compile, cold: an empty cache) and of the second size's
compile, and the configure of a fresh process on the now filled cache (warm, what a restart
pays). Graph breaks come from ``torch._dynamo.explain`` of the model forward (run before any
compile: it resets dynamo's caches).

    python bench/bench_compile.py                              # fp32, every mode (~1 h here)
    python bench/bench_compile.py --precisions fp32,bf16 --modes default
    python bench/bench_compile.py --sizes 256x512 --input-size checkpoint --rounds 5
"""

import argparse
import json
import os
from pathlib import Path
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

STAGES = ('preprocess', 'model', 'postprocess')


def parse_size(text: str) -> tuple[int, int]:
    """Parse 'HxW'."""
    height, width = text.lower().split('x')
    return int(height), int(width)


def make_engine(model: str, mode: str, precision: str, input_size: str,
                frame_size: tuple[int, int]) -> tuple[Any, float]:
    """Return an engine compiled (or not) for ``frame_size`` and its configure seconds."""
    from mask2former_ros.core.backends.torch_engine import SegmentationEngine
    from mask2former_ros.core.engine_config import EngineConfig
    started = time.perf_counter()
    engine = SegmentationEngine(EngineConfig(
        model=model, device='cpu', precision=precision, input_size=input_size,
        frame_size=f'{frame_size[0]}x{frame_size[1]}',
        compile='off' if mode == 'eager' else mode), warn=lambda text: print('warning:', text))
    return engine, time.perf_counter() - started


def graph_breaks(engine: Any, frame_size: tuple[int, int]) -> dict[str, Any]:
    """Run ``torch._dynamo.explain`` on the engine's model forward at ``frame_size``."""
    import torch
    shape = (1, 3, *engine.preprocessing.target_size(*frame_size, engine.input_size))
    with torch.inference_mode():
        report = torch._dynamo.explain(engine._forward.eager)(torch.zeros(shape))
    return {'graphs': report.graph_count, 'graph_breaks': report.graph_break_count,
            'reasons': [str(r.reason)[:120] for r in report.break_reasons]}


def configure_only(args: argparse.Namespace) -> int:
    """Child process: print the configure seconds of one engine as JSON (the warm restart)."""
    mode, precision = args.configure_only.split(':')
    engine, seconds = make_engine(args.model, mode, precision, args.input_size,
                                  parse_size(args.sizes.split(',')[0]))
    print(json.dumps({'configure_s': seconds, 'compile_s': engine.compile_seconds,
                      'status': engine.compile_status}))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', help='checkpoint (default: the trained tiny model)')
    parser.add_argument('--sizes', default='512x1024,1024x2048', help='frame sizes HxW')
    parser.add_argument('--modes', default='default,reduce-overhead,max-autotune',
                        help='compile modes measured against eager')
    parser.add_argument('--precisions', default='fp32', help='e.g. fp32,bf16')
    parser.add_argument('--input-size', default='native', help='engine input_size')
    parser.add_argument('--rounds', type=int, default=3, help='alternating timed rounds')
    parser.add_argument('--frames', type=int, default=2, help='frames per size and round')
    parser.add_argument('--cache', help='XDG_CACHE_HOME of the compiled code (default: a new '
                                        'empty folder, so the first compile is cold)')
    parser.add_argument('--no-warm', action='store_true', help='skip the warm restarts')
    parser.add_argument('--json', type=Path, help='also write the rows as JSON')
    parser.add_argument('--configure-only', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.model:
        from mask2former_ros_fixtures.tiny_model import ensure_tiny_model
        args.model = str(ensure_tiny_model())  # before XDG_CACHE_HOME moves
    if args.configure_only:
        return configure_only(args)
    cache = args.cache or tempfile.mkdtemp(prefix='bench_compile_')
    os.environ['XDG_CACHE_HOME'] = cache
    for name in ('TORCHINDUCTOR_CACHE_DIR', 'TRITON_CACHE_DIR'):
        os.environ.pop(name, None)  # the engine puts them under XDG_CACHE_HOME
    from mask2former_ros_fixtures.synthetic import make_scene
    import numpy as np
    import torch

    sizes = [parse_size(s) for s in args.sizes.split(',')]
    variants = [('eager', 'fp32')] + [
        (mode, precision) for precision in args.precisions.split(',')
        for mode in ['eager', *args.modes.split(',')] if (mode, precision) != ('eager', 'fp32')]
    frames = {size: [make_scene(np.random.default_rng(900 + i), *size)[0]
                     for i in range(args.frames)] for size in sizes}
    engines: dict[tuple[str, str], Any] = {}
    info: dict[tuple[str, str], dict[str, Any]] = {}
    breaks: dict[str, dict[str, Any]] = {}
    for variant in sorted(variants, key=lambda v: v[0] != 'eager'):  # eager engines first
        mode, precision = variant
        if mode != 'eager' and not breaks:  # explain resets dynamo: before any compile
            breaks = {p: graph_breaks(engines[('eager', p)], sizes[0])
                      for p in args.precisions.split(',')}
        print(f'configuring {mode} {precision} ...', flush=True)
        engine, seconds = make_engine(args.model, mode, precision, args.input_size, sizes[0])
        info[variant] = {'configure_s': seconds, 'compile_s': engine.compile_seconds,
                         'status': engine.compile_status}
        for size in sizes[1:]:  # a new size compiles once, before the timed rounds
            before = engine.compile_seconds
            engine.segment(frames[size][0])
            info[variant][f'compile_{size[0]}x{size[1]}_s'] = engine.compile_seconds - before
        engines[variant] = engine
    breaks = breaks or {p: graph_breaks(engines[('eager', p)], sizes[0])
                        for p in args.precisions.split(',')}
    stages: dict[tuple, dict[str, list[float]]] = {}
    labels: dict[tuple, list[np.ndarray]] = {}
    for round_index in range(args.rounds):
        for size in sizes:
            for frame in frames[size]:  # every engine on a frame back to back: paired times
                for variant, engine in engines.items():
                    key = (size, variant)
                    result = engine.segment(frame)
                    for stage in STAGES:
                        stages.setdefault(key, {s: [] for s in STAGES})[stage].append(
                            result.timings_ms[stage])
                    if round_index == 0:
                        labels.setdefault(key, []).append(result.labels)
    if not args.no_warm:
        for variant in variants:
            if variant[0] == 'eager':
                continue
            done = subprocess.run(
                [sys.executable, __file__, '--configure-only', ':'.join(variant), '--model',
                 args.model, '--sizes', args.sizes, '--input-size', args.input_size],
                capture_output=True, text=True, env={**os.environ, 'XDG_CACHE_HOME': cache})
            lines = done.stdout.strip().splitlines()
            if done.returncode == 0 and lines:
                warm = json.loads(lines[-1])
                info[variant].update(warm_configure_s=warm['configure_s'],
                                     warm_compile_s=warm['compile_s'])
            else:
                info[variant]['warm_error'] = done.stderr.strip()[-300:]
    rows = []
    for size in sizes:
        reference = (size, ('eager', 'fp32'))
        for variant in variants:
            key = (size, variant)
            med = {stage: statistics.median(stages[key][stage]) for stage in STAGES}
            paired = [ref / ms for ref, ms in zip(stages[reference]['model'],
                                                  stages[key]['model'], strict=True)]
            equal = sum(int((a == b).sum()) for a, b in zip(labels[key], labels[reference],
                                                            strict=True))
            rows.append({'size': f'{size[0]}x{size[1]}', 'mode': variant[0],
                         'precision': variant[1], **{f'{s}_ms': med[s] for s in STAGES},
                         'model_speedup': statistics.median(paired),
                         'labels_equal': equal / sum(x.size for x in labels[reference]),
                         **info[variant]})
    print_table(rows, sizes, args, breaks, torch.__version__)
    if args.json:
        args.json.write_text(json.dumps({'rows': rows, 'graph_breaks': breaks}, indent=1))
    return 0


def print_table(rows: list[dict], sizes: list, args: argparse.Namespace, breaks: dict,
                version: str) -> None:
    """Print the rows as a markdown table, with the graph-break counts under it."""
    print(f'\ntorch {version} | CPU, {os.cpu_count()} cores | input_size {args.input_size} | '
          f'{args.rounds} rounds x {args.frames} frames per size, alternating engines')
    print('| frame | mode | precision | preprocess ms | model ms | postprocess ms | '
          'model speed-up | labels = eager fp32 | configure s cold | compile s cold | '
          'next size compile s | configure s warm | compile s warm | status |')
    print('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|')
    second = f'compile_{sizes[1][0]}x{sizes[1][1]}_s' if len(sizes) > 1 else ''
    for row in rows:
        cells = [row['size'], row['mode'], row['precision'],
                 *[f"{row[f'{s}_ms']:.1f}" for s in STAGES],
                 f"x{row['model_speedup']:.2f}", f"{100 * row['labels_equal']:.2f}%",
                 f"{row['configure_s']:.1f}", f"{row['compile_s']:.1f}",
                 f'{row[second]:.1f}' if second in row else '',
                 f"{row['warm_configure_s']:.1f}" if 'warm_configure_s' in row else '',
                 f"{row['warm_compile_s']:.1f}" if 'warm_compile_s' in row else '',
                 row['status'] + (f" ({row['warm_error']})" if 'warm_error' in row else '')]
        print('| ' + ' | '.join(cells) + ' |')
    for precision, report in breaks.items():
        print(f"torch._dynamo.explain, model forward {precision}: {report['graphs']} graph(s), "
              f"{report['graph_breaks']} graph break(s) {report['reasons'] or ''}")


if __name__ == '__main__':
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    sys.exit(main())
