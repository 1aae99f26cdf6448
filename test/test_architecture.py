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

"""The rooms of the package and who may import whom (static: parsed imports, nothing run)."""

import ast
from pathlib import Path
import re

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'mask2former_ros'
ROS_MODULES = ('rclpy', 'sensor_msgs', 'std_msgs', 'diagnostic_msgs', 'lifecycle_msgs',
               'rcl_interfaces', 'vision_msgs', 'launch', 'launch_ros', 'ament_index_python')
# The core's rooms above its ground floor (engine_config, results, checkpoint,
# segmentation_task, cityscapes).
CORE_ROOMS = ('backends', 'postprocess', 'evaluation', 'render', 'runtime')
GROUND = 'core'
# Who may import whom (besides its own room): every arrow points down, none back up.
#   ros, offline        -> runtime, backends, postprocess, render, evaluation, ground, messages
#   runtime             -> backends, postprocess, render, ground
#   backends            -> postprocess, render, ground
#   postprocess, render -> ground (not each other)
#   evaluation          -> ground
#   messages            -> ground
#   ground              -> nothing of the package
ALL_CORE = {GROUND, *(f'core.{room}' for room in CORE_ROOMS)}
MAY_IMPORT = {
    GROUND: set(),
    'core.postprocess': {GROUND},
    'core.render': {GROUND},
    'core.evaluation': {GROUND},
    'core.backends': {GROUND, 'core.postprocess', 'core.render'},
    'core.runtime': {GROUND, 'core.backends', 'core.postprocess', 'core.render'},
    'messages': {GROUND},
    'ros': ALL_CORE | {'messages'},
    'offline': ALL_CORE | {'messages'},
    'mask2former_ros': set(),
}


def modules() -> dict[str, Path]:
    """Return dotted module name -> path of every module of the runtime package."""
    found = {}
    for path in PACKAGE.rglob('*.py'):
        parts = path.relative_to(ROOT).with_suffix('').parts
        name = '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)
        found[name] = path
    return found


def imports(path: Path) -> set[str]:
    """
    Return the absolute module names that a file imports, at any depth of the file.

    ``from package import submodule`` counts as importing the submodule only.
    """
    known = modules() if path.is_relative_to(PACKAGE) else {}
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = {f'{node.module}.{alias.name}' for alias in node.names}
            names.update(subs & set(known) or {node.module})
            names.update(subs)
    return names


def room(name: str) -> str:
    """Return the room of a module of the runtime package (``core`` is the ground floor)."""
    parts = name.split('.')
    if parts[1:2] == ['core']:
        return f'core.{parts[2]}' if len(parts) > 2 and parts[2] in CORE_ROOMS else GROUND
    return parts[1] if len(parts) > 1 else 'mask2former_ros'


def test_every_module_is_in_a_known_room():
    assert not {n: room(n) for n in modules() if room(n) not in MAY_IMPORT}


@pytest.mark.parametrize('name,path', sorted(modules().items()))
def test_imports_point_down(name, path):
    known = modules()
    mine = room(name)
    bad = sorted(i for i in imports(path) if i in known and room(i) != mine
                 and room(i) not in MAY_IMPORT[mine])
    assert not bad, f'{name} ({mine}) may import only {sorted(MAY_IMPORT[mine])}, imports {bad}'


@pytest.mark.parametrize('name,path', sorted(modules().items()))
def test_runtime_never_imports_the_fixtures(name, path):
    assert not [i for i in imports(path) if i.split('.')[0] == 'mask2former_ros_fixtures'], name


CORE = sorted((n, p) for n, p in modules().items() if n.startswith('mask2former_ros.core'))


@pytest.mark.parametrize('name,path', CORE)
def test_core_is_free_of_ros(name, path):
    bad = [i for i in imports(path) if i.split('.')[0] in ROS_MODULES]
    assert not bad, f'{name} imports {bad}'


MESSAGES = sorted((n, p) for n, p in modules().items() if room(n) == 'messages')


@pytest.mark.parametrize('name,path', MESSAGES)
def test_messages_need_no_rclpy(name, path):
    """The converters use message types and rosbags only: segment_bag runs without rclpy."""
    bad = [i for i in imports(path) if i.split('.')[0] in
           ('rclpy', 'launch', 'launch_ros', 'ament_index_python')]
    assert not bad, f'{name} imports {bad}'


