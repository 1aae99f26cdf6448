"""
Checks of the launch files, parameter files and RViz config that need no ROS launch install.

The launch files are parsed (AST), and also run against a small recording stand-in of the
``launch``/``launch_ros`` API: their OpaqueFunctions build the node descriptions from given
launch arguments, which are then turned into a node command line the way launch_ros does it
(parameter files, a parameter file for the override dict, remappings) and given to a real
:class:`~mask2former_ros.ros.node.SegmentationNode` (declaring its parameters is cheap; the model
is only loaded on configure), so parameter types, override precedence and topic remapping
are checked end to end. Where ``launch`` is installed, the launch files are additionally
loaded and expanded with the real API.
"""

import ast
import itertools
import os
from pathlib import Path
import re
import runpy
import sys
import types
from typing import Any

from mask2former_ros.ros.parameters import SPECS, validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = 'mask2former_ros'
LAUNCH_DIR = ROOT / 'launch'
LAUNCH_FILES = sorted(LAUNCH_DIR.glob('*.launch.py'))
CONFIG_FILES = sorted((ROOT / 'config').glob('*.yaml'))
RVIZ_FILES = sorted((ROOT / 'rviz').glob('*.rviz'))
ROS_STANDARD_PARAMETERS = {'use_sim_time'}
PROFILE_VARIABLE = 'FASTDDS_DEFAULT_PROFILES_FILE'
EXPECTED_ARGUMENTS = {
    'segmentation.launch.py': {
        'image', 'image_transport', 'model', 'device', 'params_file', 'namespace', 'node_name',
        'use_sim_time', 'large_image_profile', 'log_level'},
    'bag_replay.launch.py': {
        'bag', 'image', 'image_transport', 'rate', 'loop', 'remap', 'delay', 'model', 'device',
        'params_file', 'rviz', 'large_image_profile'},
    'multi_camera.launch.py': {
        'cameras', 'mode', 'image_suffix', 'image_transport', 'model', 'device', 'params_file',
        'use_sim_time', 'large_image_profile'},
}
# Where a file name mentioned in a launch file must exist.
REFERENCE_DIRS = {'.yaml': 'config', '.xml': 'config', '.rviz': 'rviz', '.py': 'launch'}


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


# --- setup.py ------------------------------------------------------------------------------


@pytest.fixture(scope='module')
def setup_kwargs() -> dict[str, Any]:
    """Run setup.py with setuptools.setup replaced, returning the keyword arguments."""
    import setuptools

    captured: dict[str, Any] = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(setuptools, 'setup', lambda **kwargs: captured.update(kwargs))
        patch.chdir(ROOT)
        runpy.run_path(str(ROOT / 'setup.py'), run_name='__main__')
    assert captured, 'setup.py did not call setup()'
    return captured


@pytest.fixture(scope='module')
def installed_files(setup_kwargs) -> set[str]:
    """Return the install paths (relative to the prefix) of setup.py's data_files."""
    return {os.path.normpath(os.path.join(dest, os.path.basename(src)))
            for dest, sources in setup_kwargs['data_files'] for src in sources}


@pytest.fixture(scope='module')
def console_scripts(setup_kwargs) -> dict[str, str]:
    """Return the console_scripts entry points: executable name -> 'module:function'."""
    scripts = {}
    for entry in setup_kwargs['entry_points']['console_scripts']:
        name, target = (part.strip() for part in entry.split('=', 1))
        scripts[name] = target
    return scripts


def test_launch_config_and_rviz_files_exist():
    assert {p.name for p in LAUNCH_FILES} >= set(EXPECTED_ARGUMENTS)
    assert {p.name for p in CONFIG_FILES} >= {
        'segmentation.yaml', 'segmentation_cpu.yaml', 'multi_camera.yaml'}
    assert 'segmentation.rviz' in {p.name for p in RVIZ_FILES}


def test_every_launch_config_and_rviz_file_is_installed(installed_files):
    share = Path('share') / PACKAGE
    missing = []
    for folder in ('launch', 'config', 'rviz'):
        for path in sorted((ROOT / folder).iterdir()):
            if path.is_file() and not path.name.startswith('.'):
                if str(share / folder / path.name) not in installed_files:
                    missing.append(f'{folder}/{path.name}')
    assert not missing, (
        f'setup.py data_files do not install {missing} into share/{PACKAGE}/; the launch '
        f"files use them (e.g. add glob('config/*.xml') to the config entry)")


