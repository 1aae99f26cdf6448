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
Stop the node by signal N times per signal and count clean stops (exit 0, < 5 s, no traceback).

Each round starts ``segmentation_node`` (random-weight checkpoint), waits for labels, queues
10 more frames so that inference is busy, sends SIGINT or SIGTERM and times the exit.

    python bench/signal_stop.py --rounds 20
"""

import argparse
from pathlib import Path
import random
import signal
import sys
import tempfile

from bench_node import prepare_environment
from mask2former_ros_fixtures.image_encoding import make_image_msg
from mask2former_ros_fixtures.model_factory import save_random_checkpoint
from mask2former_ros_fixtures.ros_harness import NodeProcess, RosPeer, wait_until
import numpy as np
from sensor_msgs.msg import Image


def main() -> int:
    """Print clean stops per signal."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--rounds', type=int, default=20)
    args = parser.parse_args()
    prepare_environment()
    checkpoint = save_random_checkpoint(Path(tempfile.mkdtemp()))
    peer = RosPeer('signal_stop')
    frame = make_image_msg(np.zeros((480, 640, 3), np.uint8), 'rgb8')
    results = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            clean, seconds_taken = 0, []
            for i in range(args.rounds):
                namespace = f'/stop_{int(sig)}_{i}_{random.randint(0, 1 << 20)}'
                node = NodeProcess({'model': str(checkpoint)}, name='sig_node',
                                   namespace=namespace)
                labels = peer.collect(Image, f'{namespace}/segmentation/labels')
                pub = peer.publisher(Image, f'{namespace}/image')
                if not node.wait_for_output('active:', 120):
                    print(f'round {i}: the node did not start\n{node.output[-1500:]}')
                    node.stop(signal.SIGKILL)
                    continue
                wait_until(lambda pub=pub, labels=labels: (pub.publish(frame), bool(labels))[1],
                           30, period=0.3)
                for _ in range(10):
                    pub.publish(frame)
                code, seconds = node.stop(sig)
                seconds_taken.append(seconds)
                ok = code == 0 and seconds < 5.0 and 'Traceback' not in node.output
                clean += ok
                if not ok:
                    print(f'{signal.Signals(sig).name} round {i}: exit {code} after '
                          f'{seconds:.2f} s\n{node.output[-1500:]}')
            results[signal.Signals(sig).name] = (
                f'{clean}/{args.rounds} clean, max {max(seconds_taken):.2f} s')
            print(results, flush=True)
    finally:
        peer.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
