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
The tracking part of the HTML report: fleet metrics, a per-bag chart, frames of most switches.

Shown when the summary's ``dataset`` has ``tracking`` (segment_bag ``--gt-track-ids``).
"""

from typing import Any, Sequence

from mask2former_ros.offline.report_format import (
    fmt_int, fmt_percent, number, stamp_utc, svg_uri)
from matplotlib.figure import Figure
import numpy as np

BARS = (('hota', 'HOTA', '#2e86c1'), ('idf1', 'IDF1', '#28b463'), ('mota', 'MOTA', '#af7ac5'))
FLEET_FIELDS = ('hota', 'deta', 'assa', 'idf1', 'mota')


def tracking_chart(bags: Sequence[dict]) -> str | None:
    """
    Return per-bag HOTA, IDF1 and MOTA bars with each bag's ID switches, as an SVG data URI.

    Bags without tracking metrics are left out; None when no bag has them.
    """
    rows = [(str(b.get('bag', '')), b['tracking']) for b in bags
            if isinstance(b.get('tracking'), dict)]
    if not rows:
        return None
    fig = Figure(figsize=(7.0, 0.55 * len(rows) + 1.4), layout='constrained')
    ax = fig.add_subplot()
    height = 0.8 / len(BARS)
    low = 0.0
    for y, (_, metrics) in enumerate(rows):
        for k, (key, label, colour) in enumerate(BARS):
            value = number(metrics.get(key))
            if value is None:
                continue
            low = min(low, value)
            ax.barh(y - 0.4 + (k + 0.5) * height, value, height, color=colour,
                    label=label if y == 0 else None)
        ax.text(1.12, y, f"{fmt_int(metrics.get('id_switches'))} ID sw.", va='center',
                fontsize=8)
    ax.set_yticks(range(len(rows)), [name for name, _ in rows], fontsize=9)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlim(min(low - 0.05, 0.0), 1.35)
    ax.set_xticks(np.arange(0.0, 1.01, 0.2) if low >= 0 else ax.get_xticks()[:-1])
    ax.axvline(0.0, color='#333333', linewidth=0.6)
    ax.legend(loc='lower right', fontsize=8)
    ax.grid(axis='x', alpha=0.3)
    return svg_uri(fig)


def tracking_context(summary: dict) -> dict[str, Any]:
    """Return the report's tracking values: fleet metrics, the chart, the worst frames."""
    dataset = summary.get('dataset') or {}
    tracking = dataset.get('tracking') if isinstance(dataset.get('tracking'), dict) else None
    if tracking is None:
        return {'has_tracking': False}
    bags = [b for b in summary.get('bags') or [] if isinstance(b, dict)]
    baseline = tracking.get('per_frame_ids')

    def row(name: str, metrics: dict) -> dict:
        return {'name': name, **{key: fmt_percent(metrics.get(key)) for key in FLEET_FIELDS},
                'id_switches': fmt_int(metrics.get('id_switches'))}
    return {
        'has_tracking': True,
        'tracking': row('track ids', tracking),
        'tracking_baseline': row('per-frame ids (no tracking)', baseline)
        if isinstance(baseline, dict) else None,
        'tracking_chart': tracking_chart(bags),
        'switch_frames': [
            {'bag': str(f.get('bag', '')), 'index': fmt_int(f.get('index')),
             'stamp_ns': fmt_int(f.get('stamp_ns')), 'stamp_utc': stamp_utc(f.get('stamp_ns')),
             'id_switches': fmt_int(f.get('id_switches'))}
            for f in tracking.get('most_id_switches') or [] if isinstance(f, dict)],
    }
