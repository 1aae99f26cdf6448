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
Section e) of gpu_check: the torch engine compiled by Inductor, with CUDA graphs, on the GPU.

Rows, most important first (:data:`ORDER`): Swin-L (random weights) at native 1024x2048 input
in bf16 eager and compiled with CUDA graphs (``reduce-overhead``: the cold configure), the tiny
model's labels with CUDA graphs against eager fp32 at three frame sizes, the restart of the
Swin-L row on the filled cache (warm configure), the inference worker (newest frame wins, no
ROS) fed at 30 Hz against the engine alone, then Swin-L compiled without CUDA graphs, the other
tiny modes, Swin-L fp32 eager and the rows at 384x384 input.

Every row runs in a child process (``gpu_check.py --child SPEC``) in its own session: a CUDA
error or a hung compile costs that row only. A row runs only if its estimate fits in the time
budget left, and is killed when the budget runs out; the estimates come from the first row of
each kind measured in the run. Inductor's cache is a fresh folder of this run (cold), shared
by its rows.
"""

import json
import os
from pathlib import Path
import signal
import statistics
import subprocess
import sys
import threading
import time
from typing import Any, Callable

SWIN = {  # name: (input_size, precision, compile)
    'native bf16 eager': ('native', 'bf16', 'off'),
    'native bf16 compiled + CUDA graphs': ('native', 'bf16', 'reduce-overhead'),
    'native bf16 compiled': ('native', 'bf16', 'default'),
    'native fp32 eager': ('native', 'fp32', 'off'),
    'input 384x384 fp32 eager': ('checkpoint', 'fp32', 'off'),
    'input 384x384 bf16 eager': ('checkpoint', 'bf16', 'off'),
    'input 384x384 bf16 compiled': ('checkpoint', 'bf16', 'default'),
    'input 384x384 bf16 compiled + CUDA graphs': ('checkpoint', 'bf16', 'reduce-overhead'),
}
# Rows in the order they run (most important first): ('swin', name), ('tiny', mode, precision),
# ('warm',) the cold CUDA-graph row's restart on the filled cache, ('worker',).
ORDER = (('swin', 'native bf16 eager'), ('swin', 'native bf16 compiled + CUDA graphs'),
         ('tiny', 'reduce-overhead', 'bf16'), ('warm',), ('worker',),
         ('swin', 'native bf16 compiled'), ('tiny', 'default', 'bf16'),
         ('tiny', 'reduce-overhead', 'fp32'), ('swin', 'native fp32 eager'),
         ('swin', 'input 384x384 bf16 eager'),
         ('swin', 'input 384x384 bf16 compiled + CUDA graphs'),
         ('swin', 'input 384x384 fp32 eager'), ('swin', 'input 384x384 bf16 compiled'),
         ('tiny', 'max-autotune', 'bf16'))
TINY_SIZES = ((120, 200), (333, 517), (1024, 2048))
# Seconds, until measured in the run: a child that loads Swin-L and times it eager, the first
# compile of Swin-L (minutes, by Inductor's reports for large models) and of the tiny model.
EAGER_ESTIMATE = 45.0
SWIN_COMPILE_ESTIMATE = 240.0
TINY_COMPILE_ESTIMATE = 60.0
WORKER_SECONDS = 10.0
Row = dict[str, Any]


class Budget:
    """Seconds left of the run, and the estimates of rows learnt while it runs."""

    def __init__(self, seconds: float) -> None:
        """Start the clock."""
        self.deadline = time.monotonic() + seconds
        self.eager = EAGER_ESTIMATE  # a Swin-L child without compiling
        self.swin_compile = SWIN_COMPILE_ESTIMATE  # a first compile of Swin-L, cold
        self.swin_warm: float | None = None  # the restart on the filled cache
        self.tiny = EAGER_ESTIMATE / 2 + TINY_COMPILE_ESTIMATE  # a tiny agreement child

    def left(self) -> float:
        """Return the seconds left."""
        return self.deadline - time.monotonic()


def run_child(spec: dict, estimate: float, budget: Budget, script: Path) -> Row:
    """Run one row in a child process; skip it if ``estimate`` does not fit the budget."""
    left = budget.left()
    if estimate > left:
        return {'skipped': f'time budget: needs ~{estimate:.0f} s, {max(left, 0):.0f} s left'}
    child = subprocess.Popen([sys.executable, str(script), '--child', json.dumps(spec)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    started = time.monotonic()
    try:
        out, err = child.communicate(timeout=left)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)  # with Inductor's compile workers
        child.communicate()
        return {'skipped': f'killed at the time budget after {left:.0f} s'}
    rows = [line[4:] for line in out.splitlines() if line.startswith('ROW ')]
    if child.returncode != 0 or not rows:
        tail = [line for line in err.strip().splitlines() if line.strip()][-1:] or ['?']
        return {'skipped': f'child failed ({child.returncode}): {tail[0][:250]}'}
    row = json.loads(rows[-1])
    row['wall_s'] = time.monotonic() - started
    return row


def section_e(rows: list, tiny: str, swin: Callable[[], str], cuda: bool, quick: bool,
              frames: Path, budget: Budget, script: Path, cache: Path,
              device: str = 'cuda') -> None:
    """
    Measure e) into ``rows`` (name, row), in :data:`ORDER`, within ``budget``.

    ``device`` 'cpu' with ``cuda`` True is the dry run of the GPU path on the CPU (gpu_check's
    ``--dry-run-cpu``: ``swin`` then gives the tiny model).
    """
    base = {'frames': str(frames), 'cache': str(cache)}
    if not cuda:
        for job in ORDER:
            if job[0] != 'worker':
                rows.append((_name(job), {'skipped': 'no CUDA device'}))
        # The worker row runs on the CPU too (eager, tiny model): the same code path.
        rows.append(('e) worker at 30 Hz, tiny cpu eager', run_child(
            {**base, 'kind': 'worker', 'model': tiny, 'device': 'cpu', 'input_size': 'checkpoint',
             'precision': 'fp32', 'compile': 'off', 'seconds': 2.0 if quick else WORKER_SECONDS},
            budget.eager, budget, script)))
        return
    swin_dir = swin()
    cold: Row = {}
    for job in ORDER:
        if job[0] == 'swin':
            input_size, precision, mode = SWIN[job[1]]
            spec = {'kind': 'engine', 'model': swin_dir, 'input_size': input_size,
                    'precision': precision, 'compile': mode}
            estimate = budget.eager + (0.0 if mode == 'off' else budget.swin_compile)
        elif job[0] == 'tiny':
            spec = {'kind': 'agreement', 'model': tiny, 'compile': job[1], 'precision': job[2]}
            estimate = budget.tiny
        elif job[0] == 'warm':
            spec = {'kind': 'engine', 'model': swin_dir, 'input_size': 'native',
                    'precision': 'bf16', 'compile': 'reduce-overhead'}
            estimate = budget.eager + 0.5 * cold.get('configure_s', budget.swin_compile)
        else:
            spec = {'kind': 'worker', 'model': swin_dir, 'input_size': 'native',
                    'precision': 'bf16', 'compile': 'reduce-overhead', 'seconds': WORKER_SECONDS}
            estimate = budget.eager + WORKER_SECONDS + (budget.swin_warm or budget.swin_compile)
        row = run_child({**base, 'device': device, **spec}, estimate, budget, script)
        rows.append((_name(job), row))
        _learn(budget, job, spec, row)
        if job == ORDER[1]:
            cold = row


def _name(job: tuple) -> str:
    if job[0] == 'swin':
        return f'e) Swin-L {job[1]}'
    if job[0] == 'tiny':
        return f'e) tiny cuda {job[1]} {job[2]} vs eager fp32'
    if job[0] == 'warm':
        return 'e) Swin-L native bf16 compiled + CUDA graphs, restart on the warm cache'
    return 'e) worker at 30 Hz, Swin-L native bf16 compiled + CUDA graphs'


def _learn(budget: Budget, job: tuple, spec: dict, row: Row) -> None:
    """Replace the estimates by what the first row of a kind took."""
    if 'wall_s' not in row:
        return
    if job[0] == 'swin' and spec['compile'] == 'off' and budget.eager == EAGER_ESTIMATE:
        budget.eager = row['wall_s'] * 1.2
    elif job[0] == 'swin' and budget.swin_compile == SWIN_COMPILE_ESTIMATE:
        budget.swin_compile = max(row['wall_s'] - budget.eager, 10.0) * 1.2
    elif job[0] == 'tiny':
        budget.tiny = row['wall_s'] * 1.2
    elif job[0] == 'warm':
        budget.swin_warm = row['wall_s']


# --- the child process ----------------------------------------------------------------------

def child_main(spec: dict) -> int:
    """Run one row as ``spec`` says and print it as ``ROW <json>``."""
    os.environ['XDG_CACHE_HOME'] = spec['cache']
    for name in ('TORCHINDUCTOR_CACHE_DIR', 'TRITON_CACHE_DIR'):
        os.environ.pop(name, None)  # the engine puts them under XDG_CACHE_HOME
    kind = spec['kind']
    row = {'engine': engine_row, 'agreement': agreement_row, 'worker': worker_row}[kind](spec)
    print('ROW ' + json.dumps(row), flush=True)
    return 0


def _config(spec: dict, frame: tuple[int, int] = (1024, 2048), **overrides: Any) -> Any:
    from mask2former_ros.core.engine_config import EngineConfig
    return EngineConfig(**{'model': spec['model'], 'device': spec['device'],
                           'precision': spec['precision'],
                           'input_size': spec.get('input_size', 'checkpoint'),
                           'compile': spec['compile'], 'frame_size': f'{frame[0]}x{frame[1]}',
                           **overrides})


def _cudagraph_skips(device: str) -> int:
    """Return how often Inductor declined a CUDA graph in this process (CPU: never counted)."""
    from mask2former_ros.core.backends.torch_compile import _cudagraph_skips as skips
    return 0 if device == 'cpu' else skips()


def engine_row(spec: dict) -> Row:
    """Configure (compile) one engine and time it at 1024x2048: frames/s, ms per stage."""
    from gpu_check import timed
    from mask2former_ros.core.backends.torch_engine import SegmentationEngine
    import numpy as np
    import torch
    warnings: list[str] = []
    started = time.perf_counter()
    engine = SegmentationEngine(_config(spec), warn=warnings.append)
    configure = time.perf_counter() - started
    row = timed(engine, list(np.load(spec['frames'])))
    del row['labels']
    if torch.cuda.is_available():
        row['peak_gpu_mb'] = torch.cuda.max_memory_allocated() / 2**20
    return {**row, 'configure_s': configure, 'compile_s': engine.compile_seconds,
            'status': engine.compile_status, 'cudagraph_skips': _cudagraph_skips(spec['device']),
            'warnings': warnings[-2:]}


def agreement_row(spec: dict) -> Row:
    """Share of the tiny model's labels equal to eager fp32's, at three frame sizes."""
    from gpu_check import agreement, scenes
    from mask2former_ros.core.backends.torch_engine import SegmentationEngine
    frames = [f for size in TINY_SIZES for f in scenes(2, size)]
    reference = SegmentationEngine(_config(spec, precision='fp32', compile='off'))
    expected = [reference.segment(f).labels for f in frames]
    reference.close()
    started = time.perf_counter()
    engine = SegmentationEngine(_config(spec, frame=TINY_SIZES[0]))
    configure = time.perf_counter() - started
    compiled = engine.compile_seconds
    labels = [engine.segment(f).labels for f in frames]
    return {'agreement': agreement(expected, labels), 'configure_s': configure,
            'status': engine.compile_status, 'cudagraph_skips': _cudagraph_skips(spec['device']),
            'compiled_on_data_path_s': engine.compile_seconds - compiled}


def worker_row(spec: dict) -> Row:
    """Feed the inference worker at 30 Hz (newest frame wins); compare with the engine alone."""
    from frame_timing import segment_timed
    from mask2former_ros.core.runtime.frame_slot import LatestFrameSlots
    from mask2former_ros.core.runtime.inference_worker import InferenceWorker
    import numpy as np
    frames = list(np.load(spec['frames']))
    worker = InferenceWorker(name='inference')
    started = time.perf_counter()
    engine = worker.start(_config(spec))
    configure = time.perf_counter() - started
    alone_fps, stages, _ = worker.call(lambda: segment_timed(engine, frames))
    slots: LatestFrameSlots = LatestFrameSlots()
    done: list[float] = []
    latency: list[float] = []

    def process(engine: Any, items: dict) -> None:
        for sent, frame in items.values():
            engine.segment(frame)
            done.append(time.monotonic())
            latency.append((done[-1] - sent) * 1e3)
    worker.serve(lambda timeout: slots.take(timeout), process)
    stop = threading.Event()

    def feed() -> None:
        period, index, next_at = 1 / 30, 0, time.monotonic()
        while not stop.is_set():
            slots.put('camera', (time.monotonic(), frames[index % len(frames)]))
            index += 1
            next_at += period
            stop.wait(max(next_at - time.monotonic(), 0.0))
    feeder = threading.Thread(target=feed, daemon=True)
    begin = time.monotonic()
    feeder.start()
    time.sleep(spec['seconds'])
    stop.set()
    feeder.join()
    worker.serve(None)
    counters = slots.counters()['camera']
    span = time.monotonic() - begin
    status = engine.compile_status
    worker.stop()
    return {'fps': len(done) / span, 'alone_fps': alone_fps,
            'model_ms': statistics.median(stages['model']), 'input_hz': counters.received / span,
            'dropped': counters.dropped, 'latency_p50_ms': statistics.median(latency or [0.0]),
            'configure_s': configure, 'status': status, 'worker_death': worker.death or ''}


def print_compile_table(rows: list) -> None:
    """Print section e) rows: speed, configure time, compile status, agreement."""
    section = [(name, row) for name, row in rows if name.startswith('e)')]
    if not section:
        return
    print('\n| e) compiled torch | frames/s | model ms | pre+post ms | configure s | status | '
          'labels equal | note |')
    print('|---|---|---|---|---|---|---|---|')
    for name, row in section:
        pre_post = (row['preprocess_ms'] + row['postprocess_ms']
                    if 'preprocess_ms' in row else None)
        note = row.get('skipped') or row.get('note', '')
        if 'alone_fps' in row:
            note = (f"engine alone {row['alone_fps']:.1f} frames/s; input "
                    f"{row['input_hz']:.1f} Hz, {row['dropped']} dropped, latency p50 "
                    f"{row['latency_p50_ms']:.0f} ms {row['worker_death']}")
        if row.get('cudagraph_skips'):
            note += f" CUDA graphs skipped {row['cudagraph_skips']}x"
        cells = [format(row['fps'], '.2f') if 'fps' in row else '',
                 format(row['model_ms'], '.2f') if 'model_ms' in row else '',
                 format(pre_post, '.2f') if pre_post is not None else '',
                 format(row['configure_s'], '.1f') if 'configure_s' in row else '',
                 row.get('status', ''),
                 format(row['agreement'], '.4%') if 'agreement' in row else '', note]
        print(f"| {name} | {' | '.join(cells)} |")
