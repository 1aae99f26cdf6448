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
The model forward of the torch engine, eager or compiled by ``torch.compile`` (no ROS).

:class:`ModelForward` runs Mask2Former under autocast and returns the two tensors the
post-processing reads. With a compile mode it compiles the forward with Inductor for static
shapes (``dynamic=False``, ``fullgraph=True``: a graph break is a compile failure, so CUDA graphs
capture the whole forward), once per model input shape, and at most
:data:`MAX_COMPILED_SHAPES` shapes: a further shape runs eager and says so once, so frames of
alternating sizes never recompile in a loop. Compilation never ends serving: any failure (no
C++ compiler, an operator Inductor rejects, out of memory while autotuning) is one warning and
eager serving from then on; :attr:`ModelForward.status` says ``off (failed: ...)``.

Inductor's and Triton's caches live in ``$XDG_CACHE_HOME/mask2former_ros/torch_compile`` (unless
``TORCHINDUCTOR_CACHE_DIR`` / ``TRITON_CACHE_DIR`` are set), so a restart with the same model,
precision and shapes reuses the compiled code.
"""

import os
from pathlib import Path
import time
from typing import Callable

from mask2former_ros.core.backends.onnx_cache import cache_root
from mask2former_ros.core.checkpoint import first_line
from mask2former_ros.core.engine_config import parse_compile
import torch

MAX_COMPILED_SHAPES = 4
CUDA_GRAPH_MODES = ('reduce-overhead', 'max-autotune')
# CUDA graph trees run a new shape eagerly once, record it on the second call and replay from
# the third on: a shape is warm after three calls.
CALLS_TO_WARM = 3
# Dynamo's own limit of compiled variants per code object (8 by default) counts the variants of
# every engine of the process; ours counts per engine, so the process-wide one is raised.
RECOMPILE_LIMIT = 64


def resolve_compile(setting: str, device: torch.device) -> str:
    """Return the mode for ``device``: ``auto`` is off on the CPU, reduce-overhead on CUDA."""
    mode = parse_compile(setting)
    if mode == 'auto':
        return 'reduce-overhead' if device.type == 'cuda' else 'off'
    return mode


def compile_cache_dir() -> Path:
    """
    Point Inductor's and Triton's caches into the user cache; return Inductor's directory.

    A ``TORCHINDUCTOR_CACHE_DIR`` or ``TRITON_CACHE_DIR`` of the user's is kept. Importing
    ``torch._dynamo`` sets the former to torch's default (under /tmp, lost on reboot): that one
    is replaced. Call before the first compilation of the process.
    """
    root = cache_root() / 'torch_compile'
    if os.environ.get('TORCHINDUCTOR_CACHE_DIR') in (None, _torch_default_cache_dir()):
        os.environ['TORCHINDUCTOR_CACHE_DIR'] = str(root / 'inductor')
    os.environ.setdefault('TRITON_CACHE_DIR', str(root / 'triton'))
    return Path(os.environ['TORCHINDUCTOR_CACHE_DIR'])


def _torch_default_cache_dir() -> str | None:
    try:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    except ImportError:
        return None
    return os.path.abspath(default_cache_dir())


def _raise_recompile_limit() -> None:
    config = torch._dynamo.config
    name = 'recompile_limit' if hasattr(config, 'recompile_limit') else 'cache_size_limit'
    setattr(config, name, max(getattr(config, name), RECOMPILE_LIMIT))


def _check_cpp_compiler() -> None:
    """Raise now, not minutes into lowering, when Inductor has no C++ compiler for the CPU."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
    except ImportError:  # another torch layout: the compilation itself will say it
        return
    get_cpp_compiler()


