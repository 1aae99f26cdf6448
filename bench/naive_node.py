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
Naive baseline node: inference inside the subscription callback, default queue depth 10.

This is how many first ROS wrappers of a model look. It exists only to be measured against
``segmentation_node`` by ``bench/bench_node.py``; it uses the same engine.
"""

import argparse
import sys

from mask2former_ros.core.backends.create import create_engine
from mask2former_ros.core.engine_config import BACKEND_CHOICES, EngineConfig
from mask2former_ros.messages.image_conversion import image_to_rgb, labels_to_image
import rclpy
from rclpy.executors import ExternalShutdownException
from sensor_msgs.msg import Image


def main(argv: list[str] | None = None) -> int:
    """Run the naive node until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--model', required=True)
    parser.add_argument('--backend', default='torch', choices=BACKEND_CHOICES)
    parser.add_argument('--onnx-model', default='', help='graph for --backend onnxruntime')
    parser.add_argument('--cameras', default='',
                        help="comma-separated camera namespaces (default: one, '')")
    args, ros_args = parser.parse_known_args(argv)
    rclpy.init(args=ros_args)
    node = rclpy.create_node('naive_segmentation_node')
    engine = create_engine(EngineConfig(model=args.model, backend=args.backend,
                                        onnx_model=args.onnx_model))
    for camera in args.cameras.split(','):
        prefix = f'{camera}/' if camera else ''
        pub = node.create_publisher(Image, f'{prefix}segmentation/labels', 10)

        def callback(msg: Image, pub=pub) -> None:
            pub.publish(labels_to_image(engine.segment(image_to_rgb(msg)).labels, msg.header))
        node.create_subscription(Image, f'{prefix}image', callback, 10)
    node.get_logger().info(f'active: {args.cameras or "image"} (naive, depth 10)')
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
