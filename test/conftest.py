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

"""Shared fixtures: DDS isolation, offline hub, random and trained tiny checkpoints."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
import fcntl
import hashlib
import os
from pathlib import Path
import random

import pytest

# Isolate DDS traffic of this test run (also inherited by node subprocesses) and never touch
# the network for model weights.
# Under pytest-xdist (scripts/test.sh runs two workers) each worker is a process of its own.
WORKER = os.environ.get('PYTEST_XDIST_WORKER')  # 'gw0', 'gw1', ...; None without xdist
WORKERS = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))


def _domain_id() -> str:
    """Return a DDS domain of this run: random, and another one for each xdist worker."""
    if 'MASK2FORMER_TEST_DOMAIN_ID' in os.environ:
        return os.environ['MASK2FORMER_TEST_DOMAIN_ID']
    if WORKER is None:
        return str(random.SystemRandom().randint(1, 100))
    run = int(hashlib.sha256(os.environ.get('PYTEST_XDIST_TESTRUNUID', '').encode())
              .hexdigest(), 16)
    return str(1 + (run % (101 - WORKERS) + int(WORKER[2:])) % 101)


os.environ['ROS_DOMAIN_ID'] = _domain_id()
if WORKER is not None:
    # Workers share the cores: torch's (and its node processes') OpenMP pool takes its share,
    # since oversubscribed OpenMP threads spin and stall each other.
    os.environ.setdefault('OMP_NUM_THREADS', str(max(1, (os.cpu_count() or 1) // WORKERS)))
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ['HF_HUB_OFFLINE'] = '1'
os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
# The shipped Fast DDS profile (shared memory sized for whole frames, loopback discovery) is
# what docs/node.md recommends for large images; tests that need the defaults drop it.
LARGE_IMAGE_PROFILE = Path(__file__).resolve().parents[1] / 'config' / 'fastdds_large_images.xml'
os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(LARGE_IMAGE_PROFILE)


@pytest.fixture(scope='session')
def random_checkpoint(tmp_path_factory) -> Path:
    """Return a directory with a random-weight tiny Mask2Former (19 Cityscapes classes)."""
    from mask2former_ros_fixtures.model_factory import save_random_checkpoint
    return save_random_checkpoint(tmp_path_factory.mktemp('random_ckpt'))


@pytest.fixture(scope='session')
def tiny_model_dir() -> Path:
    """Return the tiny Mask2Former trained on synthetic street scenes (shipped in the repo)."""
    from mask2former_ros_fixtures.tiny_model import ensure_tiny_model
    return ensure_tiny_model()


@pytest.fixture(scope='session')
def tiny_panoptic_model_dir() -> Path:
    """Return the tiny panoptic Mask2Former (cars and persons as instances; shipped)."""
    from mask2former_ros_fixtures.tiny_model import ensure_tiny_panoptic_model
    return ensure_tiny_panoptic_model()


def retask_graph(graph: Path, task: str, output: Path) -> Path:
    """Write a copy of an exported graph whose metadata names another task (or none: None)."""
    from mask2former_ros.core.backends.onnx_cache import METADATA_PREFIX
    import onnx
    proto = onnx.load(str(graph))
    entries = [(p.key, p.value) for p in proto.metadata_props if p.key != METADATA_PREFIX + 'task']
    del proto.metadata_props[:]
    for key, value in entries + ([(METADATA_PREFIX + 'task', task)] if task else []):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(output))
    return output


def run_folder(tmp_path_factory, name: str) -> Path:
    """Return a folder of this test run that all its xdist workers share."""
    root = tmp_path_factory.getbasetemp()
    folder = (root.parent if WORKER is not None else root) / name
    folder.mkdir(exist_ok=True)
    return folder


@contextmanager
def run_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path``'s lock file (the workers of a run share it)."""
    with open(f'{path}.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def made_once(path: Path, make: Callable[[Path], object]) -> Path:
    """
    Return ``path``, made by ``make(partial)`` unless a worker of this run made it.

    ``make`` writes a temporary name that is renamed to ``path`` when complete, so ``path``
    is whole or absent, also after a killed run.
    """
    with run_lock(path):
        if not path.is_file():
            partial = path.with_suffix('.partial' + path.suffix)
            make(partial)
            partial.rename(path)
    return path


def exported_once(model: Path, size: tuple[int, int], path: Path) -> Path:
    """Export ``model`` for frames of ``size`` to ``path`` unless a worker of this run did."""
    from mask2former_ros.core.backends.onnx_export import export_graph
    return made_once(path, lambda partial: export_graph(
        str(model), (int(size[0]), int(size[1])), partial, log=lambda _message: None))


@pytest.fixture(scope='session')
def panoptic_graph(tiny_panoptic_model_dir, tmp_path_factory):
    """
    Return ``graph(size, task='panoptic')``: the tiny panoptic model's exported graph.

    Exported once per frame size for the whole session (an export takes about a minute
    here) and shared by the test modules. A ``--task instance`` export writes the same graph
    with another metadata task (test_onnx_backend checks that against a real one), so the
    instance graph of a size is the panoptic one with that key rewritten.
    """
    folder = run_folder(tmp_path_factory, 'panoptic_graphs')

    def graph(size: tuple[int, int], task: str = 'panoptic') -> Path:
        path = folder / f'{task}_{size[0]}x{size[1]}.onnx'
        if task == 'panoptic':
            return exported_once(tiny_panoptic_model_dir, size, path)
        return made_once(path, lambda partial: retask_graph(graph(size), task, partial))
    return graph


@pytest.fixture(scope='session')
def tiny_onnx_graph(tiny_model_dir, tmp_path_factory) -> Callable[[tuple[int, int]], Path]:
    """
    Return ``graph(size)``: the trained tiny model exported for frames of ``size``, once a run.

    An export takes 15-25 s of both cores; every test that only needs a graph of the tiny
    model (not the export itself or the export cache) shares these.
    """
    folder = run_folder(tmp_path_factory, 'tiny_onnx')

    def graph(size: tuple[int, int]) -> Path:
        return exported_once(tiny_model_dir, size, folder / f'tiny_{size[0]}x{size[1]}.onnx')
    return graph


@pytest.fixture(scope='module')
def peer(request):
    """Return a RosPeer, with its own node and executor thread, for the tests of a module."""
    from mask2former_ros_fixtures.ros_harness import RosPeer
    p = RosPeer(f"{request.module.__name__.rpartition('.')[2]}_peer")
    yield p
    p.close()
