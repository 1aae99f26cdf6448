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
The one thread that runs the model: it loads the engine, runs every batch and closes it (no ROS).

OpenMP thread teams are per calling thread: a torch model run from a thread other than the one
that loaded it was measured 1.6x slower on a 2-core CPU, and two threads running a model at
once compete for the same cores. An :class:`InferenceWorker` therefore owns one thread for the
life of one loaded engine (either backend,
:func:`~mask2former_ros.core.backends.create.create_engine`);
everything that touches the model is a job on it.
"""

from concurrent.futures import Future
import gc
import queue
import threading
import time
import traceback
from typing import Any, Callable, Iterator, TypeVar

from mask2former_ros.core.backends.create import create_engine
from mask2former_ros.core.engine_config import EngineConfig
from mask2former_ros.core.results import Segmenter

T = TypeVar('T')
Take = Callable[[float], Any]
Process = Callable[[Segmenter, Any], None]


class WorkerDiedError(RuntimeError):
    """The inference thread is not running (it ended or died); the reason is in the message."""


class InferenceWorker:
    """
    A thread owning one :class:`Segmenter`, serving frames while a source is set.

    ``start`` loads the model on the new thread and waits for it; ``serve`` makes the thread
    call ``take(timeout)`` and, when it returns items, ``process(engine, items)``; ``call``
    runs any other torch job on the thread; ``stop`` closes the engine there and ends it. An
    exception escaping ``process`` ends the thread: :attr:`death` then holds the reason.
    """

    def __init__(self, name: str = 'inference') -> None:
        """Create a worker; nothing runs before :meth:`start`."""
        self.name = name
        self.engine: Segmenter | None = None
        self.death: str | None = None  # why the thread ended abnormally
        self.busy_since: float | None = None  # monotonic start of the batch in progress
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future]] = queue.SimpleQueue()
        self._source: tuple[Take, Process] | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        """Return True while the thread runs."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def thread(self) -> threading.Thread | None:
        """Return the worker thread, or None before :meth:`start`."""
        return self._thread

    def start(self, config: EngineConfig, log: Callable[[str], None] | None = None,
              warmup: bool = True, warn: Callable[[str], None] | None = None) -> Segmenter:
        """Start the thread and load the engine on it; raise what loading raised."""
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

        def load() -> Segmenter:
            engine = create_engine(config, log=log, warn=warn)
            if warmup:  # first-call allocations and kernel selection, off the data path
                engine.warmup()
            return engine
        try:
            self.engine = self.call(load)
        except BaseException:
            self.stop()
            raise
        return self.engine

    def call(self, job: Callable[[], T], timeout: float | None = None) -> T:
        """Run ``job`` on the worker thread and return its result (re-raising its error)."""
        if threading.current_thread() is self._thread:
            return job()
        if not self.alive:
            raise WorkerDiedError(self.death or 'the inference thread is not running')
        future: Future = Future()
        self._jobs.put((job, future))
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                return future.result(0.2)
            except TimeoutError:
                if not self.alive and not future.running():
                    raise WorkerDiedError(self.death or 'the inference thread ended') from None
                if deadline is not None and time.monotonic() > deadline:
                    raise

    def serve(self, take: Take | None, process: Process | None = None) -> None:
        """Serve frames from ``take`` with ``process``; ``None`` stops serving (idle)."""
        self._source = None if take is None else (take, process)

    def stop(self, timeout: float = 5.0) -> bool:
        """Close the engine on the thread and end it; return False if it did not end in time."""
        self._source = None
        thread = self._thread
        if thread is None or not thread.is_alive():
            self.engine = None
            return True
        if threading.current_thread() is thread:
            raise RuntimeError('InferenceWorker.stop() called from the worker thread')
        self._stopping.set()
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                self._run_jobs()
                source = self._source
                if source is None:
                    self._wait_for_job(0.05)
                    continue
                take, process = source
                items = take(0.05)
                if items and self._source is source and not self._stopping.is_set():
                    self.busy_since = time.monotonic()
                    try:
                        process(self.engine, items)
                    finally:
                        self.busy_since = None
        except BaseException as exc:  # noqa: B036 - record why the thread died, then end
            self.death = f'{type(exc).__name__}: {exc}'
            self._last_traceback = traceback.format_exc()
        finally:
            self._run_jobs()
            self._close()
            self._fail_pending()

    def _wait_for_job(self, timeout: float) -> None:
        try:
            job, future = self._jobs.get(timeout=timeout)
        except queue.Empty:
            return
        self._execute(job, future)

    def _pending(self) -> Iterator[tuple[Callable[[], Any], Future]]:
        """Yield the queued jobs until the queue is empty."""
        while True:
            try:
                yield self._jobs.get_nowait()
            except queue.Empty:
                return

    def _run_jobs(self) -> None:
        for job, future in self._pending():
            self._execute(job, future)

    @staticmethod
    def _execute(job: Callable[[], Any], future: Future) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(job())
        except BaseException as exc:  # noqa: B036 - handed to the caller
            future.set_exception(exc)

    def _close(self) -> None:
        engine, self.engine = self.engine, None
        if engine is not None:
            engine.close()
            del engine
            gc.collect()

    def _fail_pending(self) -> None:
        for _, future in self._pending():
            if future.set_running_or_notify_cancel():
                future.set_exception(WorkerDiedError(self.death or 'inference thread ended'))
