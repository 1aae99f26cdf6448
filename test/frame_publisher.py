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
Publish synthetic camera frames with increasing stamps (a camera driver for the tests).

    python test/frame_publisher.py TOPIC [--rate HZ] [--height H] [--width W] [--bad-every N]

Runs until SIGINT/SIGTERM; reliable QoS like most raw drivers. With ``--bad-every N`` every N-th
message is truncated (bad input the node must count and survive).
"""

import argparse

from mask2former_ros_fixtures.image_encoding import make_image_msg
from mask2former_ros_fixtures.synthetic import make_scene
import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image


def main() -> None:
    """Publish frames until shut down."""
    parser = argparse.ArgumentParser()
    parser.add_argument('topic')
    parser.add_argument('--rate', type=float, default=15.0)
    parser.add_argument('--height', type=int, default=120)
    parser.add_argument('--width', type=int, default=160)
    parser.add_argument('--bad-every', type=int, default=0)
    args = parser.parse_args()
    rclpy.init()
    node = rclpy.create_node('frame_publisher')
    pub = node.create_publisher(Image, args.topic,
                                QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    rgb, _ = make_scene(np.random.default_rng(0), args.height, args.width)
    msg = make_image_msg(rgb, 'rgb8')
    count = 0

    def tick() -> None:
        nonlocal count
        count += 1
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.header.frame_id = f'frame_{count}'
        if args.bad_every and count % args.bad_every == 0:
            pub.publish(Image(header=msg.header, height=10, width=10, encoding='rgb8',
                              step=30, data=b'123'))
        else:
            pub.publish(msg)
    node.create_timer(1.0 / args.rate, tick)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
