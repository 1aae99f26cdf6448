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
Probe of test_large_buffers: page faults per received 1024x2048 rgb8 frame.

``buffer_probe.py publish TOPIC``: publish frames at 30 Hz until SIGINT.
``buffer_probe.py receive TOPIC default|tuned``: receive 40 frames with a raw subscription, as
segmentation_node does (``tuned``: after ``keep_large_buffers()``, as its main does), and print
the minor page faults per frame after the first 10 as JSON.
"""

import json
import resource
import sys
import time


def main() -> None:
    """Run one side of the probe."""
    mode, topic = sys.argv[1], sys.argv[2]
    tuned = None
    if mode == 'receive' and sys.argv[3] == 'tuned':
        from mask2former_ros.core.runtime.large_buffers import keep_large_buffers
        tuned = keep_large_buffers()
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    rclpy.init()
    node = rclpy.create_node('buffer_probe')
    if mode == 'publish':
        from mask2former_ros_fixtures.image_encoding import make_image_msg
        import numpy as np
        pub = node.create_publisher(Image, topic, 1)
        msg = make_image_msg(np.zeros((1024, 2048, 3), np.uint8), 'rgb8')
        try:
            while rclpy.ok():  # rclpy's SIGINT/SIGTERM handler shuts the context down
                pub.publish(msg)
                time.sleep(1 / 30)
        except Exception:
            if rclpy.ok():
                raise
        node.destroy_node()  # a destroyed participant leaves no segment in /dev/shm
        rclpy.try_shutdown()
        return
    faults: list[int] = []

    def on_frame(_raw: bytes) -> None:
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)
    node.create_subscription(Image, topic, on_frame,
                             QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT),
                             raw=True)
    deadline = time.monotonic() + 60
    while len(faults) < 40 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    per_frame = (faults[-1] - faults[9]) / (len(faults) - 10) if len(faults) > 11 else None
    print(json.dumps({'tuned': tuned, 'received': len(faults), 'faults_per_frame': per_frame}))
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == '__main__':
    main()
