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

r"""
Run Mask2Former segmentation (semantic, panoptic or instance) on a live camera.

Starts ``segmentation_node`` with a parameter file (default: config/segmentation.yaml) and
remaps its input ``image`` (and ``image/compressed``) to the camera topic. The outputs are
published in the node's namespace: ``segmentation/labels``, ``segmentation/color``,
``segmentation/overlay``, ``segmentation/label_info`` and ``/diagnostics``; with
``task:=panoptic`` or ``task:=instance`` (or ``auto`` on such a checkpoint) also
``segmentation/instances`` and ``segmentation/detections``.

Examples::

    ros2 launch mask2former_ros segmentation.launch.py image:=/camera/image_raw
    ros2 launch mask2former_ros segmentation.launch.py image:=/camera/image_raw \
        image_transport:=compressed model:=facebook/mask2former-swin-tiny-cityscapes-semantic
    ros2 launch mask2former_ros segmentation.launch.py image:=/camera/image_raw \
        params_file:=$(ros2 pkg prefix --share mask2former_ros)/config/segmentation_cpu.yaml
    ros2 launch mask2former_ros segmentation.launch.py image:=/camera/image_raw task:=panoptic \
        model:=facebook/mask2former-swin-large-cityscapes-panoptic
    ros2 launch mask2former_ros segmentation.launch.py namespace:=robot1 \
        image:=/robot1/camera/image_raw rviz:=true
    ros2 launch mask2former_ros segmentation.launch.py autostart:=false   # a lifecycle manager
    ros2 launch mask2former_ros segmentation.launch.py --show-args

The node is a lifecycle (managed) node, started as a ``launch_ros`` ``LifecycleNode``: with
``autostart:=true`` (default) it configures and activates itself; with ``autostart:=false`` it
waits in ``unconfigured`` for its ``change_state`` service (``ros2 lifecycle set``, a Nav2-style
lifecycle manager, or ``launch_ros.events.lifecycle.ChangeState`` events of an including
launch file). ``rviz:=true`` starts RViz2 showing the camera, overlay and colour topics of
this node, namespace and remapping included.
"""

import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from mask2former_ros.ros.launch_support import (
    as_bool, find_rviz2, input_remappings, large_image_setup, node_arguments, PROFILE_VARIABLE,
    rviz_actions, segmentation_node, share_directory)

LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'fatal']


def launch_setup(context, *args, **kwargs) -> list:
    """Build the node (and RViz2) from the evaluated launch arguments."""
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context).strip()

    rviz = as_bool('rviz', arg('rviz'))
    if rviz:
        find_rviz2()  # before anything starts: one clear error, nothing left running
    namespace = arg('namespace').strip('/')
    image = arg('image')
    env, actions = large_image_setup(arg)
    actions.append(segmentation_node(
        arg, name=arg('node_name'), namespace=namespace,
        remappings=input_remappings('', image) if image else [], env=env,
        log_level=arg('log_level')))
    if rviz:
        use_sim_time = as_bool('use_sim_time', arg('use_sim_time'))
        actions += rviz_actions(namespace, image, env, use_sim_time)
    return actions


def generate_launch_description() -> LaunchDescription:
    """Declare the launch arguments; the node is built once they are known."""
    default_params = os.path.join(share_directory(), 'config', 'segmentation.yaml')
    return LaunchDescription([
        *node_arguments(default_params, 'node parameter file; model, device, image_transport '
                        'and use_sim_time given here override it'),
        DeclareLaunchArgument(
            'image', default_value='/camera/image_raw',
            description="input image topic: the node's 'image' is remapped to it and "
                        "'image/compressed' to <image>/compressed (empty: no remapping)"),
        DeclareLaunchArgument(
            'image_transport', default_value='raw', choices=['raw', 'compressed'],
            description='raw: subscribe <image> (sensor_msgs/Image); compressed: subscribe '
                        '<image>/compressed (sensor_msgs/CompressedImage)'),
        DeclareLaunchArgument(
            'use_sim_time', default_value='false',
            description='use the /clock topic (true when replaying a bag with --clock)'),
        DeclareLaunchArgument(
            'large_image_profile', default_value='false',
            description=f'true: run the node with {PROFILE_VARIABLE} set to the '
                        "package's config/fastdds_large_images.xml (shared memory sized for "
                        'whole frames, DDS on this host only); give the camera driver and '
                        'RViz the same profile'),
        DeclareLaunchArgument(
            'log_level', default_value='info', choices=LOG_LEVELS,
            description='node log level'),
        DeclareLaunchArgument(
            'rviz', default_value='false', choices=['true', 'false'],
            description="true: also start RViz2 showing this node's input, overlay and "
                        'colour topics (namespace and remapping applied)'),
        OpaqueFunction(function=launch_setup),
    ])