def test_package_marker_and_manifest_are_installed(installed_files):
    assert (ROOT / 'resource' / PACKAGE).is_file()
    assert f'share/ament_index/resource_index/packages/{PACKAGE}' in installed_files
    assert f'share/{PACKAGE}/package.xml' in installed_files


def test_segmentation_node_entry_point_exists(console_scripts):
    module, function = console_scripts['segmentation_node'].split(':')
    source = ROOT / (module.replace('.', '/') + '.py')
    tree = ast.parse(source.read_text())
    assert function in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


# --- launch files: static checks ----------------------------------------------------------


def _module_constants(tree: ast.Module) -> dict[str, Any]:
    constants = {}
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Constant)):
            constants[node.targets[0].id] = node.value.value
    return constants


def _started_executables(path: Path) -> list[tuple[Any, Any]]:
    """Return (package, executable) of every call with an ``executable=`` keyword."""
    tree = ast.parse(path.read_text(), filename=str(path))
    constants = _module_constants(tree)

    def value(node: ast.expr | None) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return constants.get(node.id, f'<{node.id}>')
        return None if node is None else f'<{ast.dump(node)}>'

    started = []
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        keywords = {k.arg: k.value for k in call.keywords if k.arg}
        if 'executable' in keywords:
            started.append((value(keywords.get('package')), value(keywords['executable'])))
    return started


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=_ids(LAUNCH_FILES))
def test_launch_file_parses_and_defines_generate_launch_description(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert 'generate_launch_description' in functions
    assert not functions['generate_launch_description'].args.args
    assert ast.get_docstring(tree), 'a launch file should say what it starts and how'


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=_ids(LAUNCH_FILES))
def test_launch_file_starts_only_segmentation_node_of_this_package(path, console_scripts):
    started = _started_executables(path)
    ours = {exe for package, exe in started if package == PACKAGE}
    assert ours <= set(console_scripts), f'{ours - set(console_scripts)} not in console_scripts'
    assert ours <= {'segmentation_node'}
    for package, exe in started:
        assert isinstance(package, str) and isinstance(exe, str), (package, exe)
    if path.name != 'bag_replay.launch.py':
        assert ours == {'segmentation_node'}


def _string_constants(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return {n.value for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)}


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=_ids(LAUNCH_FILES))
def test_files_named_in_launch_file_exist(path):
    text = path.read_text()
    names = set(re.findall(r'[\w.-]+\.(?:yaml|xml|rviz|launch\.py)\b', text))
    assert names, 'expected the launch file to name its parameter file'
    for name in names:
        folder = REFERENCE_DIRS[Path(name).suffix]
        assert (ROOT / folder / name).is_file(), f'{path.name} names {folder}/{name}'


# --- launch files run against a recording stand-in of the launch API ----------------------


