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
Soak: segmentation_node driven at 30 Hz for a long time; RSS, latency p95 and rate per minute.

    python bench/soak.py                         # 10 minutes, 1024x2048, trained tiny model
    python bench/soak.py --minutes 2 --size 480x640

Pass criteria printed at the end: RSS growth after the first (warm-up) minute under 50 MB, and
no upward latency trend (least-squares slope of p95 per minute, and last minute vs second).
"""

import argparse
import json
from pathlib import Path
import sys

from bench_node import (
    backend_args, default_model, driver_node, export_for, prepare_environment, run_one)
from mask2former_ros.core.engine_config import BACKEND_CHOICES
from mask2former_ros_fixtures.image_encoding import make_image_msg
from mask2former_ros_fixtures.synthetic import make_scene
import numpy as np


def soak(model: str, seconds: float, rate: float, size: tuple[int, int],
         window: float = 60.0, node_args: list[str] | None = None) -> dict:
    """Run the soak and return per-window rows plus the verdict."""
    rng = np.random.default_rng(0)
    frames = [make_image_msg(make_scene(rng, *size)[0], 'rgb8') for _ in range(4)]
    with driver_node('soak_driver') as node:
        result = run_one(node, 'segmentation_node', model, frames, seconds, rate,
                         node_args or [], window=window)
    rows = [w for w in result['latency_over_time'] if w['rss_mb'] is not None]
    after_warmup = rows[1:] if len(rows) > 2 else rows
    rss_growth = after_warmup[-1]['rss_mb'] - after_warmup[0]['rss_mb']
    p95 = [w['p95'] for w in after_warmup if w['p95'] is not None]
    slope = float(np.polyfit(np.arange(len(p95)), p95, 1)[0]) if len(p95) > 1 else 0.0
    result.update({
        'rss_growth_mb_after_warmup': round(rss_growth, 1),
        'latency_p95_slope_ms_per_window': round(slope, 2),
        'pass_rss': rss_growth < 50.0,
        'pass_latency': (not p95) or p95[-1] <= 1.5 * p95[0] + 20.0,
    })
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the soak from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--model', help='checkpoint (default: the trained tiny model)')
    parser.add_argument('--minutes', type=float, default=10.0)
    parser.add_argument('--window', type=float, default=60.0, help='seconds per row')
    parser.add_argument('--rate', type=float, default=30.0)
    parser.add_argument('--size', default='1024x2048')
    parser.add_argument('--json', help='also write the result to this file')
    parser.add_argument('--backend', default='torch', choices=BACKEND_CHOICES)
    parser.add_argument('--onnx-model', help='graph for --backend onnxruntime (default: '
                        'export the model for --size first)')
    args = parser.parse_args(argv)
    prepare_environment()
    model = default_model(args.model)
    size = tuple(int(v) for v in args.size.split('x'))
    graph = export_for(args.backend, model, args.size, args.onnx_model)
    result = soak(model, args.minutes * 60, args.rate, size, args.window,
                  backend_args(args.backend, graph)['node'])
    print(f'soak: {args.size} rgb8 at {args.rate:g} Hz for {args.minutes:g} min, model {model}, '
          f'backend {args.backend}')
    print(f"{'t (s)':>6}{'outputs/s':>11}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'RSS MB':>9}")
    for w in result['latency_over_time']:
        print(f"{w['t']:>6}{w['hz']:>11}{w['p50']!s:>9}{w['p95']!s:>9}{w['max']!s:>9}"
              f"{w['rss_mb']!s:>9}")
    print(f"frames sent {result['frames_sent']}, outputs {result['outputs']}, drop ratio "
          f"{result['drop_ratio']}, CPU {result['cpu_percent_mean']} %")
    print(f"RSS growth after warm-up: {result['rss_growth_mb_after_warmup']} MB "
          f"({'PASS' if result['pass_rss'] else 'FAIL'} < 50 MB); p95 slope "
          f"{result['latency_p95_slope_ms_per_window']} ms/window "
          f"({'PASS' if result['pass_latency'] else 'FAIL'}: no upward trend)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0 if result['pass_rss'] and result['pass_latency'] else 1


if __name__ == '__main__':
    sys.exit(main())
