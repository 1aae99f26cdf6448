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
Packaging checks: package.xml keys resolve in rosdep and match the imports; pins; share dir.

- Every dependency key of package.xml exists in the rosdep database (ROS packages of Kilted,
  or rosdep/base.yaml and rosdep/python.yaml keys), checked against the list below.
- The run dependencies (``exec_depend``) are exactly what the package's code and launch files
  import at run time, plus the programs the launch files start; modules only the tests and
  their fixtures import are ``test_depend``.
- requirements.txt and setup.py keep pytest below 9.1 (launch_testing's pytest plugin fails
  to load on 9.1+ and takes every pytest run of the environment with it).
- ``share_directory()`` gives one clear error without ``AMENT_PREFIX_PATH``.
- The colcon-built install space holds every launch, config and RViz file and the node.
"""

import ast
import os
from pathlib import Path
import re
import sys
import xml.etree.ElementTree as ElementTree

import launch_harness
from mask2former_ros.ros import launch_support
import pytest

ROOT = Path(__file__).resolve().parents[1]

# rosdep keys of the packages this manifest may name, copied on 2026-11-30 from
# github.com/ros/rosdistro at commit 8468e88ccd523427f9131e39d2af0938f1c298b2 (2026-08-22):
# ROS packages released in kilted/distribution.yaml, and the keys of rosdep/python.yaml and
# rosdep/base.yaml with their Debian/Ubuntu resolution ('pip' = installed by pip).
KILTED_PACKAGES = {
    'ament_copyright', 'ament_flake8', 'ament_index_python', 'ament_pep257', 'ament_xmllint',
    'cv_bridge', 'diagnostic_msgs', 'launch', 'launch_ros', 'launch_testing', 'launch_testing_ros',
    'lifecycle_msgs', 'rcl_interfaces', 'rclpy', 'ros2bag', 'ros2launch', 'rosbag2',
    'rosbag2_storage_mcap', 'rosgraph_msgs', 'rviz2', 'sensor_msgs', 'std_msgs', 'vision_msgs',
}
ROSDEP_KEYS = {
    'libxml2-utils': 'base.yaml: libxml2-utils',
    'python3-hypothesis': 'python.yaml: python3-hypothesis',
    'python3-jinja2': 'python.yaml: python3-jinja2',
    'python3-matplotlib': 'python.yaml: python3-matplotlib',
    'python3-numpy': 'python.yaml: python3-numpy',
    'python3-onnxruntime-pip': 'python.yaml: pip onnxruntime (python3-onnxruntime-gpu-pip: '
                               'onnxruntime-gpu)',
    'python3-opencv': 'python.yaml: python3-opencv',
    'python3-packaging': 'python.yaml: python3-packaging',
    'python3-pil': 'python.yaml: python3-pil',
    'python3-psutil': 'python.yaml: python3-psutil',
    'python3-pytest': 'python.yaml: python3-pytest',
    'python3-rosbags-pip': 'python.yaml: pip rosbags',
    'python3-scipy': 'python.yaml: python3-scipy',
    'python3-torch': 'python.yaml: python3-torch (Debian 12: torch 1.13, too old for '
                     'transformers 5; see docs/install.md for a newer torch)',
    'python3-tqdm': 'python.yaml: python3-tqdm',
    'python3-transformers-pip': 'python.yaml: pip transformers',
    'python3-yaml': 'python.yaml: python3-yaml',
}
# Keys that are NOT in that database (a manifest naming them breaks `rosdep install`).
NOT_ROSDEP_KEYS = {'python3-safetensors-pip', 'python3-safetensors', 'python3-transformers',
                   'python3-rosbags'}

# Python module (top-level name) -> the rosdep key that provides it.
MODULE_KEYS = {
    'PIL': 'python3-pil', 'cv2': 'python3-opencv', 'hypothesis': 'python3-hypothesis',
    'jinja2': 'python3-jinja2', 'matplotlib': 'python3-matplotlib', 'numpy': 'python3-numpy',
    'packaging': 'python3-packaging',
    'psutil': 'python3-psutil', 'pytest': 'python3-pytest', 'rosbags': 'python3-rosbags-pip',
    'scipy': 'python3-scipy', 'torch': 'python3-torch', 'tqdm': 'python3-tqdm',
    'transformers': 'python3-transformers-pip', 'yaml': 'python3-yaml',
    'huggingface_hub': 'python3-transformers-pip',  # a dependency of transformers
    'onnxruntime': 'python3-onnxruntime-pip',
}
# Modules imported only inside ``try: ... except ImportError`` for an optional feature (trackeval:
# segment_bag --gt-track-ids, installed --no-deps by scripts/setup.sh), and the
# ONNX export's pip-only packages (no rosdep key found; installed with torch, see docs/install.md).
OPTIONAL_MODULES = {'ray', 'onnx', 'onnxscript', 'trackeval'}
# Test-only pip packages without a rosdep key (requirements.txt installs them): torchmetrics,
# the second panoptic-quality implementation test_panoptic_quality.py compares against.
PIP_ONLY_TEST_MODULES = {'torchmetrics'}
# Programs the launch files start (not imported): `ros2 bag play` and `rviz2`.
STARTED_PROGRAMS = {'ros2bag', 'rviz2'}
# Test tools run as programs or pytest plugins rather than imported by a test file.
TEST_TOOLS = {'ament_copyright', 'ament_flake8', 'ament_pep257', 'ament_xmllint',
              'launch_testing_ros', 'libxml2-utils', 'ros2launch'}
RUN_CODE = sorted(ROOT.glob('mask2former_ros/**/*.py')) + sorted(ROOT.glob('launch/*.py'))
TEST_CODE = sorted(ROOT.glob('test/**/*.py')) + sorted(ROOT.glob('mask2former_ros_fixtures/*.py'))
LOCAL_MODULES = {'mask2former_ros', 'mask2former_ros_fixtures', 'setup'} | {
    path.stem for folder in ('test', 'bench') for path in (ROOT / folder).glob('*.py')}


def _manifest() -> dict[str, list[str]]:
    root = ElementTree.parse(ROOT / 'package.xml').getroot()
    keys: dict[str, list[str]] = {}
    for element in root:
        if element.tag.endswith('depend'):
            keys.setdefault(element.tag, []).append(element.text.strip())
    return keys


def _key(module: str) -> str:
    return MODULE_KEYS.get(module, module)


def _imported_modules(paths: list[Path]) -> dict[str, list[str]]:
    """Return top-level third-party modules imported anywhere in ``paths`` -> files."""
    modules: dict[str, list[str]] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split('.')[0]
                if top not in sys.stdlib_module_names and top not in LOCAL_MODULES:
                    modules.setdefault(top, []).append(str(path.relative_to(ROOT)))
    return modules


def test_every_package_xml_key_is_a_rosdep_key():
    for tag, keys in _manifest().items():
        for key in keys:
            assert key not in NOT_ROSDEP_KEYS, f'<{tag}>{key}</{tag}> is not a rosdep key'
            assert key in KILTED_PACKAGES or key in ROSDEP_KEYS, (
                f'<{tag}>{key}</{tag}>: not in the rosdep key list of this test; check it in '
                'rosdistro (kilted/distribution.yaml, rosdep/*.yaml) and add it here')
    assert len(sum(_manifest().values(), [])) == len(set(sum(_manifest().values(), []))), (
        'a key is declared twice')


def test_run_dependencies_are_what_the_code_imports_and_starts():
    imported = _imported_modules(RUN_CODE)
    needed = {_key(module) for module in imported if module not in OPTIONAL_MODULES}
    declared = set(_manifest().get('exec_depend', []))
    missing = {key: imported.get(key) or [m for m in imported if _key(m) == key]
               for key in needed - declared}
    assert not missing, f'imported at run time but not an exec_depend: {missing}'
    assert not declared - needed - STARTED_PROGRAMS, (
        f'exec_depend that no run-time code imports: {sorted(declared - needed)}')


def test_test_only_modules_are_test_depend():
    manifest = _manifest()
    run = {_key(module) for module in _imported_modules(RUN_CODE)}
    test = {_key(module) for module in _imported_modules(TEST_CODE)} - run - OPTIONAL_MODULES \
        - PIP_ONLY_TEST_MODULES
    declared = set(manifest.get('test_depend', []))
    assert not test - declared, f'imported by tests but not a test_depend: {test - declared}'
    assert not test & set(manifest.get('exec_depend', [])), 'test-only keys in exec_depend'
    assert not declared - test - TEST_TOOLS, (
        f'test_depend that no test uses: {sorted(declared - test - TEST_TOOLS)}')


def test_pytest_is_pinned_below_9_1():
    from packaging.requirements import Requirement

    lines = (ROOT / 'requirements.txt').read_text().splitlines()
    pins = [line.split('#')[0] for line in lines if re.match(r'pytest\b(?!-)', line)]
    pins += re.findall(r"'(pytest\b(?!-)[^']*)'", (ROOT / 'setup.py').read_text())
    assert len(pins) == 2, pins
    for pin in pins:
        specifier = Requirement(pin).specifier
        assert not specifier.contains('9.1.0') and not specifier.contains('9.2.0'), (
            f'{pin}: launch_testing fails on pytest 9.1 and later')
        assert {version for version in ('7.4.4', '8.4.2', '9.0.3')
                if specifier.contains(version)} == {'7.4.4', '8.4.2', '9.0.3'}, pin


def test_share_directory_without_ament_prefix_path_is_one_clear_error(monkeypatch):
    monkeypatch.delenv('AMENT_PREFIX_PATH', raising=False)
    with pytest.raises(launch_support.RosEnvironmentError, match='AMENT_PREFIX_PATH is not set'):
        launch_support.share_directory()


def test_share_directory_falls_back_to_the_source_tree(monkeypatch, tmp_path):
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(tmp_path))
    share = Path(launch_support.share_directory())
    assert share == ROOT and (share / 'config' / 'segmentation.yaml').is_file()


def test_find_rviz2_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(tmp_path))
    with pytest.raises(launch_support.RosEnvironmentError, match='rviz:=false'):
        launch_support.find_rviz2()
    prefix = launch_harness.fake_rviz2(tmp_path / 'prefix')
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(prefix))
    assert launch_support.find_rviz2() == str(prefix / 'lib' / 'rviz2' / 'rviz2')


def test_rviz_config_replaces_the_topics(tmp_path):
    path = launch_support.rviz_config(str(ROOT / launch_support.RVIZ_TEMPLATE), {
        'image': '/a/image', 'overlay': '/a/segmentation/overlay'}, str(tmp_path))
    text = Path(path).read_text()
    assert 'Value: /a/image\n' in text and 'Value: /a/segmentation/overlay\n' in text
    assert 'Value: /segmentation/color\n' in text  # not given: unchanged
    assert launch_support.resolve_topic('robot1/', 'segmentation/color') == (
        '/robot1/segmentation/color')
    assert launch_support.resolve_topic('robot1', '/cam/image') == '/cam/image'
    assert launch_support.resolve_topic('', 'image') == '/image'


def test_install_space_has_every_launch_config_and_rviz_file():
    reason = launch_harness.missing_launch_stack()
    if reason:
        pytest.skip(reason)
    install = launch_harness.install_space()
    share = launch_harness.installed_share()
    assert share.is_relative_to(install)
    missing = [f'{folder}/{path.name}' for folder in ('launch', 'config', 'rviz')
               for path in sorted((ROOT / folder).iterdir())
               if path.is_file() and not (share / folder / path.name).is_file()]
    assert not missing, f'setup.py data_files do not install {missing}'
    assert (share / 'package.xml').is_file()
    node = share.parents[1] / 'lib' / 'mask2former_ros' / 'segmentation_node'
    assert os.access(node, os.X_OK), f'{node}: launch_ros looks for the node there'
