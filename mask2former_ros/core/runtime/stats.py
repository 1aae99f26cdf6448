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

"""Rate and latency statistics over a sliding time window (no ROS)."""

from collections import deque
from dataclasses import dataclass, field
import threading
import time

import numpy as np


class WindowStats:
    """Event times and values (e.g. latencies in ms) kept for the last ``window`` seconds."""

    def __init__(self, window: float = 5.0) -> None:
        """Create an empty window of ``window`` seconds."""
        self.window = window
        self._events: deque[tuple[float, float]] = deque()
        self._lock = threading.Lock()
        self.total = 0

    def add(self, value: float = 0.0, now: float | None = None) -> None:
        """Record one event with an optional value."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._events.append((now, value))
            self.total += 1
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._events and self._events[0][0] < now - self.window:
            self._events.popleft()

    def rate(self, now: float | None = None) -> float:
        """Events per second over the window."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            if len(self._events) < 2:
                return 0.0
            span = max(now - self._events[0][0], 1e-6)
            return len(self._events) / min(span, self.window)

    def percentiles(self, *qs: float) -> list[float]:
        """Percentiles (0..100) of the values in the window; NaN when empty."""
        with self._lock:
            self._trim(time.monotonic())
            values = [v for _, v in self._events]
        if not values:
            return [float('nan')] * len(qs)
        return [float(v) for v in np.percentile(values, qs)]

    def mean(self) -> float:
        """Mean of the values in the window; NaN when empty."""
        with self._lock:
            values = [v for _, v in self._events]
        return float(np.mean(values)) if values else float('nan')


@dataclass
class CameraStats:
    """Counters and windows of one camera input, updated by the node's threads."""

    arrivals: WindowStats = field(default_factory=WindowStats)
    outputs: WindowStats = field(default_factory=WindowStats)
    latency_ms: WindowStats = field(default_factory=WindowStats)
    transport_ms: WindowStats = field(default_factory=WindowStats)
    decode_ms: WindowStats = field(default_factory=WindowStats)
    publish_ms: WindowStats = field(default_factory=WindowStats)
    bad_frames: int = 0
    failed_frames: int = 0
    tracks: int | None = None  # live tracks after the last frame (None: tracking off)
    last_problem: str = ''
    last_warning: float = -1e9

    def warn_due(self, throttle_s: float, now: float | None = None) -> bool:
        """Return True (and restart the throttle) when a warning may be logged now."""
        now = time.monotonic() if now is None else now
        if now - self.last_warning < throttle_s:
            return False
        self.last_warning = now
        return True
