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
fp16/bf16 against fp32: label agreement and ms per frame at several frame sizes, in one run.

Rows per precision: ``autocast`` (what the engine does: fp32 weights, the model forward under
``torch.autocast``, post-processing in fp32) and ``whole-model cast`` (the old way:
``model.to(dtype)`` and the input cast, post-processing as before), each compared pixel by
pixel with the fp32 labels of the same frames. Runs on the CPU (autocast supports fp16 and bf16
there), so the GPU path's numerics are checked on any machine.

    python bench/bench_precision.py                 # trained tiny model, 3 scenes per size
    python bench/bench_precision.py --model DIR --frames 5 --sizes 1024x2048
"""

import argparse
import copy
import json
import statistics
import time

from bench_node import default_model
from mask2former_ros.core.backends.torch_engine import SegmentationEngine
from mask2former_ros.core.engine_config import EngineConfig
from mask2former_ros_fixtures.synthetic import make_scene
import numpy as np
import torch

DEFAULT_SIZES = ('120x200', '333x517', '512x1024', '1024x2048')


def whole_model_cast(engine: SegmentationEngine, dtype: torch.dtype) -> SegmentationEngine:
    """Return a copy of ``engine`` whose forward runs a ``model.to(dtype)`` copy (old way)."""
    cast = copy.deepcopy(engine.model).to(dtype)
    clone = copy.copy(engine)

    def forward(pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = cast(pixel_values=pixel_values.to(dtype))
        return outputs.class_queries_logits, outputs.masks_queries_logits
    clone._forward = forward
    return clone


def run(engine: SegmentationEngine, frames: list[np.ndarray]) -> tuple[list, float]:
    """Return the label maps of ``frames`` and the median ms per frame."""
    labels, times = [], []
    for frame in frames:
        started = time.perf_counter()
        result = engine.segment_batch([frame])[0]
        times.append((time.perf_counter() - started) * 1e3)
        labels.append(result.labels)
    return labels, statistics.median(times)


def agreement(reference: list, labels: list) -> float:
    """Fraction of pixels with the same label (a failed frame counts as 0)."""
    same = sum(int((r == x).sum()) if x is not None else 0
               for r, x in zip(reference, labels, strict=True))
    return same / sum(r.size for r in reference)


def main(argv: list[str] | None = None) -> int:
    """Print agreement with fp32 per size, precision and method."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', help='checkpoint (default: the trained tiny model)')
    parser.add_argument('--frames', type=int, default=3, help='scenes per size')
    parser.add_argument('--sizes', nargs='+', default=list(DEFAULT_SIZES), help='HxW')
    parser.add_argument('--json', help='also write the results to this file')
    args = parser.parse_args(argv)
    model = default_model(args.model)
    engines = {name: SegmentationEngine(EngineConfig(model=model, precision=name))
               for name in ('fp32', 'bf16', 'fp16')}
    variants = {'fp32': engines['fp32']}
    for name in ('bf16', 'fp16'):
        variants[f'{name} autocast'] = engines[name]
        variants[f'{name} whole-model cast'] = whole_model_cast(engines['fp32'],
                                                                engines[name].dtype)
    print(f'model {model}, torch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'{args.frames} scenes per size')
    print(f"{'size':>10} {'variant':<24} {'agree with fp32':>16} {'ms/frame':>9}")
    rows = []
    for size in args.sizes:
        height, width = (int(v) for v in size.split('x'))
        rng = np.random.default_rng(height * 7 + width)
        frames = [make_scene(rng, height, width)[0] for _ in range(args.frames)]
        reference, _ = run(engines['fp32'], frames[:1])  # warm-up at this size
        reference, _ = run(engines['fp32'], frames)
        for name, engine in variants.items():
            labels, ms = run(engine, frames)
            share = agreement(reference, labels)
            rows.append({'size': size, 'variant': name, 'agreement': share, 'ms': ms})
            print(f'{size:>10} {name:<24} {share * 100:15.3f}% {ms:9.1f}')
    if args.json:
        with open(args.json, 'w') as handle:
            json.dump(rows, handle, indent=2)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
