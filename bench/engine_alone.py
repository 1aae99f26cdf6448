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
Engine alone, the reference of bench_node: the same model and frames, one thread, back to back.

Prints one JSON line: frames/s and ms per frame by stage (p50) over ``--seconds``, after a
warm-up. Run in its own process so that its torch threads never compete with a node's.

    python bench/engine_alone.py --model DIR --size 1024x2048 --seconds 20
"""

import argparse
import json
import statistics
import time

from mask2former_ros.core.engine import EngineConfig, SegmentationEngine
from mask2former_ros_fixtures.synthetic import make_scene
import numpy as np


def measure(model: str, height: int, width: int, seconds: float, frames: int = 4) -> dict:
    """Segment ``frames`` scenes in turn for ``seconds``; return rate and stage medians."""
    rng = np.random.default_rng(0)
    images = [make_scene(rng, height, width)[0] for _ in range(frames)]
    engine = SegmentationEngine(EngineConfig(model=model))
    for image in images:
        engine.segment(image)  # warm-up
    stages: dict[str, list[float]] = {'preprocess': [], 'model': [], 'postprocess': []}
    totals, done = [], 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        began = time.perf_counter()
        result = engine.segment(images[done % frames])
        totals.append((time.perf_counter() - began) * 1e3)
        for stage, values in stages.items():
            values.append(result.timings_ms[stage])
        done += 1
    elapsed = time.perf_counter() - start
    return {'frames': done, 'fps': round(done / elapsed, 2),
            'ms_per_frame_p50': round(statistics.median(totals), 1),
            'stages_ms_p50': {k: round(statistics.median(v), 2) for k, v in stages.items()}}


def main() -> None:
    """Print the measurement as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--model', required=True)
    parser.add_argument('--size', default='1024x2048')
    parser.add_argument('--seconds', type=float, default=20.0)
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split('x'))
    print(json.dumps(measure(args.model, height, width, args.seconds)))


if __name__ == '__main__':
    main()