class ModelForward:
    """
    Mask2Former's forward under autocast: pixel values in, (class logits, mask logits) out.

    ``mode`` is ``off`` (eager) or a ``torch.compile`` mode. All calls must come from the thread
    that owns the model (CUDA graph trees are per thread).
    """

    def __init__(self, model: torch.nn.Module, device: torch.device, dtype: torch.dtype,
                 mode: str, log: Callable[[str], None],
                 warn: Callable[[str], None] | None = None,
                 max_shapes: int = MAX_COMPILED_SHAPES) -> None:
        """Wrap ``model``; with a compile mode, prepare compilation (it happens on first use)."""
        self.model = model
        self.max_shapes = max_shapes
        self.device = device
        self.dtype = dtype
        self.mode = mode
        self.failure = ''  # why compilation was given up
        self.compile_seconds = 0.0  # spent compiling and warming up, all shapes
        self.shapes: list[tuple[int, ...]] = []  # compiled input shapes
        self._eager_shapes: set[tuple[int, ...]] = set()  # over the limit: said once each
        self._log = log
        self._warn = warn or log
        self._compiled: Callable | None = None
        self.cache_dir: Path | None = None  # Inductor's, when compiling
        if mode == 'off':
            return
        self.cache_dir = compile_cache_dir()
        try:
            _raise_recompile_limit()
            if device.type == 'cpu':
                _check_cpp_compiler()
            self._compiled = torch.compile(self.eager, mode=mode, dynamic=False, fullgraph=True)
        except Exception as exc:  # noqa: BLE001 - never a dead engine: eager serving
            self._fail(exc)

    @property
    def active(self) -> bool:
        """Return True while frames go through compiled code."""
        return self._compiled is not None

    @property
    def status(self) -> str:
        """Return ``off``, the compile mode, or ``off (failed: <reason>)``."""
        return f'off (failed: {self.failure})' if self.failure else self.mode

    def covers(self, shape: tuple[int, ...]) -> bool:
        """Return True if ``shape`` runs without compiling (eager, or compiled already)."""
        return not self.active or tuple(shape) in self.shapes

    def eager(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the model forward in the engine's precision (fp32: no autocast)."""
        with torch.autocast(self.device.type, dtype=self.dtype,
                            enabled=self.dtype != torch.float32):
            outputs = self.model(pixel_values=pixel_values)
        return outputs.class_queries_logits, outputs.masks_queries_logits

    def prepare(self, shape: tuple[int, ...]) -> None:
        """Compile and warm up for input ``shape`` now (at configure), unless covered."""
        if not self.covers(shape):
            with torch.inference_mode():
                self(torch.zeros(shape, device=self.device))

    def __call__(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the forward: compiled where it is (compiling a new shape once), else eager."""
        compiled = self._compiled
        if compiled is None:
            return self.eager(pixel_values)
        # Static shapes guard the strides too: a channels-last batch would compile again.
        pixel_values = pixel_values.contiguous()
        shape = tuple(pixel_values.shape)
        if shape in self.shapes:
            self._step()
            return compiled(pixel_values)
        if len(self.shapes) >= self.max_shapes:
            if shape not in self._eager_shapes:
                self._eager_shapes.add(shape)
                self._warn(f'compile={self.mode}: {self.max_shapes} input shapes compiled '
                           f'already ({_shapes(self.shapes)}); input {_shape(shape)} runs eager')
            return self.eager(pixel_values)
        return self._compile(compiled, pixel_values)

    def _compile(self, compiled: Callable,
                 pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = tuple(pixel_values.shape)
        graphs = self.mode in CUDA_GRAPH_MODES and self.device.type == 'cuda'
        skips = _cudagraph_skips() if graphs else 0
        self._log(f'compile={self.mode}: compiling the model forward for input {_shape(shape)} '
                  f'(shape {len(self.shapes) + 1} of at most {self.max_shapes}; cache '
                  f'{self.cache_dir})')
        started = time.perf_counter()
        try:
            for _ in range(CALLS_TO_WARM if self.mode in CUDA_GRAPH_MODES else 1):
                self._step()
                outputs = compiled(pixel_values)
        except Exception as exc:  # noqa: BLE001 - includes out of memory while autotuning
            self._fail(exc)
            return self.eager(pixel_values)
        seconds = time.perf_counter() - started
        self.compile_seconds += seconds
        self.shapes.append(shape)
        self._log(f'compile={self.mode}: input {_shape(shape)} compiled and warm in '
                  f'{seconds:.1f} s')
        if graphs and _cudagraph_skips() > skips:
            self._warn(f'compile={self.mode}: no CUDA graph for input {_shape(shape)}: the '
                       'compiled kernels run without one (TORCH_LOGS=perf_hints says why)')
        return outputs

    def _step(self) -> None:
        """Tell CUDA graph trees that a new inference begins (the last outputs are consumed)."""
        if self.mode in CUDA_GRAPH_MODES and self.device.type == 'cuda':
            torch.compiler.cudagraph_mark_step_begin()

    def _fail(self, exc: BaseException) -> None:
        self.failure = f'{type(exc).__name__}: {first_line(exc)}'[:300]
        self._compiled = None
        if isinstance(exc, torch.OutOfMemoryError) and self.device.type == 'cuda':
            torch.cuda.empty_cache()
        self._warn(f'compile={self.mode} failed, the model runs eager: {self.failure}')


def _cudagraph_skips() -> int:
    """Return how often Inductor declined a CUDA graph in this process (0 if unknown)."""
    try:
        from torch._dynamo.utils import counters
    except ImportError:
        return 0
    return int(counters['inductor'].get('cudagraph_skips', 0))


def _shape(shape: tuple[int, ...]) -> str:
    return 'x'.join(str(n) for n in shape)


def _shapes(shapes: list[tuple[int, ...]]) -> str:
    return ', '.join(_shape(s) for s in shapes)
