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
Helpers shared by the package's launch files: the node's action, arguments, DDS profile, RViz.

:func:`segmentation_node` builds the ``LifecycleNode`` action of ``segmentation_node`` with its
parameters and remappings, :func:`node_arguments` declares the arguments it reads, so a launch
file says only what differs. Few ``launch`` imports (only where a launch object is built), so
the launch files stay thin and this module is testable anywhere; ``ament_index_python`` is
imported only when a package is looked up.
"""

import os
from pathlib import Path
import tempfile
from typing import Any, Callable, Iterable, Mapping

from mask2former_ros.core.engine_config import COMPILE_CHOICES
from mask2former_ros.core.engine_config import parse_task, parse_threshold, TASK_CHOICES

PACKAGE = 'mask2former_ros'
PROFILE_VARIABLE = 'FASTDDS_DEFAULT_PROFILES_FILE'
LARGE_IMAGE_PROFILE = os.path.join('config', 'fastdds_large_images.xml')
RVIZ_TEMPLATE = os.path.join('rviz', 'segmentation.rviz')
# The topics rviz/segmentation.rviz shows; rviz_config() replaces them.
RVIZ_TOPICS = {'image': '/camera/image_raw', 'overlay': '/segmentation/overlay',
               'color': '/segmentation/color'}


class RosEnvironmentError(RuntimeError):
    """The ROS environment is not set up (no ``AMENT_PREFIX_PATH``, a missing package)."""


def _ament_search_paths() -> None:
    if not os.environ.get('AMENT_PREFIX_PATH'):
        raise RosEnvironmentError(
            'AMENT_PREFIX_PATH is not set, so ROS packages cannot be found: source your ROS '
            "installation and this workspace first ('. /opt/ros/<distro>/setup.bash' and "
            "'. install/setup.bash'); in a pip venv with the ROS wheels, "
            "'export AMENT_PREFIX_PATH=$VIRTUAL_ENV'")


def share_directory() -> str:
    """Return the package's share directory, or the source tree when it is not installed."""
    from ament_index_python.packages import get_package_share_directory, PackageNotFoundError
    _ament_search_paths()
    try:
        return get_package_share_directory(PACKAGE)
    except PackageNotFoundError:
        return str(Path(__file__).resolve().parents[2])


def find_rviz2() -> str:
    """
    Return the path of the ``rviz2`` executable (as ``launch_ros`` will find it).

    Raises :class:`RosEnvironmentError` with what to do when RViz2 is not installed; the launch
    files call this before they start anything, so a missing RViz2 stops the launch with one
    clear error and leaves no process behind.
    """
    from ament_index_python.packages import get_package_prefix, PackageNotFoundError
    _ament_search_paths()
    try:
        executable = os.path.join(get_package_prefix('rviz2'), 'lib', 'rviz2', 'rviz2')
    except PackageNotFoundError:
        executable = None
    if executable is None or not os.access(executable, os.X_OK):
        raise RosEnvironmentError(
            'rviz:=true, but RViz2 is not installed (package rviz2 not found in '
            "AMENT_PREFIX_PATH): install it ('sudo apt install ros-$ROS_DISTRO-rviz2') or "
            'launch with rviz:=false and run RViz elsewhere')
    return executable


def resolve_topic(namespace: str, topic: str) -> str:
    """Return the absolute name of ``topic`` for a node in ``namespace`` (no ``~``)."""
    if topic.startswith('/'):
        return topic
    return '/' + '/'.join(part for part in (namespace.strip('/'), topic.strip('/')) if part)


def rviz_config(template: str, topics: dict[str, str], directory: str | None = None) -> str:
    """
    Write a copy of the RViz config ``template`` showing ``topics`` and return its path.

    ``topics`` maps ``image``, ``overlay`` and ``color`` (keys of :data:`RVIZ_TOPICS`) to the
    absolute topic names to show, e.g. a namespaced node's ``/robot1/segmentation/overlay``.
    """
    text = Path(template).read_text()
    for key, default in RVIZ_TOPICS.items():
        line = f'Value: {default}\n'
        if line not in text:
            raise ValueError(f'{template} shows no {default} (expected a line {line.strip()!r})')
        text = text.replace(line, f'Value: {topics.get(key, default)}\n')
    handle, path = tempfile.mkstemp(prefix='mask2former_ros_', suffix='.rviz', dir=directory)
    with os.fdopen(handle, 'w') as out:
        out.write(text)
    return path


