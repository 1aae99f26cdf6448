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
Exported graphs in the user cache, keyed by what made them (no torch: serving imports this).

A node or ``segment_bag`` with ``backend: onnxruntime`` and no ``onnx_model`` gets its graph
from :func:`cached_graph`: ``$XDG_CACHE_HOME/mask2former_ros/onnx/<key>.onnx``, where the key
hashes the checkpoint's content, the task, the frame size, input size, opset, the versions of
torch, transformers, onnx and onnxscript, and the source of the exported modules. A missing
graph is exported by ``mask2former_export`` in a child process, so the serving process never
imports torch; concurrent callers wait on a lock file and reuse the result.
"""

import fcntl
import hashlib
from importlib import metadata as importlib_metadata
import json
import os
from pathlib import Path
import subprocess
import sys
import time
from typing import Any, Callable

from mask2former_ros.core.checkpoint import ModelLoadError

# 2: graphs name their task (metadata 'task'); format 1 graphs are semantic.
FORMAT_VERSION = 2
METADATA_PREFIX = 'mask2former_ros.'
EXPORT_TIMEOUT_S = 3600.0
_VERSIONED = ('torch', 'transformers', 'onnx', 'onnxscript')
# The sources whose code goes into an exported graph (paths under core/): a change to any of
# them is a new cache key.
_EXPORTED_SOURCES = ('backends/serving_graph.py', 'postprocess/semantic.py',
                     'postprocess/grid_upsampling.py', 'postprocess/array_ops.py',
                     'backends/onnx_export.py', 'checkpoint.py', 'backends/torch_engine.py')


def cache_root() -> Path:
    """Return ``$XDG_CACHE_HOME/mask2former_ros`` (default ``~/.cache/mask2former_ros``)."""
    base = os.environ.get('XDG_CACHE_HOME') or str(Path.home() / '.cache')
    return Path(base) / 'mask2former_ros'


def package_versions() -> dict[str, str]:
    """Return the versions of the packages an export depends on, without importing them."""
    versions = {}
    for name in _VERSIONED:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = 'missing'
    return versions


def checkpoint_files(model: str) -> list[Path]:
    """Return the files that define a checkpoint (config, preprocessor, weights), sorted."""
    local = Path(model).expanduser()
    if not local.is_dir():
        local = _hub_snapshot(model)
    files = [p for p in sorted(local.iterdir()) if p.is_file() and (
        p.name in ('config.json', 'preprocessor_config.json')
        or p.suffix in ('.safetensors', '.bin') or p.name.endswith('.index.json'))]
    if not any(p.name == 'config.json' for p in files):
        raise ModelLoadError(f"checkpoint '{model}' has no config.json in {local}")
    return files


def _hub_snapshot(model: str) -> Path:
    """Return the local snapshot directory of a hub id (downloading unless offline)."""
    try:
        from huggingface_hub import snapshot_download
        offline = os.environ.get('HF_HUB_OFFLINE', '') not in ('', '0')
        return Path(snapshot_download(
            model, allow_patterns=['*.json', '*.safetensors'], local_files_only=offline))
    except Exception as exc:
        raise ModelLoadError(
            f"cannot read checkpoint '{model}' to export it ({type(exc).__name__}: "
            f'{str(exc).strip().splitlines()[0] if str(exc).strip() else ""}). Pass a local '
            'directory as model, or an exported graph as onnx_model') from exc


def checkpoint_digest(model: str) -> str:
    """Return the sha256 of a checkpoint's defining files (names and contents)."""
    digest = hashlib.sha256()
    for path in checkpoint_files(model):
        digest.update(path.name.encode() + b'\0')
        with open(path, 'rb') as stream:
            for block in iter(lambda: stream.read(1 << 20), b''):
                digest.update(block)
    return digest.hexdigest()


def cache_key(model: str, frame_size: tuple[int, int], input_size: str | int,
              opset: int, task: str = 'semantic') -> str:
    """Return the cache key of a graph: hash of checkpoint, task, sizes, versions, sources."""
    core = Path(__file__).resolve().parents[1]
    sources = hashlib.sha256(b''.join((core / name).read_bytes() for name in _EXPORTED_SOURCES))
    parts = {'format': FORMAT_VERSION, 'checkpoint': checkpoint_digest(model),
             'frame_size': list(frame_size), 'input_size': str(input_size),
             'opset': opset, 'task': task, 'versions': package_versions(),
             'sources': sources.hexdigest()}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def cached_graph(model: str, frame_size: tuple[int, int], input_size: str | int = 'checkpoint',
                 opset: int = 18, allow_pickle: bool = False,
                 log: Callable[[str], Any] = print, task: str = 'semantic') -> Path:
    """
    Return the cached graph for these settings, exporting it first if it is missing.

    ``task`` is the resolved task (semantic, panoptic or instance), never ``auto``.

    The export runs ``python -m mask2former_ros.core.backends.onnx_export`` in a child process; its
    error becomes a :class:`ModelLoadError` naming the command to reproduce it.
    """
    key = cache_key(model, frame_size, input_size, opset, task)
    folder = cache_root() / 'onnx'
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f'{key}.onnx'
    if path.is_file():
        log(f'using the cached ONNX export {path}')
        return path
    with open(folder / f'.{key}.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.is_file():
            log(f'using the cached ONNX export {path}')
            return path
        command = [sys.executable, '-m', 'mask2former_ros.core.backends.onnx_export', '--model',
                   str(model), '--size', f'{frame_size[0]}x{frame_size[1]}', '--output',
                   str(path), '--input-size', str(input_size),
                   '--opset', str(opset), '--task', task] + (
                       ['--allow-pickle'] if allow_pickle else [])
        log(f'no cached ONNX export for these settings: exporting task {task} into {path} '
            '(once; torch runs in a child process)')
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True,
                              timeout=EXPORT_TIMEOUT_S, check=False)
        if done.returncode != 0 or not path.is_file():
            lines = [line for line in done.stderr.splitlines() if 'error' in line.lower()]
            reason = lines[-1] if lines else (done.stderr.strip().splitlines() or ['?'])[-1]
            raise ModelLoadError(f'exporting the ONNX graph failed ({reason.strip()}); '
                                 f"reproduce with: {' '.join(command[2:])}")
        log(f'exported in {time.monotonic() - started:.0f} s')
    return path
