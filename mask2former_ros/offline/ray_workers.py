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
Ray scale-out: N actors, each loading the model once and segmenting whole bags.

Imported only for ``--workers N`` with N > 1. A bag whose actor dies (e.g. the process is
killed) is retried once on a new actor; its outputs are written under temporary names, so the
dead attempt leaves nothing that looks complete.
"""

from collections import deque
import contextlib
from dataclasses import replace
import os
import sys
import time
from typing import Any, Callable

from mask2former_ros.core.runtime.large_buffers import keep_large_buffers
from mask2former_ros.offline.errors import EXIT_FAILURE, one_line, PROG, SegmentBagError
from mask2former_ros.offline.fleet import bag_row, BagJob, process_bag
from mask2former_ros.offline.options import FleetOptions, Options
from mask2former_ros.offline.run import load_engine

MAX_ATTEMPTS = 2  # a bag whose worker died is tried once more


class BagWorker:
    """A Ray actor: loads the engine on its first bag (on the thread that runs every bag)."""

    def __init__(self, options: Options, worst_k: int) -> None:
        """Store the settings (nothing is loaded yet); reuse frame-sized buffers."""
        keep_large_buffers()
        self.options = options
        self.worst_k = worst_k
        self.engine: Any = None

    def pid(self) -> int:
        """Return the process id of the actor."""
        return os.getpid()

    def process(self, job: BagJob, attempts: int) -> dict:
        """Segment one bag; a model that cannot be loaded is reported as ``fatal``."""
        load_seconds = 0.0
        if self.engine is None:
            started = time.perf_counter()
            try:
                self.engine = load_engine(self.options, lambda _text: None)
            except SegmentBagError as exc:
                return {'fatal': str(exc), 'exit_code': exc.exit_code, 'option': exc.option}
            load_seconds = time.perf_counter() - started
        options = replace(self.options, model=str(self.engine.config.model))
        result = process_bag(job, options, self.engine, self.worst_k, attempts,
                             lambda text: print(f'{PROG}: {job.name}: {text}', file=sys.stderr,
                                                flush=True))  # stdout is the summary's
        return dict(result, load_seconds=load_seconds)


def _init_ray(fleet: FleetOptions) -> bool:
    """Attach to or start Ray; return True if this call started it."""
    import ray
    if ray.is_initialized():
        return False
    if fleet.ray_address:
        ray.init(address=fleet.ray_address, logging_level='warning')
    else:
        ray.init(num_cpus=max(fleet.workers, os.cpu_count() or 1), include_dashboard=False,
                 logging_level='warning')
    return True


def run_on_ray(jobs: list[BagJob], options: Options, fleet: FleetOptions,
               on_result: Callable[[dict], None], log: Callable[[str], None]) -> bool:
    """
    Process the jobs on ``fleet.workers`` Ray actors; return False if interrupted.

    Ray prints its workers' and raylet's lines (e.g. that a worker died) on the driver's stdout,
    which is the summary's: they go to stderr while Ray runs.
    """
    with contextlib.redirect_stdout(sys.stderr):
        return _run_on_ray(jobs, options, fleet, on_result, log)


def _run_on_ray(jobs: list[BagJob], options: Options, fleet: FleetOptions,
                on_result: Callable[[dict], None], log: Callable[[str], None]) -> bool:
    import ray
    from ray.exceptions import RayActorError
    started = _init_ray(fleet)
    actor_class = ray.remote(BagWorker).options(num_cpus=1, num_gpus=fleet.gpus_per_worker,
                                                max_restarts=0)

    def new_actor() -> Any:
        return actor_class.remote(options, fleet.worst_frames)

    todo = deque((job, 1) for job in jobs)
    idle = [new_actor() for _ in range(min(fleet.workers, len(jobs)))]
    pending: dict[Any, tuple[Any, BagJob, int]] = {}
    try:
        while todo or pending:
            while todo and idle:
                actor = idle.pop()
                job, attempt = todo.popleft()
                pending[actor.process.remote(job, attempt)] = (actor, job, attempt)
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                actor, job, attempt = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except RayActorError as exc:
                    ray.kill(actor)
                    idle.append(new_actor())
                    if attempt < MAX_ATTEMPTS:
                        log(f'warning: the worker of {job.name} died ({type(exc).__name__}); '
                            'retrying the bag on a new worker')
                        todo.appendleft((job, attempt + 1))
                    else:
                        error = f'its worker died {attempt} times: {one_line(exc)}'
                        on_result({'row': bag_row(job, None, None, 'failed', error, attempt)})
                    continue
                except Exception as exc:  # noqa: BLE001 - e.g. a result that cannot unpickle
                    idle.append(actor)
                    on_result({'row': bag_row(job, None, None, 'failed',
                                              f'{type(exc).__name__}: {one_line(exc)}',
                                              attempt)})
                    continue
                if 'fatal' in result:
                    raise SegmentBagError(result['fatal'], result.get('exit_code', EXIT_FAILURE),
                                          option=result.get('option'))
                idle.append(actor)
                on_result(result)
    except KeyboardInterrupt:
        return False
    finally:
        for actor in idle + [a for a, _, _ in pending.values()]:
            ray.kill(actor)
        if started:
            ray.shutdown()
    return True