def as_bool(name: str, text: str) -> bool:
    """Parse a boolean launch argument (true/false, 1/0, yes/no, on/off)."""
    value = text.strip().lower()
    if value in ('true', '1', 'yes', 'on'):
        return True
    if value in ('false', '0', 'no', 'off'):
        return False
    raise ValueError(f"launch argument {name}:='{text}' must be true or false")


def large_image_env(enabled: bool) -> tuple[dict[str, str], str | None]:
    """
    Return the environment that selects the shipped large-image Fast DDS profile.

    The second item is a note to log when the profile was asked for but is missing (the
    default DDS transports are used then), else None.
    """
    if not enabled:
        return {}, None
    profile = os.path.join(share_directory(), LARGE_IMAGE_PROFILE)
    if not os.path.isfile(profile):
        return {}, f'large_image_profile: {profile} not found; using the default DDS transports'
    return {PROFILE_VARIABLE: profile}, None


def input_remappings(prefix: str, target: str) -> list[tuple[str, str]]:
    """Remap ``<prefix>image`` and ``<prefix>image/compressed`` to ``target`` (+/compressed)."""
    return [(f'{prefix}image', target), (f'{prefix}image/compressed', f'{target}/compressed')]


def node_parameters(arg: Callable[[str], str], fixed: Mapping[str, Any] | None = None,
                    ) -> tuple[list[str], dict[str, Any]]:
    """
    Return the node's parameter file (checked to exist; none if empty) and the overrides.

    ``arg`` evaluates a launch argument. Parameters given later take precedence, so the
    overrides go after the file; model and device are only overridden when given, so that the
    file's values apply otherwise. ``ParameterValue(..., value_type=str)`` keeps e.g. a model
    directory named '2024' a string. ``fixed`` are parameters the launch file sets itself
    (e.g. ``use_sim_time`` of a bag replay): they win, and their arguments are not read.
    """
    from launch_ros.parameter_descriptions import ParameterValue
    fixed = dict(fixed or {})
    params_file = os.path.expanduser(arg('params_file'))
    if params_file and not os.path.isfile(params_file):
        raise FileNotFoundError(f"launch argument params_file:='{params_file}' does not exist")
    overrides: dict[str, Any] = {}
    if 'image_transport' not in fixed:
        overrides['image_transport'] = ParameterValue(arg('image_transport'), value_type=str)
    if 'use_sim_time' not in fixed:
        overrides['use_sim_time'] = as_bool('use_sim_time', arg('use_sim_time'))
    for name in ('model', 'device') + BACKEND_ARGUMENTS:
        if name not in fixed and arg(name):
            overrides[name] = ParameterValue(arg(name), value_type=str)
    if 'compile' in overrides and arg('compile').lower() not in COMPILE_CHOICES:
        raise ValueError(f"launch argument compile:='{arg('compile')}' must be one of "
                         f"{', '.join(COMPILE_CHOICES)}")
    overrides.update(task_overrides(arg, fixed))
    if 'autostart' not in fixed:
        overrides['autostart'] = as_bool('autostart', arg('autostart'))
    return ([params_file] if params_file else []), {**overrides, **fixed}


