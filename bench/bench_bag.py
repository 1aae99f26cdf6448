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
segment_bag vs the engine alone: frames/s and bag bytes per frame per output choice, one run.

A sample bag (synthetic street scenes with ground truth, written by
:mod:`mask2former_ros_fixtures.sample_bag`) is segmented with one engine (the trained tiny model
unless ``--model``), all on this thread:

* engine alone: ``segment_batch`` on the frames decoded beforehand (decode excluded);
* segment_bag once per output choice (``--choices``, see CHOICES) and ``--prefetch`` value:
  with prefetch, reading/decoding and writing/evaluating run on helper threads; ``0`` runs every
  stage on one thread.

The ratio segment_bag / engine alone is the share of the model's speed the tool keeps (target
>= 0.85 for the default output set). Each variant runs ``--rounds`` times (default 3), the order
reversed every other round; the ratios are of the mean frames/s, and the bytes per frame are
the output bag's size on disk divided by the frames written; the ratio of the medians is less
swayed by a round that another process slowed down. Timings are only meaningful on an
otherwise idle machine.

    python bench/bench_bag.py                          # 30 frames 1024x2048, raw rgb8 topic
    python bench/bench_bag.py --choices default,raw --prefetch 4,0
    python bench/bench_bag.py --topic compressed --frames 20 --jpeg-quality 80
    python bench/bench_bag.py --torch-threads 1        # leave a core to the helper threads
"""

import argparse
import json
from pathlib import Path
import statistics
import tempfile
import time

from mask2former_ros.core.backends.torch_engine import SegmentationEngine
from mask2former_ros.core.engine_config import EngineConfig
from mask2former_ros.offline import segment_bag
from mask2former_ros.offline.bag_io import InputBag
from mask2former_ros_fixtures.sample_bag import write_sample_bag
from mask2former_ros_fixtures.tiny_model import ensure_tiny_model
import torch

TOPICS = {'raw': '/camera/image_raw', 'compressed': '/camera/image_raw/compressed'}
GT = '/camera/labels_gt'
ENGINE = 'engine alone'
# name: segment_bag's output options (the default is segment_bag's own default output set)
CHOICES = {
    'none': {'no_output': True},
    'labels': {'outputs': 'labels', 'compress': 'none'},
    'raw': {'outputs': 'labels,color,overlay', 'compress': 'none'},
    'default': {},  # labels raw mono8, overlay JPEG
    'jpeg': {'outputs': 'labels,color,overlay', 'compress': 'color,overlay'},
    'png': {'outputs': 'labels,color,overlay', 'compress': 'labels,color,overlay'},
}


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


def bag_bytes(path: Path) -> int:
    """Return the size on disk of a bag directory's files."""
    return sum(f.stat().st_size for f in Path(path).rglob('*') if f.is_file())


def main() -> None:
    """Run the benchmark and print one JSON line per variant and round, then the means."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--frames', type=int, default=30)
    parser.add_argument('--size', default='1024x2048', help='HEIGHTxWIDTH')
    parser.add_argument('--topic', choices=tuple(TOPICS), default='raw')
    parser.add_argument('--model', default=None, help='default: the trained tiny model')
    parser.add_argument('--choices', default=','.join(CHOICES),
                        help='output choices, comma-separated from ' + ', '.join(
                            f'{k} ({v or "segment_bag default"})' for k, v in CHOICES.items()))
    parser.add_argument('--prefetch', default='4',
                        help="segment_bag's --prefetch values to run, comma-separated (e.g. 4,0)")
    parser.add_argument('--jpeg-quality', type=int, default=90, help="segment_bag's option")
    parser.add_argument('--rounds', type=int, default=3,
                        help='runs of each variant, the order reversed every other round (the '
                             "machine's speed drifts between runs); ratios of the means")
    parser.add_argument('--torch-threads', type=int, default=None,
                        help="torch intra-op threads for every variant (default: torch's)")
    args = parser.parse_args()
    choices = [c.strip() for c in args.choices.split(',') if c.strip()]
    unknown = sorted(set(choices) - set(CHOICES))
    if unknown:
        parser.error(f"unknown choice(s) {', '.join(unknown)}: use {', '.join(CHOICES)}")
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    height, width = map(int, args.size.lower().split('x'))
    model = args.model or str(ensure_tiny_model())
    engine = SegmentationEngine(EngineConfig(model=model))  # loaded on this thread
    topic = TOPICS[args.topic]
    variants = [(ENGINE, None, None)] + [
        (choice if prefetch == 4 else f'{choice} prefetch={prefetch}', choice, prefetch)
        for choice in choices for prefetch in map(int, args.prefetch.split(','))]
    fps: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    size: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    with tempfile.TemporaryDirectory() as tmp:
        bag = Path(tmp) / 'bench_bag'
        write_sample_bag(bag, frames=args.frames, height=height, width=width, seed=1,
                         compressed_topic=TOPICS['compressed'])
        for i in range(args.rounds):
            for name, choice, prefetch in (variants if i % 2 == 0 else variants[::-1]):
                if choice is None:
                    fps[name].append(engine_alone(engine, bag, topic))
                    print(json.dumps({'variant': name, 'round': i + 1, 'frames': args.frames,
                                      'size': args.size,
                                      'torch_threads': torch.get_num_threads(),
                                      'fps': round(fps[name][-1], 3)}), flush=True)
                    continue
                out = Path(tmp) / 'out'
                options = dict(CHOICES[choice], jpeg_quality=args.jpeg_quality)
                if not options.get('no_output'):
                    options.update(output=out, overwrite=True)
                summary = segment_bag(bag, topic, engine=engine, gt_topic=GT,
                                      prefetch=prefetch, log=lambda _text: None, **options)
                fps[name].append(summary['fps'])
                written = bag_bytes(out) if summary['output_bag'] else 0
                size[name].append(written / max(summary['frames']['processed'], 1))
                stage_ms = {stage: values['mean'] for stage, values in
                            summary['timings_ms'].items()}
                print(json.dumps({'variant': name, 'round': i + 1, 'fps': summary['fps'],
                                  'topics': summary['output_topics'],
                                  'bytes_per_frame': round(size[name][-1]),
                                  'miou': round(summary['metrics']['miou'], 4),
                                  'stage_ms_mean': stage_ms}), flush=True)
    alone = sum(fps[ENGINE]) / args.rounds
    print(json.dumps({
        'rounds': args.rounds, 'engine_alone_fps': round(alone, 3),
        'engine_alone_fps_median': round(statistics.median(fps[ENGINE]), 3),
        'variants': {name: {'fps': round(sum(fps[name]) / args.rounds, 3),
                            'ratio': round(sum(fps[name]) / args.rounds / alone, 3),
                            'ratio_of_medians': round(statistics.median(fps[name])
                                                      / statistics.median(fps[ENGINE]), 3),
                            'MB_per_frame': round(sum(size[name]) / args.rounds / 1e6, 3)}
                     for name, choice, _ in variants if choice is not None},
        'target': 'default >= 0.85'}, indent=1), flush=True)


if __name__ == '__main__':
    main()
