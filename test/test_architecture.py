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

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'mask2former_ros'
ROS_MODULES = ('rclpy', 'sensor_msgs', 'std_msgs', 'diagnostic_msgs', 'lifecycle_msgs',
               'rcl_interfaces', 'vision_msgs', 'launch', 'launch_ros', 'ament_index_python')
# Modules allowed above ~400 lines, with the reason (the README's Architecture section says it).
LONG_MODULES = {'mask2former_ros/ros/image_conversion.py': 'one table-driven decoder per '
                'sensor_msgs encoding family'}


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


@pytest.mark.parametrize('name,path', sorted(modules().items()))
def test_runtime_never_imports_the_fixtures(name, path):
    assert not [i for i in imports(path) if i.split('.')[0] == 'mask2former_ros_fixtures'], name


CORE = sorted((n, p) for n, p in modules().items() if n.startswith('mask2former_ros.core'))


@pytest.mark.parametrize('name,path', CORE)
def test_core_is_free_of_ros(name, path):
    bad = [i for i in imports(path) if i.split('.')[0] in ROS_MODULES
           or i.startswith(('mask2former_ros.ros', 'mask2former_ros.offline'))]
    assert not bad, f'{name} imports {bad}'


# The serving path of the onnxruntime backend: none of these may import torch or transformers
# at module level (test_node_onnx and test_onnx_backend check the running processes too).
TORCH_FREE = ('mask2former_ros.core.array_ops', 'mask2former_ros.core.backends',
              'mask2former_ros.core.checkpoint', 'mask2former_ros.core.engine_config',
              'mask2former_ros.core.grid_upsampling', 'mask2former_ros.core.inference_worker',
              'mask2former_ros.core.onnx_cache', 'mask2former_ros.core.onnx_engine',
              'mask2former_ros.core.panoptic_postprocess',
              'mask2former_ros.core.panoptic_quality', 'mask2former_ros.core.results',
              'mask2former_ros.core.segmentation_task',
              'mask2former_ros.ros.node', 'mask2former_ros.ros.parameters',
              'mask2former_ros.offline.run',
              'mask2former_ros.offline.driver', 'mask2former_ros.offline.stages')


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
    over = {k: v for k, v in long.items() if v > 400 and k not in LONG_MODULES}
    assert not over, over


PACKAGES = sorted(p.relative_to(ROOT).as_posix() for p in
                  [*PACKAGE.rglob('__init__.py'), ROOT / 'mask2former_ros_fixtures/__init__.py'])


@pytest.mark.parametrize('path', PACKAGES)
def test_each_package_says_what_it_is_and_who_may_import_it(path):
    """The first statement after the licence header is the room's docstring (README table)."""
    tree = ast.parse((ROOT / path).read_text())
    doc = ast.get_docstring(tree)
    assert tree.body and isinstance(tree.body[0], ast.Expr) and doc, path
    summary, _, body = doc.partition('\n\n')
    assert '\n' not in summary and summary.endswith('.'), path
    assert body and '\n\n' not in body, f'{path}: one paragraph after the summary line'
    assert 'may import' in body and 'Architecture' in body, path
