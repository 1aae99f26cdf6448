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
segment_bag vs the engine alone: frames/s on the same frames of one bag, in one run.

A sample bag (synthetic street scenes with ground truth, written by
:mod:`mask2former_ros_fixtures.sample_bag`) is segmented three ways with one engine (the trained
tiny model unless ``--model``), all on this thread:

* engine alone: ``segment_batch`` on the frames decoded beforehand (decode excluded);
* segment_bag with prefetch (default): reading/decoding and writing/evaluating on helper threads;
* segment_bag with ``prefetch=0``: every stage on one thread, for comparison.

The ratio segment_bag / engine alone is the share of the model's speed the tool keeps (target
>= 0.9). Each variant runs ``--rounds`` times (default 3), the order reversed every other
round; the ratios are of the mean frames/s. Timings are only meaningful on an otherwise idle
machine.

    python bench/bench_bag.py                         # 30 frames 1024x2048, raw rgb8 topic
    python bench/bench_bag.py --topic compressed --frames 20
    python bench/bench_bag.py --torch-threads 1        # leave a core to the helper threads
    python bench/bench_bag.py --outputs labels          # write only the label images
"""

import argparse
import json
from pathlib import Path
import tempfile
import time

from mask2former_ros.core.engine import EngineConfig, SegmentationEngine
from mask2former_ros.offline import segment_bag
from mask2former_ros.offline.bag_io import InputBag
from mask2former_ros_fixtures.sample_bag import write_sample_bag
from mask2former_ros_fixtures.tiny_model import ensure_tiny_model
import torch

TOPICS = {'raw': '/camera/image_raw', 'compressed': '/camera/image_raw/compressed'}
GT = '/camera/labels_gt'
# (name, prefetch); None: the engine alone
VARIANTS = (('engine alone', None), ('segment_bag', 4), ('segment_bag prefetch=0', 0))


def engine_alone(engine: SegmentationEngine, bag_path: Path, topic: str) -> float:
    """Return the engine's frames/s on the bag's frames, decoded beforehand."""
    bag = InputBag(bag_path, topic)
    try:
        frames = [bag.to_rgb(bag.deserialize(raw)) for _, _, raw in bag.frames()]
    finally:
        bag.close()
    engine.segment_batch([frames[0]])  # warm-up
    started = time.perf_counter()
    for rgb in frames:
        engine.segment_batch([rgb])
    return len(frames) / (time.perf_counter() - started)


def main() -> None:
    """Run the benchmark and print one JSON line per variant, then the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--frames', type=int, default=30)
    parser.add_argument('--size', default='1024x2048', help='HEIGHTxWIDTH')
    parser.add_argument('--topic', choices=tuple(TOPICS), default='raw')
    parser.add_argument('--model', default=None, help='default: the trained tiny model')
    parser.add_argument('--no-output', action='store_true', help='segment_bag writes no bag')
    parser.add_argument('--outputs', default='labels,color,overlay',
                        help='output topics segment_bag writes (its --outputs)')
    parser.add_argument('--rounds', type=int, default=3,
                        help='runs of each variant, the order reversed every other round (the '
                             "machine's speed drifts between runs); ratios of the means")
    parser.add_argument('--torch-threads', type=int, default=None,
                        help="torch intra-op threads for every variant (default: torch's)")
    args = parser.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    height, width = map(int, args.size.lower().split('x'))
    model = args.model or str(ensure_tiny_model())
    engine = SegmentationEngine(EngineConfig(model=model))  # loaded on this thread
    topic = TOPICS[args.topic]
    with tempfile.TemporaryDirectory() as tmp:
        bag = Path(tmp) / 'bench_bag'
        write_sample_bag(bag, frames=args.frames, height=height, width=width, seed=1,
                         compressed_topic=TOPICS['compressed'])
        fps: dict[str, list[float]] = {name: [] for name, _ in VARIANTS}
        for i in range(args.rounds):
            for name, prefetch in (VARIANTS if i % 2 == 0 else VARIANTS[::-1]):
                if prefetch is None:
                    fps[name].append(engine_alone(engine, bag, topic))
                    print(json.dumps({'variant': name, 'round': i + 1, 'frames': args.frames,
                                      'size': args.size,
                                      'torch_threads': torch.get_num_threads(),
                                      'fps': round(fps[name][-1], 3)}), flush=True)
                    continue
                out = {'no_output': True} if args.no_output else \
                    {'output': Path(tmp) / f'out_{prefetch}', 'overwrite': True,
                     'outputs': args.outputs}
                summary = segment_bag(bag, topic, engine=engine, gt_topic=GT,
                                      prefetch=prefetch, log=lambda _text: None, **out)
                fps[name].append(summary['fps'])
                stage_ms = {stage: values['mean'] for stage, values in
                            summary['timings_ms'].items()}
                print(json.dumps({'variant': name, 'round': i + 1, 'fps': summary['fps'],
                                  'miou': round(summary['metrics']['miou'], 4),
                                  'stage_ms_mean': stage_ms}), flush=True)
    alone = sum(fps['engine alone']) / args.rounds
    print(json.dumps({
        'rounds': args.rounds,
        'fps_mean': {name: round(sum(v) / len(v), 3) for name, v in fps.items()},
        'ratio segment_bag / engine alone': round(sum(fps['segment_bag']) / args.rounds / alone,
                                                  3),
        'ratio prefetch=0 / engine alone':
            round(sum(fps['segment_bag prefetch=0']) / args.rounds / alone, 3),
        'target': '>= 0.9'}), flush=True)


if __name__ == '__main__':
    main()