class Recorded:
    """Stand-in of a launch entity or substitution: keeps its constructor arguments."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def __repr__(self) -> str:
        return f'{type(self).__name__}(*{self.args!r}, **{self.kwargs!r})'


class FakeLaunchConfiguration(Recorded):
    """``launch.substitutions.LaunchConfiguration``."""

    def perform(self, context: Any) -> str:
        return context.launch_configurations[self.args[0]]


class FakeParameterValue(Recorded):
    """``launch_ros.parameter_descriptions.ParameterValue``."""

    @property
    def value(self) -> Any:
        return self.args[0]

    @property
    def value_type(self) -> Any:
        return self.kwargs.get('value_type')


class FakePackageNotFoundError(KeyError):
    """``ament_index_python.packages.PackageNotFoundError``."""


class FakeLaunch:
    """The fake modules, installed into sys.modules while a test runs."""

    ACTIONS = ('DeclareLaunchArgument', 'ExecuteProcess', 'GroupAction',
               'IncludeLaunchDescription', 'LogInfo', 'OpaqueFunction', 'SetEnvironmentVariable',
               'TimerAction')

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.share: str | None = None  # None: the package is not installed
        classes = {name: type(name, (Recorded,), {}) for name in (
            *self.ACTIONS, 'LaunchDescription', 'PythonLaunchDescriptionSource', 'Node',
            'IfCondition', 'UnlessCondition', 'PathJoinSubstitution', 'PythonExpression',
            'TextSubstitution', 'EnvironmentVariable')}
        classes['LaunchConfiguration'] = FakeLaunchConfiguration
        classes['ParameterValue'] = FakeParameterValue
        self.classes = classes

        def get_package_share_directory(package: str) -> str:
            if self.share is None or package != PACKAGE:
                raise FakePackageNotFoundError(package)
            return self.share

        def module(name: str, **attributes: Any) -> types.ModuleType:
            mod = types.ModuleType(name)
            mod.__dict__.update(attributes)
            monkeypatch.setitem(sys.modules, name, mod)
            return mod

        pick = classes.__getitem__
        module('launch', LaunchDescription=pick('LaunchDescription'),
               LaunchContext=types.SimpleNamespace)
        module('launch.actions', **{n: pick(n) for n in self.ACTIONS})
        module('launch.conditions', IfCondition=pick('IfCondition'),
               UnlessCondition=pick('UnlessCondition'))
        module('launch.launch_description_sources',
               PythonLaunchDescriptionSource=pick('PythonLaunchDescriptionSource'))
        module('launch.substitutions', **{n: pick(n) for n in (
            'LaunchConfiguration', 'PathJoinSubstitution', 'PythonExpression',
            'TextSubstitution', 'EnvironmentVariable')})
        module('launch_ros')
        module('launch_ros.actions', Node=pick('Node'))
        module('launch_ros.parameter_descriptions', ParameterValue=FakeParameterValue)
        module('ament_index_python')
        module('ament_index_python.packages',
               get_package_share_directory=get_package_share_directory,
               PackageNotFoundError=FakePackageNotFoundError)

    def is_a(self, obj: Any, name: str) -> bool:
        return isinstance(obj, self.classes[name])

    def load(self, name: str) -> types.ModuleType:
        """Import a launch file (not registered in sys.modules)."""
        import importlib.util

        path = LAUNCH_DIR / name
        spec = importlib.util.spec_from_file_location(
            '_launch_' + name.replace('.', '_'), path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    def declared(self, name: str) -> dict[str, Recorded]:
        """Return the DeclareLaunchArgument entities of a launch file by name."""
        description = self.load(name).generate_launch_description()
        assert self.is_a(description, 'LaunchDescription')
        return {e.args[0]: e for e in description.args[0]
                if self.is_a(e, 'DeclareLaunchArgument')}

    def run(self, name: str, **arguments: str) -> list[Recorded]:
        """Evaluate a launch file with the given arguments; return the actions it builds."""
        description = self.load(name).generate_launch_description()
        configurations = {}
        for entity in description.args[0]:
            if self.is_a(entity, 'DeclareLaunchArgument'):
                arg_name, kwargs = entity.args[0], entity.kwargs
                choices = kwargs.get('choices')
                value = arguments.get(arg_name, kwargs.get('default_value'))
                if value is None:
                    raise RuntimeError(f"Required launch argument '{arg_name}' not provided")
                assert isinstance(value, str), (arg_name, value)
                if choices is not None:
                    assert kwargs.get('default_value') in choices, arg_name
                    if value not in choices:
                        raise RuntimeError(f'{arg_name}:={value} not in {choices}')
                configurations[arg_name] = value
        unknown = set(arguments) - set(configurations)
        assert not unknown, f'{name} does not declare {unknown}'
        context = types.SimpleNamespace(launch_configurations=configurations)
        actions = []
        for entity in description.args[0]:
            if self.is_a(entity, 'OpaqueFunction'):
                function = entity.kwargs.get('function') or entity.args[0]
                actions += function(context)
        return actions

    def nodes(self, actions: list[Recorded]) -> list[Recorded]:
        return [a for a in actions if self.is_a(a, 'Node')]


@pytest.fixture
def fake_launch(monkeypatch) -> FakeLaunch:
    """Install the stand-in launch API for one test."""
    return FakeLaunch(monkeypatch)


def _parameter_dicts(node: Recorded) -> list[dict[str, Any]]:
    return [p for p in node.kwargs['parameters'] if isinstance(p, dict)]


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, FakeParameterValue) else value


def _overrides(node: Recorded) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for params in _parameter_dicts(node):
        merged.update({k: _plain(v) for k, v in params.items()})
    return merged


@pytest.mark.parametrize('name', sorted(EXPECTED_ARGUMENTS))
def test_launch_arguments(fake_launch, name):
    declared = fake_launch.declared(name)
    assert set(declared) == EXPECTED_ARGUMENTS[name]
    for argument in declared.values():
        assert argument.kwargs.get('description'), f'{argument.args[0]} has no description'
    defaults = {k: v.kwargs.get('default_value') for k, v in declared.items()}
    if 'params_file' in defaults:
        assert Path(defaults['params_file']).is_file()
        assert Path(defaults['params_file']).parent == ROOT / 'config'
    if name == 'bag_replay.launch.py':
        assert defaults['bag'] is None, 'bag must be required'


def test_launch_files_use_the_installed_share_directory(fake_launch, tmp_path):
    fake_launch.share = str(tmp_path)
    for name in EXPECTED_ARGUMENTS:
        params = fake_launch.declared(name)['params_file'].kwargs['default_value']
        assert params.startswith(str(tmp_path / 'config')), params


def test_segmentation_defaults(fake_launch):
    actions = fake_launch.run('segmentation.launch.py')
    [node] = fake_launch.nodes(actions)
    kwargs = node.kwargs
    assert (kwargs['package'], kwargs['executable']) == (PACKAGE, 'segmentation_node')
    assert kwargs['name'] == 'segmentation_node'
    assert not kwargs.get('namespace')
    parameters = kwargs['parameters']
    assert parameters[0] == str(ROOT / 'config' / 'segmentation.yaml')
    # Overrides come after the file; model and device are left to the file.
    assert isinstance(parameters[-1], dict)
    assert _overrides(node) == {'image_transport': 'raw', 'use_sim_time': False}
    assert kwargs['remappings'] == [('image', '/camera/image_raw'),
                                    ('image/compressed', '/camera/image_raw/compressed')]
    assert kwargs['arguments'] == ['--ros-args', '--log-level', 'info']
    assert not kwargs.get('additional_env')


def test_segmentation_overrides_and_options(fake_launch, tmp_path):
    params = tmp_path / 'mine.yaml'
    params.write_text('/**:\n  ros__parameters:\n    qos_depth: 2\n')
    actions = fake_launch.run(
        'segmentation.launch.py', model='/models/2024', device='cuda:1', image='/cam/img',
        image_transport='compressed', use_sim_time='true', namespace='front',
        node_name='seg', large_image_profile='true', log_level='debug', params_file=str(params))
    [node] = fake_launch.nodes(actions)
    kwargs = node.kwargs
    assert kwargs['parameters'][0] == str(params)
    assert _overrides(node) == {'image_transport': 'compressed', 'use_sim_time': True,
                                'model': '/models/2024', 'device': 'cuda:1'}
    for value in _parameter_dicts(node)[-1].values():
        if isinstance(value, FakeParameterValue):
            assert value.value_type is str  # '2024' must stay a string
    assert (kwargs['name'], kwargs['namespace']) == ('seg', 'front')
    assert kwargs['remappings'] == [('image', '/cam/img'),
                                    ('image/compressed', '/cam/img/compressed')]
    assert kwargs['arguments'] == ['--ros-args', '--log-level', 'debug']
    profile = Path(kwargs['additional_env'][PROFILE_VARIABLE])
    assert profile == ROOT / 'config' / 'fastdds_large_images.xml' and profile.is_file()


def test_segmentation_argument_errors(fake_launch, tmp_path):
    actions = fake_launch.run('segmentation.launch.py', image='')
    assert not fake_launch.nodes(actions)[0].kwargs['remappings']
    with pytest.raises(FileNotFoundError):
        fake_launch.run('segmentation.launch.py', params_file=str(tmp_path / 'missing.yaml'))
    with pytest.raises(ValueError):
        fake_launch.run('segmentation.launch.py', use_sim_time='maybe')
    with pytest.raises(RuntimeError):
        fake_launch.run('segmentation.launch.py', image_transport='theora')
    # No params file at all: the node's defaults plus the overrides.
    [node] = fake_launch.nodes(fake_launch.run('segmentation.launch.py', params_file=''))
    assert all(isinstance(p, dict) for p in node.kwargs['parameters'])


def _bag_actions(fake_launch, tmp_path, **arguments):
    bag = tmp_path / 'bag'
    bag.mkdir(exist_ok=True)
    actions = fake_launch.run('bag_replay.launch.py', bag=str(bag), **arguments)
    players = []
    for action in actions:
        if fake_launch.is_a(action, 'TimerAction'):
            players += action.kwargs['actions']
        elif fake_launch.is_a(action, 'ExecuteProcess'):
            players.append(action)
    includes = [a for a in actions if fake_launch.is_a(a, 'IncludeLaunchDescription')]
    return bag, actions, players, includes


def test_bag_replay_defaults(fake_launch, tmp_path):
    bag, actions, [player], [include] = _bag_actions(fake_launch, tmp_path)
    cmd = player.kwargs['cmd']
    assert cmd[:5] == ['ros2', 'bag', 'play', str(bag), '--clock']
    assert cmd[cmd.index('--rate') + 1] == '1.0'
    assert '--loop' not in cmd and '--remap' not in cmd
    # The node of segmentation.launch.py, on simulated time, with the bag's image topic.
    source = include.args[0]
    assert Path(source.args[0]) == LAUNCH_DIR / 'segmentation.launch.py'
    arguments = dict(include.kwargs['launch_arguments'])
    assert arguments['use_sim_time'] == 'true'
    assert arguments['image'] == '/camera/image_raw'
    assert arguments['params_file'] == str(ROOT / 'config' / 'segmentation.yaml')
    assert set(arguments) <= EXPECTED_ARGUMENTS['segmentation.launch.py']
    assert not fake_launch.nodes(actions), 'no RViz unless asked for'
    # The large-image profile is on by default for every process started here.
    profile = ROOT / 'config' / 'fastdds_large_images.xml'
    assert arguments['large_image_profile'] == 'true'
    assert player.kwargs['additional_env'] == {PROFILE_VARIABLE: str(profile)}


def test_bag_replay_options(fake_launch, tmp_path):
    _, actions, [player], [include] = _bag_actions(
        fake_launch, tmp_path, rate='0.5', loop='true', remap='/a:=/camera/image_raw /b:=/c',
        rviz='true', model='m', device='cpu', delay='2.5', large_image_profile='false')
    cmd = player.kwargs['cmd']
    assert cmd[cmd.index('--rate') + 1] == '0.5' and '--loop' in cmd
    assert cmd[cmd.index('--remap'):] == ['--remap', '/a:=/camera/image_raw', '/b:=/c']
    assert not player.kwargs.get('additional_env')
    [timer] = [a for a in actions if fake_launch.is_a(a, 'TimerAction')]
    assert timer.kwargs['period'] == 2.5
    arguments = dict(include.kwargs['launch_arguments'])
    assert (arguments['model'], arguments['device']) == ('m', 'cpu')
    assert arguments['large_image_profile'] == 'false'
    [rviz] = fake_launch.nodes(actions)
    assert (rviz.kwargs['package'], rviz.kwargs['executable']) == ('rviz2', 'rviz2')
    config = rviz.kwargs['arguments'][rviz.kwargs['arguments'].index('-d') + 1]
    assert Path(config) == ROOT / 'rviz' / 'segmentation.rviz'
    assert rviz.kwargs['parameters'] == [{'use_sim_time': True}]


def test_bag_replay_argument_errors(fake_launch, tmp_path):
    with pytest.raises(RuntimeError):
        fake_launch.run('bag_replay.launch.py')  # bag is required
    with pytest.raises(FileNotFoundError):
        fake_launch.run('bag_replay.launch.py', bag=str(tmp_path / 'nothing'))
    for bad in ({'rate': '0'}, {'rate': 'fast'}, {'delay': '-1'}, {'remap': '/a=/b'},
                {'loop': 'sometimes'}):
        with pytest.raises(ValueError):
            _bag_actions(fake_launch, tmp_path, **bad)


@pytest.mark.parametrize('name,arguments', [
    ('segmentation.launch.py', {}),
    ('segmentation.launch.py', {'model': 'm', 'device': 'cpu'}),
    ('multi_camera.launch.py', {}),
    ('multi_camera.launch.py', {'mode': 'one_node_per_camera', 'device': 'cpu'}),
])
def test_launch_files_remap_the_node_input_and_set_declared_parameters(
        fake_launch, name, arguments):
    nodes = fake_launch.nodes(fake_launch.run(name, **arguments))
    assert nodes
    for node in nodes:
        for key in _overrides(node):
            assert key in SPECS or key in ROS_STANDARD_PARAMETERS, key
        sources = [source for source, _ in node.kwargs['remappings']]
        assert sources
        for source in sources:
            # The node subscribes <camera>/image or <camera>/image/compressed.
            assert re.fullmatch(r'(\w+/)*image(/compressed)?', source), source


@pytest.mark.parametrize('text,expected', [
    ('[front,left,right]', ['front', 'left', 'right']),
    ('front,left,right', ['front', 'left', 'right']),
    ("['front', 'left']", ['front', 'left']),
    ('[ /front/ , rear ]', ['front', 'rear']),
    ('robot1/front rear', ['robot1/front', 'rear']),
])
def test_multi_camera_parses_camera_lists(fake_launch, text, expected):
    assert fake_launch.load('multi_camera.launch.py').parse_cameras(text) == expected


@pytest.mark.parametrize('text', ['', '[]', '[front,front]', '[1cam]', '[front-left]'])
def test_multi_camera_refuses_bad_camera_lists(fake_launch, text):
    with pytest.raises(ValueError):
        fake_launch.load('multi_camera.launch.py').parse_cameras(text)


def test_multi_camera_batched(fake_launch):
    [node] = fake_launch.nodes(fake_launch.run('multi_camera.launch.py'))
    kwargs = node.kwargs
    assert (kwargs['package'], kwargs['executable']) == (PACKAGE, 'segmentation_node')
    assert not kwargs.get('namespace')
    assert kwargs['parameters'][0] == str(ROOT / 'config' / 'multi_camera.yaml')
    overrides = _parameter_dicts(node)[-1]
    assert overrides['cameras'].value == ['front', 'left', 'right']
    assert overrides['cameras'].value_type is not list  # typing.List[str] for launch
    assert kwargs['remappings'] == [
        (f'{c}/image{t}', f'{c}/image_raw{t}')
        for c in ('front', 'left', 'right') for t in ('', '/compressed')]
    assert not kwargs.get('additional_env'), 'the camera drivers decide: off by default'


def test_multi_camera_one_node_per_camera(fake_launch):
    nodes = fake_launch.nodes(fake_launch.run(
        'multi_camera.launch.py', cameras='front,rear', mode='one_node_per_camera',
        image_suffix='image_rect', model='tiny', image_transport='compressed',
        large_image_profile='true'))
    assert [n.kwargs['namespace'] for n in nodes] == ['front', 'rear']
    profile = str(ROOT / 'config' / 'fastdds_large_images.xml')
    for node in nodes:
        assert node.kwargs['name'] == 'segmentation_node'
        assert node.kwargs['additional_env'] == {PROFILE_VARIABLE: profile}
        assert _overrides(node) == {'cameras': [''], 'model': 'tiny',
                                    'image_transport': 'compressed', 'use_sim_time': False}
        assert node.kwargs['remappings'] == [('image', 'image_rect'),
                                             ('image/compressed', 'image_rect/compressed')]


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


# --- the real node reads the files and the launch results ---------------------------------


@pytest.fixture(scope='module')
def ros_context():
    """Return an initialised rclpy context of this module's own."""
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.try_shutdown(context=context)


