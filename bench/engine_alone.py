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
Engine alone, the reference of bench_node and bench_multicam: same model and frames, one thread.

Prints one JSON line: frames/s and ms per frame by stage (p50) over ``--seconds``, after a
warm-up. Run in its own process so that its torch threads never compete with a node's.

    python bench/engine_alone.py --model DIR --size 1024x2048 --seconds 20
    python bench/engine_alone.py --model DIR --batch 4      # batches of 4 frames (4 cameras)
"""

import argparse
import json
import statistics
import time

from mask2former_ros.core.backends.create import create_engine
from mask2former_ros.core.engine_config import BACKEND_CHOICES, EngineConfig
from mask2former_ros_fixtures.synthetic import make_scene
import numpy as np


def measure(model: str, height: int, width: int, seconds: float, batch: int = 1,
            frames: int = 4, backend: str = 'torch', onnx_model: str = '') -> dict:
    """Segment batches of ``batch`` of ``frames`` scenes for ``seconds``; rate and medians."""
    rng = np.random.default_rng(0)
    images = [make_scene(rng, height, width)[0] for _ in range(frames)]
    batches = [[images[(i + k) % frames] for k in range(batch)] for i in range(frames)]
    engine = create_engine(EngineConfig(model=model, backend=backend, onnx_model=onnx_model))
    for images_of_batch in batches:
        engine.segment_batch(images_of_batch)  # warm-up
    stages: dict[str, list[float]] = {'preprocess': [], 'model': [], 'postprocess': []}
    totals, done = [], 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        began = time.perf_counter()
        results = engine.segment_batch(batches[done % frames])
        totals.append((time.perf_counter() - began) * 1e3)
        assert all(r.ok for r in results), [r.error for r in results]
        for stage, values in stages.items():
            values.append(results[0].timings_ms[stage])  # per frame: batch ms / batch size
        done += 1
    elapsed = time.perf_counter() - start
    return {'batch': batch, 'batches': done, 'frames': done * batch,
            'fps': round(done * batch / elapsed, 2),
            'ms_per_batch_p50': round(statistics.median(totals), 1),
            'ms_per_frame_p50': round(statistics.median(totals) / batch, 1),
            'stages_ms_p50': {k: round(statistics.median(v), 2) for k, v in stages.items()}}


def main() -> None:
    """Print the measurement as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--model', required=True)
    parser.add_argument('--size', default='1024x2048')
    parser.add_argument('--seconds', type=float, default=20.0)
    parser.add_argument('--batch', type=int, default=1, help='frames per segment_batch call')
    parser.add_argument('--backend', default='torch', choices=BACKEND_CHOICES)
    parser.add_argument('--onnx-model', default='', help='graph for --backend onnxruntime')
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split('x'))
    print(json.dumps(measure(args.model, height, width, args.seconds, args.batch,
                             backend=args.backend, onnx_model=args.onnx_model)))


if __name__ == '__main__':
    main()
