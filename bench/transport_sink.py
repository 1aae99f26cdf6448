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
Transport sink: receives camera images exactly as segmentation_node does, and nothing else.

Raw (serialized) best-effort depth-1 subscriptions on ``<camera>/image``, spun by a
single-threaded executor. ``bench/bench_multicam.py`` runs the engine alone while this sink
receives the same camera streams, to measure what the transport alone leaves of the machine.
"""

import argparse
import sys

from mask2former_ros.core.runtime.large_buffers import keep_large_buffers
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image


def main(argv: list[str] | None = None) -> int:
    """Receive until interrupted; print the number of messages received."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--cameras', default='', help='comma-separated camera namespaces')
    parser.add_argument('--default-malloc', action='store_true',
                        help="skip keep_large_buffers (glibc's defaults), for comparison")
    args, ros_args = parser.parse_known_args(argv)
    if not args.default_malloc:
        keep_large_buffers()  # as segmentation_node does
    rclpy.init(args=ros_args)
    node = rclpy.create_node('transport_sink')
    received = [0]
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
    for camera in args.cameras.split(','):
        topic = f'{camera}/image' if camera else 'image'
        node.create_subscription(Image, topic, lambda _raw: received.__setitem__(
            0, received[0] + 1), qos, raw=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        print(f'received {received[0]}', flush=True)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