_counter = itertools.count()


def _node_arguments(node: Recorded, tmp_path: Path) -> list[str]:
    """Turn a launch_ros Node description into node arguments, as launch_ros does."""
    kwargs = node.kwargs
    args = ['--ros-args', '-r', f"__node:={kwargs['name']}"]
    if kwargs.get('namespace'):
        args += ['-r', f"__ns:=/{kwargs['namespace'].strip('/')}"]
    for params in kwargs['parameters']:
        if isinstance(params, dict):
            path = tmp_path / f'launch_params_{next(_counter)}.yaml'
            values = {name: _plain(value) for name, value in params.items()}
            path.write_text(yaml.dump({'/**': {'ros__parameters': values}},
                                      default_flow_style=False))
            params = str(path)
        args += ['--params-file', params]
    for source, target in kwargs.get('remappings') or []:
        args += ['-r', f'{source}:={target}']
    return args


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


def test_node_from_segmentation_launch(fake_launch, ros_context, tmp_path):
    params = tmp_path / 'file.yaml'
    params.write_text('\n'.join([
        '/**:', '  ros__parameters:', '    model: from_file', '    device: cuda',
        "    input_size: '1024'", '    image_transport: compressed', '']))
    [description] = fake_launch.nodes(fake_launch.run(
        'segmentation.launch.py', params_file=str(params), device='cpu', namespace='cam',
        image='/drivers/cam/image_raw', use_sim_time='true'))
    node = _start_node(ros_context, _node_arguments(description, tmp_path))
    try:
        assert node.get_fully_qualified_name() == '/cam/segmentation_node'
        value = {n: node.get_parameter(n).value for n in (
            'model', 'device', 'input_size', 'image_transport', 'use_sim_time')}
        # The file's model; the launch argument's device, transport and sim time.
        assert value == {'model': 'from_file', 'device': 'cpu', 'input_size': '1024',
                         'image_transport': 'raw', 'use_sim_time': True}
        assert node.resolve_topic_name('image') == '/drivers/cam/image_raw'
        assert node.resolve_topic_name('image/compressed') == '/drivers/cam/image_raw/compressed'
        assert node.resolve_topic_name('segmentation/labels') == '/cam/segmentation/labels'
    finally:
        node.destroy_node()


