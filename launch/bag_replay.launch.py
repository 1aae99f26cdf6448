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
Replay a rosbag2 recording through the segmentation node, optionally with RViz2.

Runs ``ros2 bag play <bag> --clock`` (the bag's time drives /clock), the node of
segmentation.launch.py with ``use_sim_time:=true`` and, with ``rviz:=true``, RViz2 showing
the input, ``<namespace>/segmentation/overlay`` and ``<namespace>/segmentation/color``.
When the player ends (the bag is over, or it failed), the launch shuts down: the node and
RViz2 stop and ``ros2 launch`` exits. With ``loop:=true`` the player never ends by itself;
Ctrl-C stops everything. ``player`` selects the player command (default ``ros2 bag play``;
any command taking the same arguments works, e.g. a wrapper script). Large best-effort frames
are only delivered reliably with the large-image Fast DDS profile, so every process started
here uses it by default (``large_image_profile``); tools started in other terminals
(``ros2 topic hz``, another RViz) should export the same ``FASTDDS_DEFAULT_PROFILES_FILE``.

For an offline, frame-exact evaluation of a bag (no dropped frames, no DDS) use
``ros2 run mask2former_ros segment_bag`` instead.

Examples::

    ros2 launch mask2former_ros bag_replay.launch.py bag:=~/bags/drive rviz:=true
    ros2 launch mask2former_ros bag_replay.launch.py bag:=~/bags/drive.mcap \
        image:=/front/image_raw rate:=0.5 loop:=true device:=cpu
    ros2 launch mask2former_ros bag_replay.launch.py bag:=~/bags/drive \
        remap:=/sensors/cam0/image:=/camera/image_raw
    ros2 launch mask2former_ros bag_replay.launch.py bag:=~/bags/drive namespace:=robot1 \
        remap:=/camera/image_raw:=/robot1/camera/image_raw image:=/robot1/camera/image_raw \
        rviz:=true
"""

import os
import shlex

from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument, EmitEvent, ExecuteProcess, LogInfo, OpaqueFunction,
    RegisterEventHandler, TimerAction)
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from mask2former_ros.ros.launch_support import (
    as_bool, find_rviz2, input_remappings, large_image_setup, node_arguments, PROFILE_VARIABLE,
    rviz_actions, segmentation_node, share_directory)

CLOCK_HZ = '100'  # /clock rate of the player: 10 ms steps of simulated time


def positive_float(name: str, text: str, allow_zero: bool = False) -> float:
    """Parse a number launch argument that must be positive (or zero if allowed)."""
    try:
        value = float(text)
    except ValueError:
        value = float('nan')
    if not (value > 0.0 or (allow_zero and value == 0.0)):
        raise ValueError(f"launch argument {name}:='{text}' must be a "
                         f"{'non-negative' if allow_zero else 'positive'} number")
    return value


def bag_play_command(bag: str, rate: str, loop: bool, remap: str,
                     player: str = 'ros2 bag play') -> list[str]:
    """
    Return the player command line: ``player`` (``ros2 bag play``) and its arguments.

    The bag path comes first: ``--clock`` takes an optional frequency, and ``--remap`` takes
    all the rules that follow it.
    """
    program = shlex.split(player)
    if not program:
        raise ValueError("launch argument player must not be empty (default: 'ros2 bag play')")
    cmd = program + [bag, '--clock', CLOCK_HZ, '--rate', rate, '--disable-keyboard-controls']
    if loop:
        cmd.append('--loop')
    rules = remap.replace(',', ' ').split()
    for rule in rules:
        if ':=' not in rule:
            raise ValueError(f"remap rule '{rule}' must look like /from:=/to")
    if rules:
        cmd += ['--remap'] + rules
    return cmd


def _shut_down_after_the_player(event, context) -> list:
    """End the launch when the player has ended, unless it is ending already (Ctrl-C)."""
    if context.is_shutdown:
        return []
    return [LogInfo(msg=f'the bag player has ended (exit code {event.returncode}); '
                        'shutting down'),
            EmitEvent(event=Shutdown(reason='the bag player ended'))]


def launch_setup(context, *args, **kwargs) -> list:
    """Build the player, the segmentation node and RViz2 from the launch arguments."""
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context).strip()

    rviz = as_bool('rviz', arg('rviz'))
    if rviz:
        find_rviz2()  # before anything starts: one clear error, nothing left running
    bag = os.path.expanduser(arg('bag'))
    if not os.path.exists(bag):
        raise FileNotFoundError(f"launch argument bag:='{bag}' does not exist")
    rate = positive_float('rate', arg('rate'))
    delay = positive_float('delay', arg('delay'), allow_zero=True)

    env, actions = large_image_setup(arg)
    if env:
        actions.append(LogInfo(msg=f'{PROFILE_VARIABLE}={env[PROFILE_VARIABLE]} for the player, '
                                   'the node and RViz2; export it for other tools too'))

    loop = as_bool('loop', arg('loop'))
    player = ExecuteProcess(
        cmd=bag_play_command(bag, repr(rate), loop, arg('remap'), arg('player')),
        name='bag_play', output='screen', additional_env=env or None)
    # The replay is over when the player ends (with loop:=true only on an error or Ctrl-C):
    # shut the launch down, so that the node (on simulated time, whose /clock has stopped)
    # and RViz2 stop and `ros2 launch` exits.
    actions.append(RegisterEventHandler(OnProcessExit(
        target_action=player, on_exit=_shut_down_after_the_player)))
    actions.append(TimerAction(period=delay, actions=[player]) if delay > 0 else player)

    # The node of segmentation.launch.py, on the bag's time.
    namespace, image = arg('namespace').strip('/'), arg('image')
    actions.append(segmentation_node(
        arg, name=arg('node_name'), namespace=namespace,
        remappings=input_remappings('', image) if image else [],
        parameters={'use_sim_time': True}, env=env))
    if rviz:
        actions += rviz_actions(namespace, image, env, use_sim_time=True)
    return actions


def generate_launch_description() -> LaunchDescription:
    """Declare the launch arguments; the actions are built once they are known."""
    default_params = os.path.join(share_directory(), 'config', 'segmentation.yaml')
    return LaunchDescription([
        *node_arguments(default_params,
                        'node parameter file (model and device arguments override it)'),
        DeclareLaunchArgument(
            'bag', description='rosbag2 recording to play: a bag directory or a .mcap/.db3 '
                               'file'),
        DeclareLaunchArgument(
            'image', default_value='/camera/image_raw',
            description='image topic in the bag (after remap), the input of the node'),
        DeclareLaunchArgument(
            'image_transport', default_value='raw', choices=['raw', 'compressed'],
            description='raw: <image> is sensor_msgs/Image; compressed: segment '
                        '<image>/compressed (sensor_msgs/CompressedImage)'),
        DeclareLaunchArgument(
            'rate', default_value='1.0',
            description='playback rate (ros2 bag play --rate), e.g. 0.5 for a slow model'),
        DeclareLaunchArgument(
            'loop', default_value='false', description='replay the bag endlessly (--loop)'),
        DeclareLaunchArgument(
            'remap', default_value='',
            description="topic remappings for the player, e.g. '/cam0/image:=/camera/image_raw' "
                        '(several separated by spaces or commas)'),
        DeclareLaunchArgument(
            'delay', default_value='0.0',
            description='seconds to wait before playing, e.g. while a large model loads '
                        '(frames published before the node is active are not segmented)'),
        DeclareLaunchArgument(
            'player', default_value='ros2 bag play',
            description='bag player command; it is given <bag> --clock 100 --rate <rate> '
                        '--disable-keyboard-controls [--loop] [--remap <rules>]'),
        DeclareLaunchArgument(
            'rviz', default_value='false',
            description='true: start RViz2 showing the input, overlay and colour topics '
                        "(rviz/segmentation.rviz with this launch's topics)"),
        DeclareLaunchArgument(
            'large_image_profile', default_value='true',
            description=f'true: run the player, the node and RViz2 with {PROFILE_VARIABLE} '
                        "set to the package's config/fastdds_large_images.xml"),
        OpaqueFunction(function=launch_setup),
    ])
