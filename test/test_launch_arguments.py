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
The installed launch files' arguments, with the real launch API (nothing is started).

Every argument has a description; bad values stop the launch (``LaunchService.run`` returns
non-zero) with an error naming the argument, before anything starts; the camera list and
player command parsers accept and refuse what their documentation says.
"""

import logging
import runpy

import launch_harness
from mask2former_ros.ros.parameters import SPECS
import pytest

REASON = launch_harness.missing_launch_stack()
pytestmark = pytest.mark.skipif(REASON is not None, reason=str(REASON))

LAUNCH_FILES = ('segmentation.launch.py', 'bag_replay.launch.py', 'multi_camera.launch.py')


@pytest.fixture(scope='module')
def share():
    """Return share/mask2former_ros of the colcon install space."""
    return launch_harness.installed_share()


def _run(path, arguments: dict[str, str]) -> tuple[int, str]:
    """Run the launch file in this process; return its exit code and what launch logged."""
    from launch import LaunchDescription, LaunchService
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    import launch.logging

    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(f'{record.name}: {record.getMessage()}')
    logger = launch.logging.get_logger('launch')
    logger.addHandler(handler)
    try:
        service = LaunchService(noninteractive=True)
        service.include_launch_description(LaunchDescription([IncludeLaunchDescription(
            PythonLaunchDescriptionSource(str(path)), launch_arguments=arguments.items())]))
        code = service.run(shutdown_when_idle=True)
    finally:
        logger.removeHandler(handler)
    return code, '\n'.join(records)


@pytest.mark.parametrize('name', LAUNCH_FILES)
def test_every_argument_is_described(share, name):
    from launch import LaunchContext
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    description = PythonLaunchDescriptionSource(str(share / 'launch' / name)).\
        get_launch_description(LaunchContext())
    arguments = description.get_launch_arguments()
    assert {'model', 'device', 'params_file', 'autostart', 'backend', 'onnx_model',
            'frame_size', 'compile', 'task', 'score_threshold', 'mask_threshold',
            'overlap_threshold', 'tracking', 'track_max_age'} <= {a.name for a in arguments}
    for argument in arguments:
        assert argument.description and 'no description' not in argument.description, (
            argument.name)


@pytest.mark.parametrize('name,arguments,expected', [
    ('segmentation.launch.py', {'params_file': '/nonexistent.yaml'}, 'params_file'),
    ('segmentation.launch.py', {'use_sim_time': 'maybe'}, 'use_sim_time'),
    ('segmentation.launch.py', {'node_name': ''}, 'node_name'),
    ('multi_camera.launch.py', {'cameras': '[front,front]'}, 'repeats front'),
    ('multi_camera.launch.py', {'cameras': '[front-left]'}, 'front-left'),
    ('bag_replay.launch.py', {'bag': '/nonexistent_bag'}, 'bag'),
    ('bag_replay.launch.py', {'bag': '.', 'rate': '0'}, 'rate'),
    ('bag_replay.launch.py', {'bag': '.', 'remap': '/a=/b'}, '/a=/b'),
    ('bag_replay.launch.py', {'bag': '.', 'player': ' '}, 'player'),
    ('segmentation.launch.py', {'task': 'semantik'},
     "task:='semantik' must be one of auto, semantic, panoptic, instance"),
    ('multi_camera.launch.py', {'score_threshold': '1.5'}, "score_threshold:='1.5'"),
    ('bag_replay.launch.py', {'bag': '.', 'mask_threshold': 'half'}, "mask_threshold:='half'"),
    ('segmentation.launch.py', {'overlap_threshold': 'nan'}, "overlap_threshold:='nan'"),
    ('segmentation.launch.py', {'track_max_age': '-1'}, "track_max_age:='-1' must be an integer"),
    ('multi_camera.launch.py', {'compile': 'fast'},
     "compile:='fast' must be one of auto, off, default, reduce-overhead, max-autotune"),
])
def test_bad_arguments_stop_the_launch_before_anything_starts(
        share, name, arguments, expected):
    code, output = _run(share / 'launch' / name, arguments)
    assert code != 0, output
    assert expected in output, output


@pytest.mark.parametrize('given,expected', [
    ({}, {}),
    ({'task': 'panoptic'}, {'task': 'panoptic'}),
    ({'task': ' Instance', 'score_threshold': '0.6', 'mask_threshold': '0',
      'overlap_threshold': '1'},
     {'task': 'instance', 'score_threshold': 0.6, 'mask_threshold': 0.0,
      'overlap_threshold': 1.0}),
    ({'tracking': 'false', 'track_max_age': '30'}, {'tracking': False, 'track_max_age': 30}),
])
def test_task_and_thresholds_reach_the_node_only_when_given(given, expected):
    from mask2former_ros.ros.launch_support import node_parameters

    arguments = {'params_file': '', 'image_transport': 'raw', 'use_sim_time': 'false',
                 'autostart': 'true', 'model': '', 'device': '', 'backend': '',
                 'onnx_model': '', 'frame_size': '', 'compile': '', 'task': '',
                 'score_threshold': '', 'mask_threshold': '', 'overlap_threshold': '',
                 'tracking': '', 'track_max_age': '', **given}
    files, overrides = node_parameters(lambda name: arguments[name].strip())
    assert files == []
    names = ('task', 'score_threshold', 'mask_threshold', 'overlap_threshold', 'tracking',
             'track_max_age')
    assert {k: v for k, v in overrides.items() if k in names} == expected
    for name, value in expected.items():  # typed as the node declares them (str, double)
        assert type(value) is type(SPECS[name].default), name
    _, overrides = node_parameters(lambda name: arguments[name].strip(), {'task': 'semantic'})
    assert overrides['task'] == 'semantic'  # what the launch file fixes wins
    assert 'compile' not in overrides  # empty: the parameter file's
    arguments['compile'] = 'reduce-overhead'
    _, overrides = node_parameters(lambda name: arguments[name].strip())
    assert overrides['compile'].value == 'reduce-overhead'


@pytest.mark.parametrize('text,expected', [
    ('[front,left,right]', ['front', 'left', 'right']),
    ("['front', 'left']", ['front', 'left']),
    ('[ /front/ , rear ]', ['front', 'rear']),
    ('robot1/front rear', ['robot1/front', 'rear']),
])
def test_camera_lists(share, text, expected):
    module = runpy.run_path(str(share / 'launch' / 'multi_camera.launch.py'))
    assert module['parse_cameras'](text) == expected


def test_player_command(share):
    module = runpy.run_path(str(share / 'launch' / 'bag_replay.launch.py'))
    command = module['bag_play_command']('/b', '0.5', True, '/a:=/c, /d:=/e')
    assert command == ['ros2', 'bag', 'play', '/b', '--clock', '100', '--rate', '0.5',
                       '--disable-keyboard-controls', '--loop', '--remap', '/a:=/c', '/d:=/e']
    command = module['bag_play_command']('/b', '1.0', False, '', "python3 '/my player.py'")
    assert command[:3] == ['python3', '/my player.py', '/b'] and '--loop' not in command


def test_install_space_holds_the_package_but_no_test_fixtures(share):
    """The colcon install space holds the runtime package, not the fixtures or their models."""
    install = share.parents[2]
    files = [p.relative_to(install).as_posix() for p in install.rglob('*') if p.is_file()]
    assert any(f.endswith('mask2former_ros/ros/node.py') for f in files), files[:20]
    assert not [f for f in files if 'mask2former_ros_fixtures' in f or
                f.endswith(('.safetensors', 'training_info.json'))], files
