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
Read-ahead and write-behind around the inference loop, and deferred Ctrl-C.

:func:`run_pipeline` runs ``produce`` (reading and decoding: numpy/cv2 only) in a prefetch
thread and ``finish`` (encoding, writing, evaluating) in a writer thread, joined by bounded
queues, while ``infer`` (all torch work) runs on the calling thread: the thread that loaded
the engine.
"""

from collections.abc import Iterator
from contextlib import contextmanager
import queue
import signal
import threading
from typing import Any, Callable, ContextManager

_END = object()
_POLL = 0.1  # seconds between checks of the stop events while a queue is full or empty


class SigintGuard:
    """Turn SIGINT into KeyboardInterrupt, except inside critical sections (deferred)."""

    def __init__(self) -> None:
        """Create an inactive guard."""
        self.depth = 0
        self.pending = False
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> 'SigintGuard':
        """Install the handler (only possible in the main thread)."""
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: Any) -> None:
        """Restore the previous handler."""
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self.depth:
            self.pending = True
        else:
            raise KeyboardInterrupt

    @contextmanager
    def critical(self, reraise: bool = True) -> Iterator[None]:
        """Defer SIGINT until the block is done (then raise it if ``reraise``)."""
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if not self.depth and self.pending and reraise:
                self.pending = False
                raise KeyboardInterrupt


def _put(q: queue.Queue, item: Any, *stops: threading.Event) -> bool:
    """Put ``item``, waiting while the queue is full; False if a stop event was set first."""
    while not any(stop.is_set() for stop in stops):
        try:
            q.put(item, timeout=_POLL)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, *stops: threading.Event) -> Any:
    """Get an item, waiting while the queue is empty; _END if a stop event was set first."""
    while not any(stop.is_set() for stop in stops):
        try:
            return q.get(timeout=_POLL)
        except queue.Empty:
            continue
    return _END


def run_pipeline(produce: Iterator[Any], infer: Callable[[Any], Any],
                 finish: Callable[[Any], None], depth: int,
                 shield: Callable[[], ContextManager],
                 writer_open: Callable[[], None] = lambda: None,
                 writer_close: Callable[[], None] = lambda: None) -> None:
    """
    Run ``finish(infer(item))`` for every item of ``produce``, in three overlapping stages.

    ``produce`` is iterated in a prefetch thread and ``finish`` runs in a writer thread, each
    at most ``depth`` items ahead of/behind ``infer``, which runs on the calling thread. The
    first exception of any stage (or a KeyboardInterrupt of the calling thread) stops reading;
    results already inferred are still finished, in order, before the exception propagates.
    ``shield()`` guards the shutdown (e.g. defers a second Ctrl-C). ``writer_open`` and
    ``writer_close`` run in the writer thread before the first and after the last ``finish``
    (sqlite3 connections, e.g. of an output bag, only work in the thread that made them).
    """
    inbox: queue.Queue = queue.Queue(max(depth, 1))
    outbox: queue.Queue = queue.Queue(max(depth, 1))
    stop_reading, writer_failed = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for item in produce:
                if not _put(inbox, item, stop_reading):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            errors.append(exc)
        _put(inbox, _END, stop_reading)

    def writer() -> None:
        try:
            try:
                writer_open()
                while (item := outbox.get()) is not _END:
                    finish(item)
            finally:
                writer_close()
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            errors.append(exc)
            writer_failed.set()

    threads = [threading.Thread(target=reader, name='segment_bag-prefetch', daemon=True),
               threading.Thread(target=writer, name='segment_bag-writer', daemon=True)]
    for thread in threads:
        thread.start()
    try:
        while (item := _get(inbox, writer_failed)) is not _END:
            if not _put(outbox, infer(item), writer_failed):
                break
    finally:
        with shield():
            stop_reading.set()
            _put(outbox, _END, writer_failed)
            for thread in threads:
                thread.join()
    if errors:
        raise errors[0]
