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
Synthetic street scenes: ms per scene of ``make_panoptic_scene`` against ``make_scene``.

The scenes feed the tests, the sample bags and the tiny models' training; a Cityscapes-sized
frame must stay cheap to make (it was a timed assertion in the tests, < 0.5 s per frame, before
speed moved to the benchmarks). Both generators run in turns on the same sizes, so that a busy
machine slows both alike; the ratio is panoptic / semantic.

    python bench/bench_synthetic.py                       # 1024x2048 and 480x640, 5 rounds
    python bench/bench_synthetic.py --sizes 1024x2048 --rounds 10
"""

import argparse
import statistics
import time

from mask2former_ros_fixtures.synthetic import make_panoptic_scene, make_scene
import numpy as np


def main() -> None:
    """Print ms per scene of both generators for every size."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--sizes', nargs='+', default=['1024x2048', '480x640'],
                        help='HEIGHTxWIDTH of the scenes')
    parser.add_argument('--rounds', type=int, default=5)
    args = parser.parse_args()
    print(f"{'size':>10} {'make_scene ms':>14} {'make_panoptic_scene ms':>23} {'ratio':>6}")
    for size in args.sizes:
        height, width = (int(v) for v in size.split('x'))
        rng = np.random.default_rng(0)
        make_scene(rng, height, width), make_panoptic_scene(rng, height, width)  # warm-up
        times: dict[str, list[float]] = {'semantic': [], 'panoptic': []}
        for _ in range(args.rounds):
            for name, make in (('semantic', make_scene), ('panoptic', make_panoptic_scene)):
                start = time.perf_counter()
                make(rng, height, width)
                times[name].append((time.perf_counter() - start) * 1e3)
        semantic, panoptic = (statistics.median(times[k]) for k in ('semantic', 'panoptic'))
        print(f'{size:>10} {semantic:14.1f} {panoptic:23.1f} {panoptic / semantic:6.2f}')


if __name__ == '__main__':
    main()
