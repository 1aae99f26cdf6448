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
Self-contained HTML report of a fleet evaluation: matplotlib charts in a jinja2 template.

:func:`write_report` renders ``out_dir/index.html`` from a fleet summary (see the README,
"Reports"). The charts (SVG) and the worst-frame thumbnails are embedded as base64 data URIs
and the page has no script and no external CSS, image or font, so it reads offline, attached
to a CI run or mailed as it is. Missing data (no frames, no ground truth, failed bags, missing
thumbnails, NaN) is shown as such ("n/a", "no ground truth", a placeholder) instead of a crash.
"""

import base64
from datetime import datetime, UTC
import functools
import math
from pathlib import Path
from typing import Any, Sequence

import jinja2
from mask2former_ros.offline.report_format import (
    fmt_float, fmt_int, fmt_percent, NA, number, stamp_utc as _stamp_utc, svg_uri as _svg_uri)
from mask2former_ros.offline.tracking_report import tracking_context
from matplotlib import colormaps
from matplotlib.figure import Figure
import numpy as np

TEMPLATE = 'report.html.j2'
ANNOTATE_MAX_CLASSES = 25  # confusion cells show their value up to this many classes
_IMAGE_MAGIC = ((b'\x89PNG\r\n\x1a\n', 'image/png'), (b'\xff\xd8\xff', 'image/jpeg'))


def bag_sort_key(bag: dict) -> tuple:
    """Return the worst-first key: failed bags, then by mIoU ascending (unknown last), skipped."""
    status = bag.get('status')
    miou = number(bag.get('miou'))
    rank = 0 if status == 'failed' else 1 if status == 'ok' else 2
    return rank, miou is None, miou if miou is not None else 0.0, str(bag.get('bag', ''))


def _class_names(classes: Sequence[str], count: int) -> list[str]:
    return [str(classes[i]) if i < len(classes) else f'class {i}' for i in range(count)]


def _colour(palette: Sequence[Sequence[int]], index: int) -> tuple[float, float, float]:
    try:
        r, g, b = (min(max(float(c), 0.0), 255.0) / 255.0 for c in palette[index][:3])
    except (IndexError, TypeError, ValueError):
        return 0.6, 0.6, 0.6
    return r, g, b


def iou_chart(classes: Sequence[str], per_class_iou: dict, palette: Sequence,
              miou: float | None) -> str:
    """Return a horizontal bar chart of per-class IoU as an SVG data URI (no bar: ``n/a``)."""
    return _bar_chart(list(classes), per_class_iou, palette, miou, 'IoU', 'mIoU')


def pq_chart(classes: Sequence[str], per_class: dict, palette: Sequence, pq: float | None,
             thing_classes: Sequence[str]) -> str:
    """
    Return a horizontal bar chart of per-class PQ as an SVG data URI.

    Things are marked ``(thing)``; classes without a segment in ground truth or prediction
    show ``n/a``.
    """
    things = set(thing_classes)
    names = [f'{name} (thing)' if name in things else name for name in classes]
    values = {label: (per_class.get(name) or {}).get('pq')
              for label, name in zip(names, classes, strict=True)}
    return _bar_chart(names, values, palette, pq, 'PQ', 'PQ')


def _bar_chart(names: list[str], values: dict, palette: Sequence, mean: float | None,
               xlabel: str, mean_label: str) -> str:
    fig = Figure(figsize=(7.0, 0.26 * len(names) + 1.3), layout='constrained')
    ax = fig.add_subplot()
    for y, name in enumerate(names):
        value = number(values.get(name))
        if value is None:
            ax.text(0.01, y, NA, va='center', fontsize=8, color='#777777', style='italic')
            continue
        ax.barh(y, value, color=_colour(palette, y), edgecolor='#333333', linewidth=0.5)
        ax.text(value + 0.01, y, f'{100 * value:.1f}', va='center', fontsize=8)
    if mean is not None:
        ax.axvline(mean, color='#c0392b', linestyle='--', linewidth=1,
                   label=f'{mean_label} {100 * mean:.1f} %')
        ax.legend(loc='lower right', fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=9)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_xlim(0.0, 1.1)
    ax.set_xlabel(xlabel)
    ax.grid(axis='x', alpha=0.3)
    return _svg_uri(fig)


def confusion_chart(classes: Sequence[str], confusion: Any) -> str | None:
    """
    Return the row-normalised confusion matrix as an SVG data URI, None when it has no pixel.

    Rows are ground truth (each sums to 1), columns predictions; only classes present in the
    ground truth or the prediction are shown.
    """
    try:
        cm = np.asarray(confusion, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] == 0:
        return None
    cm = np.nan_to_num(cm, nan=0.0, posinf=0.0, neginf=0.0).clip(min=0.0)
    present = np.flatnonzero(cm.sum(axis=0) + cm.sum(axis=1) > 0)
    if present.size == 0:
        return None
    sub = cm[np.ix_(present, present)]
    rows = cm[present].sum(axis=1, keepdims=True)
    with np.errstate(invalid='ignore', divide='ignore'):
        norm = np.where(rows > 0, sub / rows, np.nan)
    names = [_class_names(classes, cm.shape[0])[i] for i in present]
    k = len(names)
    side = max(4.0, 0.42 * k + 2.4)
    fig = Figure(figsize=(side + 1.0, side), layout='constrained')
    ax = fig.add_subplot()
    cmap = colormaps['Blues'].with_extremes(bad='#eeeeee')
    image = ax.imshow(norm, cmap=cmap, vmin=0.0, vmax=1.0, interpolation='nearest')
    if k <= ANNOTATE_MAX_CLASSES:
        size = 8 if k <= 12 else 7 if k <= 18 else 6
        for i in range(k):
            for j in range(k):
                v = norm[i, j]
                if np.isfinite(v) and v >= 0.005:
                    ax.text(j, i, f'{v:.2f}'.lstrip('0') if v < 1 else '1', ha='center',
                            va='center', fontsize=size, color='white' if v > 0.5 else 'black')
    ax.set_xticks(range(k), names, rotation=60, ha='right', rotation_mode='anchor', fontsize=9)
    ax.set_yticks(range(k), names, fontsize=9)
    ax.set_xlabel('prediction')
    ax.set_ylabel('ground truth')
    fig.colorbar(image, ax=ax, shrink=0.7, label='fraction of the ground-truth class')
    return _svg_uri(fig)


def histogram(values: Sequence[Any], xlabel: str, colour: str) -> str | None:
    """Return a histogram with p50/p95 markers as an SVG data URI, None without finite values."""
    data = np.array([v for v in map(number, values) if v is not None], dtype=np.float64)
    if data.size == 0:
        return None
    fig = Figure(figsize=(5.6, 3.2), layout='constrained')
    ax = fig.add_subplot()
    bins = int(min(40, max(5, round(math.sqrt(data.size)))))
    ax.hist(data, bins=bins, color=colour, edgecolor='white', linewidth=0.5)
    p50, p95 = np.percentile(data, [50, 95])
    ax.axvline(p50, color='#333333', linestyle='--', linewidth=1, label=f'p50 {p50:.1f}')
    ax.axvline(p95, color='#c0392b', linestyle=':', linewidth=1.2, label=f'p95 {p95:.1f}')
    ax.legend(fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel('count')
    ax.set_title(f'n = {data.size}', fontsize=9)
    ax.grid(axis='y', alpha=0.3)
    return _svg_uri(fig)


def image_uri(out_dir: Path, relative: Any) -> str | None:
    """Return a PNG/JPEG file under ``out_dir`` as a data URI, None if missing or not an image."""
    if not isinstance(relative, str) or not relative:
        return None
    try:
        data = (out_dir / relative).read_bytes()
    except OSError:
        return None
    for magic, mime in _IMAGE_MAGIC:
        if data.startswith(magic):
            return f'data:{mime};base64,' + base64.b64encode(data).decode('ascii')
    return None


def _has_ground_truth(dataset: dict) -> bool:
    values = [dataset.get(k) for k in ('miou', 'pixel_accuracy', 'fw_iou')]
    values += list((dataset.get('per_class_iou') or {}).values())
    return any(number(v) is not None for v in values)


def _panoptic_rows(panoptic: dict) -> list[dict]:
    """Return PQ, SQ, RQ and the class count of all classes, things and stuff."""
    rows = []
    for part in ('all', 'things', 'stuff'):
        values = panoptic.get(part) or {}
        rows.append({'part': part, 'pq': fmt_percent(values.get('pq')),
                     'sq': fmt_percent(values.get('sq')), 'rq': fmt_percent(values.get('rq')),
                     'n': fmt_int(values.get('n'))})
    return rows


def _bag_rows(bags: Sequence[dict]) -> list[dict]:
    rows = []
    for bag in sorted(bags, key=bag_sort_key):
        frames = bag.get('frames') or {}
        rows.append({
            'bag': str(bag.get('bag', '')), 'status': str(bag.get('status', '')),
            'total': fmt_int(frames.get('total')), 'processed': fmt_int(frames.get('processed')),
            'dropped': fmt_int(frames.get('dropped')), 'bad': fmt_int(frames.get('bad')),
            'fps': fmt_float(bag.get('fps')), 'miou': fmt_percent(bag.get('miou')),
            'pixel_accuracy': fmt_percent(bag.get('pixel_accuracy')),
            'pq': fmt_percent(bag.get('pq')),
            'attempts': fmt_int(bag.get('attempts')), 'error': bag.get('error') or '',
        })
    return rows


def _stage_rows(bags: Sequence[dict]) -> list[dict]:
    """Per stage over the bags: median of the bags' p50, worst p95, mean of the means."""
    stages: dict[str, dict[str, list[float]]] = {}
    for bag in bags:
        for stage, stats in (bag.get('stage_ms') or {}).items():
            slot = stages.setdefault(str(stage), {'p50': [], 'p95': [], 'mean': []})
            for key, values in slot.items():
                v = number((stats or {}).get(key))
                if v is not None:
                    values.append(v)
    return [{'stage': stage,
             'p50': fmt_float(np.median(s['p50']) if s['p50'] else None),
             'p95': fmt_float(max(s['p95']) if s['p95'] else None),
             'mean': fmt_float(np.mean(s['mean']) if s['mean'] else None),
             'bags': len(s['p50'])} for stage, s in stages.items()]


