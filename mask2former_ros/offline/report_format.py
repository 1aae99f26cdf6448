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

"""Formatting shared by the HTML report's modules: numbers, percentages, stamps, SVG charts."""

import base64
from datetime import datetime, UTC
import io
import math
from typing import Any

from matplotlib.figure import Figure

NA = 'n/a'


def number(value: Any) -> float | None:
    """Return ``value`` as a finite float; None for None, NaN, infinities and non-numbers."""
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def fmt_percent(value: Any) -> str:
    """Format a 0..1 ratio as a percentage with one decimal (``73.4 %``), or ``n/a``."""
    v = number(value)
    return NA if v is None else f'{100.0 * v:.1f} %'


def fmt_float(value: Any, digits: int = 1) -> str:
    """Format a number with ``digits`` decimals, or ``n/a``."""
    v = number(value)
    return NA if v is None else f'{v:.{digits}f}'


def fmt_int(value: Any) -> str:
    """Format an integer (exactly, e.g. a stamp in ns), or ``n/a``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    v = number(value)
    return NA if v is None else str(int(v))


def svg_uri(fig: Figure) -> str:
    """Return a matplotlib figure as an SVG data URI (no date: reproducible)."""
    buf = io.BytesIO()
    fig.savefig(buf, format='svg', metadata={'Date': None})
    return 'data:image/svg+xml;base64,' + base64.b64encode(buf.getvalue()).decode('ascii')


def stamp_utc(stamp_ns: Any) -> str:
    """Return a stamp in ns as a UTC date and time with milliseconds, or ``n/a``."""
    if number(stamp_ns) is None:
        return NA
    try:
        seconds, ns = divmod(int(stamp_ns), 1_000_000_000)
        moment = datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=ns // 1000)
    except (OverflowError, OSError, ValueError, TypeError):
        return NA
    return moment.strftime('%Y-%m-%d %H:%M:%S.%f')[:-3] + ' UTC'
