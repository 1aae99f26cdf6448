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
Fleet throughput: segment_bag over several bags with 1 worker (in-process) and 2 Ray actors.

Writes ``--bags`` sample bags (synthetic street scenes with ground truth) and prints, in one run
on the same frames: the engine alone (frames decoded beforehand, one thread), the fleet with
``workers=1`` (this process, no Ray) and with ``workers=2`` (a local Ray: start-up and model
loading in the actors included). Timings are only meaningful on an otherwise idle machine.

    python bench/bench_fleet.py                      # 4 bags x 12 frames 512x1024
    python bench/bench_fleet.py --bags 6 --frames 20 --workers 1 2 4
"""

import argparse
import json
from pathlib import Path
import tempfile
import time

from mask2former_ros.core.backends.torch_engine import SegmentationEngine
from mask2former_ros.core.engine_config import EngineConfig
from mask2former_ros.offline import segment_fleet
from mask2former_ros.offline.bag_io import InputBag
from mask2former_ros_fixtures.sample_bag import write_sample_bag
from mask2former_ros_fixtures.tiny_model import ensure_tiny_model

RAW, GT = '/camera/image_raw', '/camera/labels_gt'


def main() -> None:
    """Run the benchmark and print one JSON line per variant."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--bags', type=int, default=4)
    parser.add_argument('--frames', type=int, default=12, help='frames per bag')
    parser.add_argument('--size', default='512x1024', help='HEIGHTxWIDTH')
    parser.add_argument('--workers', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--model', default=None, help='default: the trained tiny model')
    args = parser.parse_args()
    height, width = map(int, args.size.lower().split('x'))
    model = args.model or str(ensure_tiny_model())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / 'fleet'
        for i in range(args.bags):
            write_sample_bag(root / f'bag{i}', frames=args.frames, height=height, width=width,
                             seed=i, compressed_topic=None, start_ns=(17 + i) * 10 ** 17)
        engine = SegmentationEngine(EngineConfig(model=model))
        frames = []
        for i in range(args.bags):
            bag = InputBag(root / f'bag{i}', RAW)
            frames += [bag.to_rgb(bag.deserialize(raw)) for _, _, raw in bag.frames()]
            bag.close()
        engine.segment_batch([frames[0]])
        started = time.perf_counter()
        for rgb in frames:
            engine.segment_batch([rgb])
        alone = len(frames) / (time.perf_counter() - started)
        print(json.dumps({'variant': 'engine alone', 'frames': len(frames),
                          'size': args.size, 'fps': round(alone, 3)}), flush=True)
        for workers in args.workers:
            started = time.perf_counter()
            summary, code = segment_fleet(
                [root], RAW, engine=engine if workers == 1 else None, model=model,
                gt_topic=GT, output=Path(tmp) / f'out{workers}', fleet={'workers': workers},
                log=lambda _text: None)
            wall = time.perf_counter() - started
            data = summary['dataset']
            print(json.dumps({'variant': f'fleet workers={workers}', 'exit': code,
                              'frames': data['frames'], 'fps': data['fps'],
                              'fps incl. start-up': round(data['frames'] / wall, 3),
                              'ratio to engine alone': round(data['fps'] / alone, 3),
                              'miou': round(data['miou'], 4)}), flush=True)


if __name__ == '__main__':
    main()