def task_overrides(arg: Callable[[str], str], fixed: Mapping[str, Any]) -> dict[str, Any]:
    """
    Return the node parameters of the task, threshold and tracking arguments given.

    Arguments in ``fixed`` are not read. Raises ValueError naming the argument for a task
    outside :data:`TASK_CHOICES`, a threshold that is not a number in [0, 1], a ``tracking``
    that is not a boolean or a ``track_max_age`` that is not an integer >= 0.
    """
    overrides: dict[str, Any] = {}
    text = arg('task')
    if text and 'task' not in fixed:
        try:
            overrides['task'] = parse_task(text)
        except ValueError:
            raise ValueError(f"launch argument task:='{text}' must be one of "
                             f"{', '.join(TASK_CHOICES)}") from None
    for name in THRESHOLD_ARGUMENTS:
        text = arg(name)
        if not text or name in fixed:
            continue
        try:
            overrides[name] = parse_threshold(name, float(text))
        except ValueError:
            raise ValueError(f"launch argument {name}:='{text}' must be a number in "
                             '[0, 1]') from None
    text = arg('tracking')
    if text and 'tracking' not in fixed:
        overrides['tracking'] = as_bool('tracking', text)
    text = arg('track_max_age')
    if text and 'track_max_age' not in fixed:
        if not text.isdigit():
            raise ValueError(f"launch argument track_max_age:='{text}' must be an integer "
                             '>= 0')
        overrides['track_max_age'] = int(text)
    return overrides


def segmentation_node(arg: Callable[[str], str], *, name: str = 'segmentation_node',
                      namespace: str = '', remappings: Iterable[tuple[str, str]] = (),
                      parameters: Mapping[str, Any] | None = None,
                      env: Mapping[str, str] | None = None, log_level: str | None = None,
                      ) -> Any:
    """
    Return the ``launch_ros`` ``LifecycleNode`` action that runs ``segmentation_node``.

    Its parameters are the params file and overrides of :func:`node_parameters` (``autostart``
    included), then ``parameters``, which the launch file sets itself (e.g. ``cameras``).
    ``env`` is added to the node's environment (e.g. :func:`large_image_env`'s).
    """
    from launch_ros.actions import LifecycleNode
    if not name:
        raise ValueError('launch argument node_name must not be empty')
    files, overrides = node_parameters(arg, parameters)
    return LifecycleNode(
        package=PACKAGE, executable='segmentation_node', name=name, namespace=namespace,
        parameters=files + [overrides], remappings=list(remappings),
        arguments=['--ros-args', '--log-level', log_level] if log_level else None,
        additional_env=dict(env) if env else None, output='screen', emulate_tty=True)


def large_image_setup(arg: Callable[[str], str]) -> tuple[dict[str, str], list[Any]]:
    """Return :func:`large_image_env` of the ``large_image_profile`` argument and its note."""
    from launch.actions import LogInfo
    env, note = large_image_env(as_bool('large_image_profile', arg('large_image_profile')))
    return env, [LogInfo(msg=note)] if note else []


def rviz_actions(namespace: str, image: str, env: Mapping[str, str] | None,
                 use_sim_time: bool) -> list[Any]:
    """
    Return RViz2 showing a node's input, overlay and colour topics, and its config's removal.

    The displays follow the node: its ``namespace`` and its remapped input ``image`` (empty:
    the node's own ``image``). The config is a temporary copy, removed at shutdown.
    """
    from launch.actions import LogInfo, RegisterEventHandler
    from launch.event_handlers import OnShutdown
    from launch_ros.actions import Node
    config = rviz_config(os.path.join(share_directory(), RVIZ_TEMPLATE), {
        'image': resolve_topic(namespace, image or 'image'),
        'overlay': resolve_topic(namespace, 'segmentation/overlay'),
        'color': resolve_topic(namespace, 'segmentation/color')})
    return [
        LogInfo(msg=f'RViz2 config: {config}'),
        Node(package='rviz2', executable='rviz2', name='rviz2', namespace=namespace,
             arguments=['-d', config], parameters=[{'use_sim_time': use_sim_time}],
             additional_env=dict(env) if env else None, output='screen'),
        RegisterEventHandler(OnShutdown(on_shutdown=lambda event, context: _remove(config))),
    ]


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


