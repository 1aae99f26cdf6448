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
Static checks of the parameter files and the RViz config template.

What a real launch cannot reach: every parameter of every shipped file is one the node
declares, with its type, a valid value and a comment; the default file lists every parameter
with the node's default; the node accepts each file under any name and namespace; the RViz
template shows the topics that the launch files replace (launch_support.RVIZ_TOPICS) with the
right QoS. The launch files themselves are run for real in test_launch_*.py.
"""

from pathlib import Path
import re
from typing import Any

from mask2former_ros.ros.launch_support import RVIZ_TOPICS
from mask2former_ros.ros.parameters import SPECS, validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG_FILES = sorted((ROOT / 'config').glob('*.yaml'))
RVIZ_FILES = sorted((ROOT / 'rviz').glob('*.rviz'))
ROS_STANDARD_PARAMETERS = {'use_sim_time'}


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


# --- parameter files --------------------------------------------------------------------------


def _load_yaml(path: Path) -> Any:
    with open(path) as handle:
        return yaml.safe_load(handle)


def _parameters(path: Path) -> dict[str, Any]:
    return _load_yaml(path)['/**']['ros__parameters']


@pytest.mark.parametrize('path', CONFIG_FILES, ids=_ids(CONFIG_FILES))
def test_config_structure(path):
    data = _load_yaml(path)
    assert isinstance(data, dict) and list(data) == ['/**'], \
        "use the '/**' wildcard key so the file applies under any node name and namespace"
    assert list(data['/**']) == ['ros__parameters']
    assert isinstance(data['/**']['ros__parameters'], dict) and data['/**']['ros__parameters']


@pytest.mark.parametrize('path', CONFIG_FILES, ids=_ids(CONFIG_FILES))
def test_config_parameters_are_declared_typed_and_valid(path):
    for name, value in _parameters(path).items():
        if name in ROS_STANDARD_PARAMETERS:
            continue
        assert name in SPECS, f'{path.name}: the node declares no parameter {name!r}'
        expected = type(SPECS[name].default)
        # Stricter than validate(): ROS refuses an integer for a double parameter.
        assert type(value) is expected, f'{path.name}: {name} must be a {expected.__name__}'
        if expected is list:
            assert all(isinstance(v, str) for v in value), name
        assert validate(name, value) is None, validate(name, value)


@pytest.mark.parametrize('path', CONFIG_FILES, ids=_ids(CONFIG_FILES))
def test_config_parameters_are_commented(path):
    lines = path.read_text().splitlines()
    strict = path.name == 'segmentation.yaml'
    for index, line in enumerate(lines):
        match = re.match(r'    (\w+):', line)
        if not match:
            continue
        above = index - 1
        # A group of parameters may share one comment, except in the default file.
        while not strict and re.match(r'    \w+:', lines[above]):
            above -= 1
        assert lines[above].strip().startswith('#'), f'{path.name}: {match[1]} has no comment'


def test_default_config_lists_every_parameter_with_the_node_default():
    parameters = _parameters(ROOT / 'config' / 'segmentation.yaml')
    assert set(parameters) == set(SPECS)
    assert parameters['model'] == 'facebook/mask2former-swin-large-cityscapes-semantic'
    for name, spec in SPECS.items():
        assert parameters[name] == spec.default, name


def test_cpu_and_multi_camera_configs():
    cpu = _parameters(ROOT / 'config' / 'segmentation_cpu.yaml')
    assert cpu['model'] == 'facebook/mask2former-swin-tiny-cityscapes-semantic'
    assert (cpu['device'], cpu['precision']) == ('cpu', 'fp32')
    assert cpu['input_size'] in ('checkpoint', '384') or int(cpu['input_size']) <= 512
    multi = _parameters(ROOT / 'config' / 'multi_camera.yaml')
    assert multi['cameras'] == ['front', 'left', 'right']


@pytest.fixture(scope='module')
def ros_context():
    """Return an initialised rclpy context of this module's own."""
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.try_shutdown(context=context)


def _start_node(ros_context, args: list[str]):
    from mask2former_ros.ros.node import SegmentationNode

    return SegmentationNode(context=ros_context, cli_args=args, use_global_arguments=False)


@pytest.mark.parametrize('path', CONFIG_FILES, ids=_ids(CONFIG_FILES))
def test_node_accepts_config_under_any_name(ros_context, path):
    node = _start_node(ros_context, ['--ros-args', '-r', '__node:=renamed', '-r', '__ns:=/ns',
                                     '--params-file', str(path)])
    try:
        assert node.get_fully_qualified_name() == '/ns/renamed'
        for name, value in _parameters(path).items():
            assert node.get_parameter(name).value == value, name
    finally:
        node.destroy_node()


def _image_displays(path: Path) -> dict[str, dict[str, Any]]:
    data = _load_yaml(path)
    displays = data['Visualization Manager']['Displays']
    return {d['Topic']['Value']: d for d in displays
            if d['Class'] == 'rviz_default_plugins/Image'}


@pytest.mark.parametrize('path', RVIZ_FILES, ids=_ids(RVIZ_FILES))
def test_rviz_config(path):
    data = _load_yaml(path)
    assert {'Panels', 'Visualization Manager', 'Window Geometry'} <= set(data)
    assert data['Visualization Manager']['Global Options']['Fixed Frame']
    displays = _image_displays(path)
    outputs = {t: d for t, d in displays.items() if '/segmentation/' in t}
    assert {t.rsplit('/', 2)[-2] + '/' + t.rsplit('/', 1)[-1] for t in outputs} >= {
        'segmentation/overlay', 'segmentation/color'}
    for display in outputs.values():
        assert display['Topic']['Reliability Policy'] == 'Reliable'
    inputs = [d for t, d in displays.items() if t not in outputs]
    assert inputs, 'show the camera input too'
    for display in inputs:
        assert display['Topic']['Reliability Policy'] == 'Best Effort'


def test_rviz_template_shows_the_topics_the_launch_files_replace():
    displays = _image_displays(ROOT / 'rviz' / 'segmentation.rviz')
    assert set(displays) == set(RVIZ_TOPICS.values())
    text = (ROOT / 'rviz' / 'segmentation.rviz').read_text()
    for topic in RVIZ_TOPICS.values():
        assert text.count(f'Value: {topic}\n') == 1, topic
