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
Receive cost: CPU of a process that only receives camera frames, with and without reused buffers.

N cameras publish rgb8 frames at 30 Hz each into ``bench/transport_sink.py`` (raw best-effort
depth-1 subscriptions, as segmentation_node has), once with glibc's default allocator settings
(``--default-malloc``, the reference) and once after ``keep_large_buffers()`` as the node runs.

    python bench/bench_receive.py                         # 2 cameras, 1024x2048 and 480x640
    python bench/bench_receive.py --cameras 4 --sizes 1024x2048 --seconds 20
"""

import argparse
import sys
import time

from bench_multicam import run_setting
from bench_node import driver_node, prepare_environment
from mask2former_ros_fixtures.image_encoding import make_image_msg
import numpy as np


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--cameras', type=int, default=2)
    parser.add_argument('--sizes', default='1024x2048,480x640')
    parser.add_argument('--seconds', type=float, default=10.0)
    parser.add_argument('--rate', type=float, default=30.0, help='Hz per camera')
    args = parser.parse_args(argv)
    prepare_environment(profile=False, force_profile=True)
    rows = []
    with driver_node('receive_driver', threads=2) as driver:
        for size in args.sizes.split(','):
            height, width = (int(v) for v in size.split('x'))
            frames = [make_image_msg(np.zeros((height, width, 3), np.uint8), 'rgb8')]
            cpu = {}
            for label, params in (('default', ['--default-malloc']), ('reused', [])):
                result = run_setting(driver, '', args.cameras, 'sink', params, frames,
                                     args.seconds, args.rate,
                                     during=lambda: time.sleep(args.seconds) or {})
                cpu[label] = result['cpu_percent']
            rows.append((size, cpu['default'], cpu['reused']))
    print(f'\n{args.cameras} camera(s) x {args.rate:g} Hz rgb8, {args.seconds:g} s each: CPU % '
          'of the receiving process (100 = one core)')
    print(f"{'size':>10}{'glibc default':>15}{'keep_large_buffers':>20}{'ratio':>8}")
    for size, default, reused in rows:
        print(f'{size:>10}{default:>15}{reused:>20}{reused / default:>8.2f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