# The serving path of the onnxruntime backend: none of these may import torch or transformers
# at module level (test_node_onnx and test_onnx_backend check the running processes too).
TORCH_FREE = tuple(f'mask2former_ros.{m}' for m in (
    'core.checkpoint', 'core.cityscapes', 'core.engine_config', 'core.results',
    'core.segmentation_task', 'core.backends.create', 'core.backends.onnx_cache',
    'core.backends.onnx_engine', 'core.postprocess.array_ops', 'core.postprocess.grid_upsampling',
    'core.postprocess.panoptic', 'core.postprocess.instance_tracking',
    'core.evaluation.metrics', 'core.evaluation.panoptic_quality', 'core.render.palette',
    'core.render.instance_render', 'core.runtime.frame_slot', 'core.runtime.inference_worker',
    'core.runtime.stats', 'core.runtime.large_buffers', 'messages.image_conversion',
    'messages.serialized_image', 'ros.node', 'ros.parameters', 'offline.run',
    'offline.driver', 'offline.stages'))


def top_level_imports(path: Path) -> set[str]:
    """Return the modules a file imports outside any function (what importing it loads)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize('name', TORCH_FREE)
def test_serving_modules_import_no_torch_at_load(name):
    known = modules()
    seen, todo = set(), [name]
    while todo:  # follow the package's own module-level imports
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for imported in top_level_imports(known[current]):
            assert imported.split('.')[0] not in ('torch', 'transformers'), (
                f'{name} loads {current}, which imports {imported} at module level')
            todo += [m for m in known if imported == m or imported.startswith(m + '.')]


def test_no_import_cycles():
    known = modules()
    graph = {name: {i for i in imports(path) if i in known and i != name}
             for name, path in known.items()}
    visiting, done = set(), set()

    def visit(name: str, trail: list[str]) -> None:
        if name in done:
            return
        assert name not in visiting, 'import cycle: ' + ' -> '.join(trail + [name])
        visiting.add(name)
        for dep in graph[name]:
            visit(dep, trail + [name])
        visiting.discard(name)
        done.add(name)
    for name in graph:
        visit(name, [])


def test_modules_stay_small():
    long = {str(p.relative_to(ROOT)): len(p.read_text().splitlines())
            for p in PACKAGE.rglob('*.py')}
    over = {k: v for k, v in long.items() if v > 400}
    assert not over, over


PACKAGES = sorted(p.relative_to(ROOT).as_posix() for p in
                  [*PACKAGE.rglob('__init__.py'), ROOT / 'mask2former_ros_fixtures/__init__.py'])


@pytest.mark.parametrize('path', PACKAGES)
def test_each_package_says_what_it_is_and_who_may_import_it(path):
    """The first statement after the licence header is the room's docstring."""
    tree = ast.parse((ROOT / path).read_text())
    doc = ast.get_docstring(tree)
    assert tree.body and isinstance(tree.body[0], ast.Expr) and doc, path
    summary, _, body = doc.partition('\n\n')
    assert '\n' not in summary and summary.endswith('.'), path
    assert body and '\n\n' not in body, f'{path}: one paragraph after the summary line'
    assert 'may import' in body and 'docs/architecture.md' in body, path


def listed_modules(doc: str) -> set[str]:
    """
    Return the names a package docstring lists after ``Modules:`` and ``Rooms:``.

    A list runs to the end of its sentence; names are ````name```` or ``:mod:`.name```, and
    text in parentheses (what a module does) is left out.
    """
    names = set()
    for head in ('Modules:', 'Rooms:'):
        if head in doc:
            sentence = re.split(r'\.\s+(?=[A-Z])', doc.split(head, 1)[1], maxsplit=1)[0]
            sentence = re.sub(r'\([^()]*\)', '', sentence.replace('\n', ' '))
            names |= {a or b for a, b in re.findall(r'``(\w+)``|:mod:`\.(\w+)`', sentence)}
    return names


@pytest.mark.parametrize('path', PACKAGES)
def test_each_package_lists_its_modules(path):
    folder = (ROOT / path).parent
    present = {p.stem for p in folder.glob('*.py') if p.stem != '__init__'} | {
        p.parent.name for p in folder.glob('*/__init__.py')}
    listed = listed_modules(ast.get_docstring(ast.parse((ROOT / path).read_text())))
    assert listed == present, (f'{path}: listed but missing {sorted(listed - present)}, '
                               f'present but not listed {sorted(present - listed)}')


def test_the_architecture_diagram_draws_this_table():
    """docs/architecture.md's diagram has an arrow for each room this test lets import another."""
    text = (ROOT / 'docs' / 'architecture.md').read_text()
    diagram = text.split('```mermaid', 1)[1].split('```', 1)[0]
    names = {'ground': GROUND, 'messages': 'messages', 'ros': 'ros', 'offline': 'offline',
             **{room: f'core.{room}' for room in CORE_ROOMS}}
    drawn: dict[str, set[str]] = {}
    for line in diagram.splitlines():
        if '-->' in line:
            source, targets = (part.strip() for part in line.split('-->'))
            if source != 'fixtures':
                drawn.setdefault(names[source], set()).update(
                    names[t.strip()] for t in targets.split('&'))
    assert drawn == {room: allowed for room, allowed in MAY_IMPORT.items() if allowed}