def _worst_frames(entries: Sequence[dict], out_dir: Path, key: str = 'miou') -> list[dict]:
    frames = []
    for entry in entries:
        images = [{'label': label, 'kind': key, 'path': str(entry.get(key) or ''),
                   'uri': image_uri(out_dir, entry.get(key))}
                  for key, label in (('image', 'image'), ('ground_truth', 'ground truth'),
                                     ('prediction', 'prediction'))]
        frames.append({'bag': str(entry.get('bag', '')),
                       'stamp_ns': fmt_int(entry.get('stamp_ns')),
                       'stamp_utc': _stamp_utc(entry.get('stamp_ns')),
                       'index': fmt_int(entry.get('index')),
                       'miou': fmt_percent(entry.get('miou')),
                       'score': fmt_percent(entry.get(key)), 'images': images})
    return frames


def build_context(summary: dict, out_dir: Path) -> dict:
    """Return the template context (formatted values and chart data URIs) of a summary."""
    classes = [str(c) for c in summary.get('classes') or []]
    palette = summary.get('palette') or []
    dataset = summary.get('dataset') or {}
    bags = [b for b in summary.get('bags') or [] if isinstance(b, dict)]
    statuses = [b.get('status') for b in bags]
    has_gt = _has_ground_truth(dataset)
    miou = number(dataset.get('miou'))
    panoptic = dataset.get('panoptic') if isinstance(dataset.get('panoptic'), dict) else None
    pq = number(dataset.get('pq'))
    frame_ms = [v for b in bags for v in (b.get('frame_ms') or [])]
    bag_fps = [b.get('fps') for b in bags if b.get('status') == 'ok'
               and (number((b.get('frames') or {}).get('processed')) or 0) > 0]
    return {
        'model': str(summary.get('model') or NA),
        'generated': datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC'),
        'header': {
            'classes': str(len(classes)), 'frames': fmt_int(dataset.get('frames')),
            'bags': fmt_int(dataset.get('bags', len(bags))),
            'bags_ok': str(statuses.count('ok')),
            'bags_failed': fmt_int(dataset.get('bags_failed', statuses.count('failed'))),
            'bags_skipped': str(statuses.count('skipped')),
            'miou': fmt_percent(miou),
            'pixel_accuracy': fmt_percent(dataset.get('pixel_accuracy')),
            'fw_iou': fmt_percent(dataset.get('fw_iou')), 'fps': fmt_float(dataset.get('fps')),
            'fps_basis': str(dataset.get('fps_basis') or ''),
            'seconds': fmt_float(dataset.get('seconds')),
            'startup_seconds': fmt_float(dataset.get('startup_seconds')),
            'wall_fps': fmt_float(dataset.get('wall_fps')),
        },
        'has_gt': has_gt,
        'has_pq': panoptic is not None,
        'pq': fmt_percent(pq),
        'panoptic_rows': _panoptic_rows(panoptic) if panoptic else [],
        'pq_chart': (pq_chart(classes, panoptic.get('per_class') or {}, palette, pq,
                              panoptic.get('thing_classes') or [])
                     if panoptic and classes else None),
        'worst_pq_frames': _worst_frames(summary.get('worst_pq_frames') or [], out_dir, 'pq'),
        'iou_chart': (iou_chart(classes, dataset.get('per_class_iou') or {}, palette, miou)
                      if has_gt and classes else None),
        'confusion_chart': confusion_chart(classes, dataset.get('confusion')) if has_gt else None,
        'frame_ms_chart': histogram(frame_ms, 'per-frame latency (ms)', '#2e86c1'),
        'fps_chart': histogram(bag_fps, 'throughput per bag (frames/s)', '#28b463'),
        'stages': _stage_rows(bags),
        'bags': _bag_rows(bags),
        'worst_frames': _worst_frames(summary.get('worst_frames') or [], out_dir),
        'legend': [{'name': name, 'rgb': tuple(round(255 * c) for c in _colour(palette, i))}
                   for i, name in enumerate(classes)],
        **tracking_context(summary),
    }


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader('mask2former_ros.offline', 'templates'),
                              autoescape=True, undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True)


def render_report(summary: dict, out_dir: Path) -> str:
    """Return the report HTML of ``summary`` (thumbnail paths are relative to ``out_dir``)."""
    return _environment().get_template(TEMPLATE).render(build_context(summary, Path(out_dir)))


def write_report(summary: dict, out_dir: Path) -> Path:
    """Write the self-contained report of a fleet summary to ``out_dir/index.html``; return it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / 'index.html'
    path.write_text(render_report(summary, out_dir), encoding='utf-8')
    return path
