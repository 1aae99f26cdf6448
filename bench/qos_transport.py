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
Large images between two processes over Fast DDS: delivery and latency per transport and QoS.

A publisher process sends N rgb8 frames at 30 Hz (reliable, like most camera drivers); a
subscriber process counts what arrives with the given reliability and depth 1, and the latency
from stamp to callback. Each row runs both processes with its own environment.

    python bench/qos_transport.py                  # the matrix quoted in docs/node.md
    python bench/qos_transport.py --size 480x640 --frames 300
"""

import argparse
import json
import os
from pathlib import Path
import random
import subprocess
import sys

PROFILE = Path(__file__).resolve().parents[1] / 'config' / 'fastdds_large_images.xml'

SUBSCRIBER = """
import json, sys, time
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node('qos_sub')
reliability = (ReliabilityPolicy.RELIABLE if sys.argv[1] == 'reliable'
               else ReliabilityPolicy.BEST_EFFORT)
latencies = []
def on_image(msg):
    stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
    latencies.append((time.time_ns() - stamp) / 1e6)
node.create_subscription(Image, 'qos_image', on_image,
                         QoSProfile(depth=1, reliability=reliability))
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    rclpy.spin_once(node, timeout_sec=0.05)
print(json.dumps(latencies), flush=True)
"""

PUBLISHER = """
import sys, time
import numpy as np, rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node('qos_pub')
pub = node.create_publisher(Image, 'qos_image',
                            QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
h, w, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
msg = Image(height=h, width=w, encoding='rgb8', step=w * 3)
msg.data = np.random.default_rng(0).integers(0, 255, h * w * 3, dtype=np.uint8).tobytes()
deadline = time.monotonic() + 20
while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
    time.sleep(0.05)
time.sleep(1.0)
start = time.monotonic()
for i in range(n):
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 10**9)
    pub.publish(msg)
    time.sleep(max(0.0, start + (i + 1) / 30 - time.monotonic()))
time.sleep(1.0)
"""

# (label, environment of both processes, subscriber reliability)
MATRIX = [
    ('default transports, best_effort', {}, 'best_effort'),
    ('default transports, best_effort, LOCALHOST range',
     {'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'}, 'best_effort'),
    ('default transports, reliable', {}, 'reliable'),
    ('LARGE_DATA, best_effort', {'FASTDDS_BUILTIN_TRANSPORTS': 'LARGE_DATA'}, 'best_effort'),
    ('LARGE_DATA, best_effort, LOCALHOST range',
     {'FASTDDS_BUILTIN_TRANSPORTS': 'LARGE_DATA', 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'},
     'best_effort'),
    ('shipped profile, best_effort, LOCALHOST range',
     {'FASTDDS_DEFAULT_PROFILES_FILE': str(PROFILE),
      'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'}, 'best_effort'),
    ('shipped profile, reliable, LOCALHOST range',
     {'FASTDDS_DEFAULT_PROFILES_FILE': str(PROFILE),
      'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'}, 'reliable'),
]


def run(env_extra: dict[str, str], reliability: str, size: tuple[int, int],
        frames: int) -> dict:
    """Run one publisher/subscriber pair and return delivery and latency."""
    env = {k: v for k, v in os.environ.items()
           if k not in ('FASTDDS_BUILTIN_TRANSPORTS', 'ROS_AUTOMATIC_DISCOVERY_RANGE',
                        'FASTDDS_DEFAULT_PROFILES_FILE')}
    env.update(env_extra)
    env['ROS_DOMAIN_ID'] = str(random.SystemRandom().randint(1, 100))
    seconds = frames / 30 + 8
    sub = subprocess.Popen([sys.executable, '-c', SUBSCRIBER, reliability, str(seconds)],
                           env=env, stdout=subprocess.PIPE, text=True)
    pub = subprocess.Popen([sys.executable, '-c', PUBLISHER, str(size[0]), str(size[1]),
                            str(frames)], env=env)
    pub.wait(seconds + 30)
    out, _ = sub.communicate(timeout=seconds + 30)
    latencies = sorted(json.loads(out.strip().splitlines()[-1]))
    return {'received': len(latencies), 'sent': frames,
            'latency_ms_p50': round(latencies[len(latencies) // 2], 1) if latencies else None}


def main(argv: list[str] | None = None) -> int:
    """Run the matrix from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--size', default='1024x2048')
    parser.add_argument('--frames', type=int, default=100)
    args = parser.parse_args(argv)
    size = tuple(int(v) for v in args.size.split('x'))
    print(f'{args.frames} rgb8 frames of {args.size} at 30 Hz, reliable publisher, '
          'subscriber depth 1')
    for label, env, reliability in MATRIX:
        result = run(env, reliability, size, args.frames)
        print(f"{label:50} received {result['received']:>4}/{result['sent']}  "
              f"latency p50 {result['latency_ms_p50']} ms", flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
