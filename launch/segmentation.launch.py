r"""
Run Mask2Former semantic segmentation on a live camera.

Starts ``segmentation_node`` with a parameter file (default: config/segmentation.yaml) and
remaps its input ``image`` (and ``image/compressed``) to the camera topic. The outputs are
published in the node's namespace: ``segmentation/labels``, ``segmentation/color``,
``segmentation/overlay``, ``segmentation/label_info`` and ``/diagnostics``.

Examples::

    ros2 launch mask2former_ros segmentation.launch.py image:=/camera/image_raw
    ros2 launch mask2former_ros segmentation.launch.py image:=/camera/image_raw \
        image_transport:=compressed model:=facebook/mask2former-swin-tiny-cityscapes-semantic
    ros2 launch mask2former_ros segmentation.launch.py image:=/camera/image_raw \
        params_file:=$(ros2 pkg prefix --share mask2former_ros)/config/segmentation_cpu.yaml
    ros2 launch mask2former_ros segmentation.launch.py --show-args
"""

import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from mask2former_ros.ros.launch_support import (
    as_bool, input_remappings, large_image_env, node_parameters, PROFILE_VARIABLE,
    share_directory)

PACKAGE = 'mask2former_ros'
LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'fatal']


def launch_setup(context, *args, **kwargs) -> list:
    """Build the node from the evaluated launch arguments."""
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context).strip()

    files, overrides = node_parameters(arg)
    node_name = arg('node_name')
    if not node_name:
        raise ValueError('launch argument node_name must not be empty')
    image = arg('image')
    remappings = input_remappings('', image) if image else []

    env, note = large_image_env(as_bool('large_image_profile', arg('large_image_profile')))
    notes = [LogInfo(msg=note)] if note else []
    node = Node(
        package=PACKAGE,
        executable='segmentation_node',
        name=node_name,
        namespace=arg('namespace') or None,
        parameters=files + [overrides],
        remappings=remappings,
        arguments=['--ros-args', '--log-level', arg('log_level')],
        additional_env=env or None,
        output='screen',
        emulate_tty=True,
    )
    return notes + [node]


def generate_launch_description() -> LaunchDescription:
    """Declare the launch arguments; the node is built once they are known."""
    default_params = os.path.join(share_directory(), 'config', 'segmentation.yaml')
    return LaunchDescription([
        DeclareLaunchArgument(
            'image', default_value='/camera/image_raw',
            description="input image topic: the node's 'image' is remapped to it and "
                        "'image/compressed' to <image>/compressed (empty: no remapping)"),
        DeclareLaunchArgument(
            'image_transport', default_value='raw', choices=['raw', 'compressed'],
            description='raw: subscribe <image> (sensor_msgs/Image); compressed: subscribe '
                        '<image>/compressed (sensor_msgs/CompressedImage)'),
        DeclareLaunchArgument(
            'model', default_value='',
            description='Mask2Former checkpoint (Hugging Face hub id or local directory); '
                        "empty: the params_file's model"),
        DeclareLaunchArgument(
            'device', default_value='',
            description="auto, cpu, cuda or cuda:N; empty: the params_file's device"),
        DeclareLaunchArgument(
            'params_file', default_value=default_params,
            description='node parameter file; model, device, image_transport and '
                        'use_sim_time given here override it'),
        DeclareLaunchArgument(
            'namespace', default_value='',
            description='node namespace; the segmentation/* outputs are published in it'),
        DeclareLaunchArgument(
            'node_name', default_value='segmentation_node', description='node name'),
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
        OpaqueFunction(function=launch_setup),
    ])
