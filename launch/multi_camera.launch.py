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
Segment several cameras, with one model for all of them or one node per camera.

``cameras`` lists the camera namespaces, as ``[front,left,right]`` or ``front,left,right``.
Each camera's input is ``<camera>/<image_suffix>`` (``/front/image_raw`` at the root
namespace) and its outputs are ``<camera>/segmentation/labels``, ``color``, ``overlay`` and
``label_info``, in both modes:

``batched`` (default)
    ONE node (``segmentation_node``) with the parameter ``cameras:=[front,left,right]`` and
    the remappings ``<camera>/image:=<camera>/<image_suffix>``. The model is loaded once and
    the frames of all cameras that are waiting are segmented as one batch: one model's GPU
    memory instead of one per camera, and better GPU use. The cameras share the inference
    time, so each gets a lower rate when the model is the bottleneck.
``one_node_per_camera``
    One node per camera, ``/<camera>/segmentation_node`` in the namespace ``<camera>``, with
    ``image:=<image_suffix>``. Independent processes (a crash or a slow camera affects only
    its own), but every node loads its own copy of the model: N times the GPU memory, and N
    models competing for one GPU.

Examples::

    ros2 launch mask2former_ros multi_camera.launch.py cameras:='[front,left,right]'
    ros2 launch mask2former_ros multi_camera.launch.py cameras:=front,rear \
        mode:=one_node_per_camera image_suffix:=image_rect_color device:=cuda:0
"""

import os
import re
from typing import List

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.parameter_descriptions import ParameterValue
from mask2former_ros.ros.launch_support import (
    input_remappings, large_image_setup, node_arguments, PROFILE_VARIABLE, segmentation_node,
    share_directory)

MODES = ['batched', 'one_node_per_camera']
_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*')


def parse_cameras(text: str) -> list[str]:
    """
    Parse the ``cameras`` argument into relative camera namespaces.

    Accepts ``[front,left,right]``, ``front,left,right``, ``['front', 'left']`` or names
    separated by spaces; leading and trailing slashes are dropped.
    """
    body = text.strip()
    if body.startswith('[') and body.endswith(']'):
        body = body[1:-1]
    names = [part.strip().strip('\'"').strip('/') for part in re.split(r'[,\s]+', body)]
    names = [name for name in names if name]
    if not names:
        raise ValueError(f"launch argument cameras:='{text}' names no camera")
    for name in names:
        if not _NAME.fullmatch(name):
            raise ValueError(f"camera '{name}' is not a valid relative ROS namespace")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"launch argument cameras:='{text}' repeats {', '.join(duplicates)}")
    return names


def launch_setup(context, *args, **kwargs) -> list:
    """Build the node(s) for the camera list and the mode."""
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context).strip()

    cameras = parse_cameras(arg('cameras'))
    mode = arg('mode')
    suffix = arg('image_suffix').strip('/')
    if not suffix:
        raise ValueError('launch argument image_suffix must not be empty')
    env, notes = large_image_setup(arg)

    def node(namespace: str, cameras_param: list[str], remappings: list[tuple[str, str]]):
        # launch only accepts typing.List[str] (not list[str]) as a list value type.
        cameras_value = ParameterValue(cameras_param, value_type=List[str])  # noqa: UP006
        return segmentation_node(arg, namespace=namespace, remappings=remappings,
                                 parameters={'cameras': cameras_value}, env=env)

    # Relative remapping targets: /<camera>/<image_suffix> at the root namespace, and still
    # right when this file is included under a pushed namespace.
    if mode == 'batched':
        remappings = []
        for camera in cameras:
            remappings += input_remappings(f'{camera}/', f'{camera}/{suffix}')
        nodes = [node('', cameras, remappings)]
    elif mode == 'one_node_per_camera':
        nodes = [node(camera, [''], input_remappings('', suffix)) for camera in cameras]
    else:
        raise ValueError(f"launch argument mode:='{mode}' must be one of {', '.join(MODES)}")
    summary = ', '.join(f'{camera}/{suffix}' for camera in cameras)
    notes.append(LogInfo(msg=f'{mode}: {len(nodes)} segmentation node(s) for {summary}'))
    return notes + nodes


def generate_launch_description() -> LaunchDescription:
    """Declare the launch arguments; the nodes are built once the camera list is known."""
    default_params = os.path.join(share_directory(), 'config', 'multi_camera.yaml')
    return LaunchDescription([
        *node_arguments(default_params, 'node parameter file; its cameras list is replaced by '
                        'the cameras argument, and model, device, image_transport, use_sim_time '
                        'given here override it', named=False),
        DeclareLaunchArgument(
            'cameras', default_value='[front,left,right]',
            description="camera namespaces: '[front,left,right]' or 'front,left,right'"),
        DeclareLaunchArgument(
            'mode', default_value='batched', choices=MODES,
            description='batched: one node and one model for all cameras (frames segmented '
                        'as one batch); one_node_per_camera: a node and a model per camera'),
        DeclareLaunchArgument(
            'image_suffix', default_value='image_raw',
            description="each camera's input topic is <camera>/<image_suffix>"),
        DeclareLaunchArgument(
            'image_transport', default_value='raw', choices=['raw', 'compressed'],
            description='raw: <camera>/<image_suffix>; compressed: '
                        '<camera>/<image_suffix>/compressed'),
        DeclareLaunchArgument(
            'use_sim_time', default_value='false', description='use the /clock topic'),
        DeclareLaunchArgument(
            'large_image_profile', default_value='false',
            description=f'true: run the node(s) with {PROFILE_VARIABLE} set to the '
                        "package's config/fastdds_large_images.xml; the camera drivers and "
                        'RViz need the same profile (export it for them)'),
        OpaqueFunction(function=launch_setup),
    ])