# Launch arguments of the inference backend, passed to the node only when given.
BACKEND_ARGUMENTS = ('backend', 'onnx_model', 'frame_size', 'compile')
# Launch arguments of the panoptic and instance post-processing, passed only when given.
THRESHOLD_ARGUMENTS = ('score_threshold', 'mask_threshold', 'overlap_threshold')


def node_arguments(params_file: str, params_help: str, *, named: bool = True) -> list[Any]:
    """
    Declare the launch arguments that :func:`segmentation_node` reads in every launch file.

    The backend's, the task's, ``model``, ``device``, ``params_file`` (default ``params_file``,
    described by ``params_help``), ``autostart`` and, when ``named``, ``namespace`` and
    ``node_name``.
    """
    from launch.actions import DeclareLaunchArgument
    arguments = [
        *backend_arguments(),
        *task_arguments(),
        DeclareLaunchArgument(
            'model', default_value='',
            description='Mask2Former checkpoint (Hugging Face hub id or local directory); '
                        "empty: the params_file's model"),
        DeclareLaunchArgument(
            'device', default_value='',
            description="auto, cpu, cuda or cuda:N; empty: the params_file's device"),
        DeclareLaunchArgument('params_file', default_value=params_file, description=params_help),
        DeclareLaunchArgument(
            'autostart', default_value='true', choices=['true', 'false'],
            description='true: the node(s) configure and activate themselves; false: they '
                        'wait for lifecycle transitions (ros2 lifecycle set, a lifecycle '
                        'manager, launch ChangeState events)'),
    ]
    if named:
        arguments += [
            DeclareLaunchArgument(
                'namespace', default_value='',
                description='node namespace; the segmentation/* outputs are published in it'),
            DeclareLaunchArgument(
                'node_name', default_value='segmentation_node', description='node name'),
        ]
    return arguments


def backend_arguments() -> list[Any]:
    """Return the launch arguments of :data:`BACKEND_ARGUMENTS` (empty: the params file's)."""
    from launch.actions import DeclareLaunchArgument
    return [
        DeclareLaunchArgument(
            'backend', default_value='',
            description='torch or onnxruntime (an exported graph, served without torch); '
                        "empty: the params_file's backend"),
        DeclareLaunchArgument(
            'onnx_model', default_value='',
            description='backend onnxruntime: graph written by mask2former_export; empty: '
                        "the params_file's (or export for frame_size into the user cache)"),
        DeclareLaunchArgument(
            'frame_size', default_value='',
            description='camera frame size HxW (backend onnxruntime without onnx_model: the '
                        'size to export for; backend torch: the size compiled for at '
                        "configure); empty: the params_file's"),
        DeclareLaunchArgument(
            'compile', default_value='',
            description=f"backend torch: torch.compile mode, {', '.join(COMPILE_CHOICES)} "
                        '(auto: off on the CPU, reduce-overhead with CUDA graphs on CUDA); '
                        "empty: the params_file's"),
    ]


def task_arguments() -> list[Any]:
    """Return the task, threshold and tracking launch arguments (empty: the params file's)."""
    from launch.actions import DeclareLaunchArgument
    return [
        DeclareLaunchArgument(
            'task', default_value='',
            description=f"{', '.join(TASK_CHOICES)}: panoptic and instance also publish "
                        'segmentation/instances and segmentation/detections; auto reads the '
                        "checkpoint; empty: the params_file's task"),
        *[DeclareLaunchArgument(
            name, default_value='',
            description=f"panoptic/instance {what}, 0..1; empty: the params_file's")
          for name, what in zip(THRESHOLD_ARGUMENTS, (
              'score threshold of a query', 'mask threshold (sigmoid)',
              'share of its mask a segment must keep'), strict=True)],
        DeclareLaunchArgument(
            'tracking', default_value='',
            description='panoptic/instance: true gives instances track ids that persist across '
                        "frames, false ids per frame; empty: the params_file's (default true)"),
        DeclareLaunchArgument(
            'track_max_age', default_value='',
            description='tracking: processed frames a track may miss its object before it '
                        "ends; empty: the params_file's"),
    ]
