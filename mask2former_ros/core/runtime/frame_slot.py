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

"""Newest-frame-wins hand-off between message callbacks and inference workers (no ROS)."""

from dataclasses import dataclass
import threading
from typing import Any, Generic, Hashable, TypeVar

T = TypeVar('T')


@dataclass
class SlotCounters:
    """Per-source counts: frames received, dropped unprocessed, and taken by the worker."""

    received: int = 0
    dropped: int = 0
    taken: int = 0


class LatestFrameSlots(Generic[T]):
    """
    One single-item slot per source; a newer item replaces (and counts) an unprocessed one.

    Producers call :meth:`put` from any thread; consumers call :meth:`take` and get the newest
    pending item of every source at once (or of the ``max_items`` least recently served
    sources), so a slow consumer never builds a backlog and a source without a new item is
    never re-processed.
    """

    def __init__(self) -> None:
        """Create empty slots."""
        self._cond = threading.Condition()
        self._pending: dict[Hashable, T] = {}
        self._counters: dict[Hashable, SlotCounters] = {}
        self._served: dict[Hashable, int] = {}  # source -> number of the take that served it
        self._takes = 0
        self._closed = False

    def put(self, source: Hashable, item: T) -> bool:
        """Store ``item`` as the newest of ``source``; return True if an older one was dropped."""
        with self._cond:
            counters = self._counters.setdefault(source, SlotCounters())
            counters.received += 1
            dropped = source in self._pending
            if dropped:
                counters.dropped += 1
            self._pending[source] = item
            self._cond.notify()
            return dropped

    def take(self, timeout: float | None = None,
             max_items: int | None = None) -> dict[Hashable, T]:
        """
        Wait up to ``timeout`` s for pending items; return and clear them.

        With ``max_items``, only that many are taken: those of the sources served least
        recently, so that every source gets its turn; the others stay pending.
        """
        with self._cond:
            if not self._pending and not self._closed:
                self._cond.wait(timeout)
            if max_items is None or len(self._pending) <= max_items:
                items, self._pending = self._pending, {}
            else:
                order = sorted(self._pending, key=lambda source: self._served.get(source, -1))
                items = {source: self._pending.pop(source) for source in order[:max_items]}
            self._takes += 1
            for source in items:
                self._counters[source].taken += 1
                self._served[source] = self._takes
            if self._pending:
                self._cond.notify()  # another consumer may take the rest
            return items

    def clear(self) -> int:
        """Drop every pending item (counted as dropped); return how many."""
        with self._cond:
            for source in self._pending:
                self._counters[source].dropped += 1
            count = len(self._pending)
            self._pending.clear()
            return count

    def close(self) -> None:
        """Wake a waiting consumer for good (used on shutdown)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        """Allow waiting again after :meth:`close`."""
        with self._cond:
            self._closed = False

    def counters(self) -> dict[Hashable, SlotCounters]:
        """Return a snapshot of the per-source counters."""
        with self._cond:
            return {k: SlotCounters(v.received, v.dropped, v.taken)
                    for k, v in self._counters.items()}


def simulate_realtime(arrivals: list[tuple[float, Any]], process) -> tuple[list, int]:
    """
    Replay items arriving at times (s) through one slot and a worker of real duration.

    ``process(item)`` runs for real; its wall time advances a virtual clock. Items that arrive
    while the worker is busy replace each other exactly as in :class:`LatestFrameSlots`. Returns
    the processed results in order and the number of dropped items.
    """
    import time
    results, dropped, clock, index = [], 0, 0.0, 0
    while index < len(arrivals):
        clock = max(clock, arrivals[index][0])
        # Newest arrival not after the clock wins; the ones it replaced are dropped.
        newest = index
        while newest + 1 < len(arrivals) and arrivals[newest + 1][0] <= clock:
            newest += 1
        dropped += newest - index
        started = time.perf_counter()
        results.append(process(arrivals[newest][1]))
        clock += time.perf_counter() - started
        index = newest + 1
    return results, dropped