@pytest.mark.parametrize('mode', ['batched', 'one_node_per_camera'])
def test_nodes_from_multi_camera_launch(fake_launch, ros_context, tmp_path, mode):
    descriptions = fake_launch.nodes(fake_launch.run(
        'multi_camera.launch.py', cameras='[front,left]', mode=mode, model='m2024'))
    topics = {}
    for description in descriptions:
        node = _start_node(ros_context, _node_arguments(description, tmp_path))
        try:
            assert node.get_parameter('model').value == 'm2024'
            for camera in node.get_parameter('cameras').value:
                prefix = f'{camera}/' if camera else ''
                topics[node.resolve_topic_name(f'{prefix}image')] = node.resolve_topic_name(
                    f'{prefix}segmentation/labels')
        finally:
            node.destroy_node()
    assert len(descriptions) == (1 if mode == 'batched' else 2)
    assert topics == {'/front/image_raw': '/front/segmentation/labels',
                      '/left/image_raw': '/left/segmentation/labels'}


# --- RViz ------------------------------------------------------------------------------------


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


def test_rviz_topics_match_the_launch_defaults(fake_launch):
    displays = _image_displays(ROOT / 'rviz' / 'segmentation.rviz')
    declared = fake_launch.declared('bag_replay.launch.py')
    assert declared['image'].kwargs['default_value'] in displays
    [node] = fake_launch.nodes(fake_launch.run('segmentation.launch.py'))
    namespace = '/' + (node.kwargs.get('namespace') or '').strip('/')
    for output in ('overlay', 'color'):
        assert os.path.join(namespace, 'segmentation', output) in displays


# --- with a real ROS 2 launch install ---------------------------------------------------------


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=_ids(LAUNCH_FILES))
def test_launch_file_builds_with_real_launch(path, tmp_path):
    pytest.importorskip('launch_ros.actions')
    sources = pytest.importorskip('launch.launch_description_sources')
    import launch
    from launch.actions import OpaqueFunction
    from launch.utilities import perform_substitutions

    context = launch.LaunchContext()
    description = sources.PythonLaunchDescriptionSource(str(path)).get_launch_description(
        context)
    assert isinstance(description, launch.LaunchDescription)
    arguments = description.get_launch_arguments()
    if path.name in EXPECTED_ARGUMENTS:
        assert {a.name for a in arguments} == EXPECTED_ARGUMENTS[path.name]
    for argument in arguments:
        if argument.default_value is not None:
            context.launch_configurations[argument.name] = perform_substitutions(
                context, argument.default_value)
    if 'bag' in {a.name for a in arguments}:
        context.launch_configurations['bag'] = str(tmp_path)
    actions = []
    for entity in description.entities:
        if isinstance(entity, OpaqueFunction):
            actions += entity.execute(context) or []
    assert actions
