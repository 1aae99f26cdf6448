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

"""Progress on stderr: tqdm bars on a terminal, a line every few seconds otherwise."""

import sys
import time

from mask2former_ros.offline.errors import PROG

PROGRESS_LINE_PERIOD = 10.0  # seconds between progress lines when stderr is not a terminal


class Progress:
    """Frames of one bag: a tqdm bar on a terminal, a line every few seconds otherwise."""

    def __init__(self, total: int, enabled: bool, desc: str = PROG) -> None:
        """Create the bar (terminal) or the line printer (pipe, file), or nothing."""
        self.total = total
        self.bar = None
        self.lines = False
        self._last_line = time.monotonic()
        self._first = True
        if not enabled:
            return
        if sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=total, unit='frame', file=sys.stderr, dynamic_ncols=True,
                            desc=desc, leave=True)
        else:
            self.lines = True

    def set_total(self, total: int) -> None:
        """Change the number of frames expected."""
        self.total = total
        if self.bar is not None:
            self.bar.total = total

    def write(self, text: str) -> None:
        """Print a message line without breaking the bar."""
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def update(self, done: int, processed: int, dropped: int, bad: int) -> None:
        """Report that ``done`` frames of ``total`` are handled."""
        if self.bar is not None:
            self.bar.n = done
            self.bar.set_postfix(dropped=dropped, bad=bad, refresh=False)
            self.bar.refresh()
        elif self.lines:
            now = time.monotonic()
            if (self._first and processed) or now - self._last_line >= PROGRESS_LINE_PERIOD:
                self._first = self._first and not processed
                self._last_line = now
                self.write(f'{PROG}: {done}/{self.total} frames, {processed} processed, '
                           f'{dropped} dropped, {bad} bad')

    def close(self) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class FleetProgress:
    """Bags of a fleet: one tqdm bar (bags done, frames/s, ETA) and a line per finished bag."""

    def __init__(self, bags: int, enabled: bool) -> None:
        """Create the bar on a terminal; elsewhere only the per-bag lines are printed."""
        self.enabled = enabled
        self.frames = 0
        self.started = time.monotonic()
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=bags, unit='bag', file=sys.stderr, dynamic_ncols=True,
                            desc=PROG, leave=True)

    def write(self, text: str, always: bool = False) -> None:
        """Print a line (above the bar); without progress display only if ``always``."""
        if not (self.enabled or always):
            return
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def bag_done(self, line: str, frames: int) -> None:
        """Count a finished (or failed or skipped) bag and print its line."""
        self.frames += frames
        rate = self.frames / max(time.monotonic() - self.started, 1e-9)
        self.write(f'{PROG}: {line}')
        if self.bar is not None:
            self.bar.set_postfix_str(f'{rate:.2f} frames/s', refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
