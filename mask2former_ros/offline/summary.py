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

"""Summaries: stage timings, worst-frame thumbnails, per-bag rows and the fleet summary."""

import base64
import heapq
import itertools
import json
import math
from pathlib import Path
import re
from typing import Any, Callable

import cv2
from mask2former_ros.core.evaluation.metrics import ConfusionMatrix
from mask2former_ros.core.evaluation.panoptic_quality import PanopticQuality
from mask2former_ros.core.render.instance_render import colorize_instances
from mask2former_ros.core.render.palette import colorize
from mask2former_ros.core.results import IGNORE_LABEL
from mask2former_ros.offline.errors import STAGES
from mask2former_ros.offline.tracking_metrics import fleet_tracking, WORST_SWITCHES
import numpy as np

THUMB_SIDE = 320  # longest side of the worst-frame thumbnails, in pixels
THUMB_KINDS = ('image', 'ground_truth', 'prediction')
FPS_BASIS = 'per worker: frames / summed seconds on bags'  # the fleet summary's headline fps


class StageTimes:
    """Per-frame durations (ms) of the pipeline stages."""

    def __init__(self) -> None:
        """Start empty."""
        self.values: dict[str, list[float]] = {stage: [] for stage in STAGES}

    def add(self, stage: str, ms: float) -> None:
        """Record one duration."""
        self.values[stage].append(float(ms))

    def summary(self) -> dict[str, dict[str, float]]:
        """Return mean, p50 and p95 of every stage that has values."""
        out = {}
        for stage, values in self.values.items():
            if values:
                p50, p95 = np.percentile(values, [50, 95])
                out[stage] = {'mean': round(float(np.mean(values)), 3),
                              'p50': round(float(p50), 3), 'p95': round(float(p95), 3)}
        return out


def json_safe(value: Any) -> Any:
    """Return ``value`` with NaN/inf floats as None and tuples as lists."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def to_json(value: Any, indent: int = 0) -> str:
    """Return indented JSON with lists of scalars and short flat dicts kept on one line."""
    pad = ' ' * indent
    if isinstance(value, dict) and value:
        flat = json.dumps(value)
        if all(_is_scalar(v) for v in value.values()) and len(flat) + indent <= 90:
            return flat
        items = [f'{pad}  {json.dumps(str(k))}: {to_json(v, indent + 2)}'
                 for k, v in value.items()]
        return '{\n' + ',\n'.join(items) + f'\n{pad}}}'
    if isinstance(value, (list, tuple)) and value and not all(_is_scalar(v) for v in value):
        items = [f'{pad}  {to_json(v, indent + 2)}' for v in value]
        return '[\n' + ',\n'.join(items) + f'\n{pad}]'
    return json.dumps(value)


def thumbnail(array: np.ndarray, labels: bool) -> np.ndarray:
    """Return a copy with the longest side at most THUMB_SIDE (nearest for label maps)."""
    height, width = array.shape[:2]
    scale = THUMB_SIDE / max(height, width)
    if scale >= 1.0:
        return array.copy()
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(array, size, interpolation=cv2.INTER_NEAREST if labels
                      else cv2.INTER_AREA)


class WorstFrames:
    """The ``k`` frames of lowest frame mIoU (or PQ: ``key``) so far, a bounded heap."""

    def __init__(self, k: int, key: str = 'miou') -> None:
        """Keep at most ``k`` frames, ranked by their entries' ``key``."""
        self.k = k
        self.key = key
        self._heap: list[tuple[float, int, dict]] = []  # (-miou, seq, entry): root = best
        self._seq = itertools.count()

    def wants(self, miou: float) -> bool:
        """Return True if a frame of this mIoU would be kept."""
        if self.k <= 0 or math.isnan(miou):
            return False
        return len(self._heap) < self.k or miou < -self._heap[0][0]

    def offer(self, miou: float, make: Callable[[], dict]) -> None:
        """Keep the entry ``make()`` builds if the frame is among the worst ``k``."""
        if not self.wants(miou):
            return
        item = (-miou, next(self._seq), make())
        if len(self._heap) < self.k:
            heapq.heappush(self._heap, item)
        else:
            heapq.heapreplace(self._heap, item)

    def add(self, entry: dict) -> None:
        """Offer a finished entry (with its ``miou`` or ``key``), e.g. from another bag."""
        self.offer(entry[self.key], lambda: entry)

    def entries(self) -> list[dict]:
        """Return the kept entries, worst first."""
        return [entry for _, _, entry in sorted(self._heap, key=lambda x: (-x[0], x[1]))]


def frame_entry(bag: str, index: int, stamp: int, miou: float, rgb: np.ndarray,
                truth: np.ndarray, labels: np.ndarray, palette: np.ndarray) -> dict:
    """Return a worst-frame entry with PNG thumbnails (image, ground truth, prediction)."""
    arrays = {'image': cv2.cvtColor(thumbnail(rgb, False), cv2.COLOR_RGB2BGR),
              'ground_truth': cv2.cvtColor(colorize(thumbnail(truth, True), palette),
                                           cv2.COLOR_RGB2BGR),
              'prediction': cv2.cvtColor(colorize(thumbnail(labels, True), palette),
                                         cv2.COLOR_RGB2BGR)}
    return {'bag': bag, 'index': int(index), 'stamp_ns': int(stamp), 'miou': float(miou),
            'png': _png(arrays)}


def panoptic_frame_entry(bag: str, index: int, stamp: int, pq: float, rgb: np.ndarray,
                         truth: tuple[np.ndarray, np.ndarray],
                         prediction: tuple[np.ndarray, np.ndarray | None], palette: np.ndarray,
                         thing_ids: tuple[int, ...]) -> dict:
    """
    Return a worst-PQ entry: thumbnails of the image and of the ground-truth and predicted labels.

    ``truth`` and ``prediction`` are (labels, instance ids); instances are drawn in shades of
    their class colour with white outlines, ids on stuff pixels left out.
    """
    def draw(labels: np.ndarray, ids: np.ndarray | None) -> np.ndarray:
        small = thumbnail(labels, True)
        if ids is not None:
            ids = np.where(np.isin(small, thing_ids), thumbnail(ids, True), 0)
        return cv2.cvtColor(colorize_instances(small, ids, palette), cv2.COLOR_RGB2BGR)

    arrays = {'image': cv2.cvtColor(thumbnail(rgb, False), cv2.COLOR_RGB2BGR),
              'ground_truth': draw(*truth), 'prediction': draw(*prediction)}
    return {'bag': bag, 'index': int(index), 'stamp_ns': int(stamp), 'pq': float(pq),
            'png': _png(arrays)}


def _png(arrays: dict[str, np.ndarray]) -> dict[str, bytes]:
    png = {}
    for kind, array in arrays.items():
        ok, data = cv2.imencode('.png', array)
        if not ok:
            raise RuntimeError(f'OpenCV failed to encode the {kind} thumbnail')
        png[kind] = data.tobytes()
    return png


def frame_miou(truth: np.ndarray, labels: np.ndarray, num_classes: int) -> tuple:
    """Return (confusion of one frame, its mIoU over the classes in its ground truth)."""
    cm = ConfusionMatrix(num_classes, IGNORE_LABEL)
    cm.update(truth, labels)
    return cm, cm.miou()


def encode_entry(entry: dict) -> dict:
    """Return a worst-frame entry with its PNG bytes as base64 text (for JSON)."""
    return dict(entry, png={k: base64.b64encode(v).decode('ascii')
                            for k, v in entry['png'].items()})


def decode_entry(entry: dict) -> dict:
    """Invert :func:`encode_entry`."""
    return dict(entry, png={k: base64.b64decode(v) for k, v in entry['png'].items()})


def entry_row(entry: dict, key: str = 'miou') -> dict:
    """Return the summary row of a worst-frame entry (without its thumbnails)."""
    return {k: entry[k] for k in ('bag', 'stamp_ns', 'index', key)}


def write_thumbs(entries: list[dict], report_dir: Path, key: str = 'miou') -> list[dict]:
    """
    Write the PNGs of worst-frame entries into ``<report_dir>/thumbs``; return schema rows.

    Entries ranked by another ``key`` than mIoU (``pq``) get file names that start with it.
    """
    thumbs = Path(report_dir) / 'thumbs'
    thumbs.mkdir(parents=True, exist_ok=True)
    tag = '' if key == 'miou' else f'{key}_'
    rows = []
    for rank, entry in enumerate(entries):
        slug = re.sub(r'[^A-Za-z0-9_.-]+', '_', entry['bag']).strip('_') or 'bag'
        row = entry_row(entry, key)
        for kind in THUMB_KINDS:
            name = f'{tag}{rank:02d}_{slug}_{entry["index"]:06d}_{kind}.png'
            (thumbs / name).write_bytes(entry['png'][kind])
            row[kind] = f'thumbs/{name}'
        rows.append(row)
    return rows


def metrics_of(matrix: ConfusionMatrix | None, class_names: list[str]) -> dict:
    """Return miou, pixel_accuracy, fw_iou, per_class_iou and confusion (None without GT)."""
    if matrix is None or not matrix.matrix.sum():
        return {'miou': None, 'pixel_accuracy': None, 'fw_iou': None,
                'per_class_iou': dict.fromkeys(class_names),
                'confusion': None if matrix is None else matrix.matrix.tolist()}
    iou = matrix.iou()
    return json_safe({'miou': matrix.miou(), 'pixel_accuracy': matrix.pixel_accuracy(),
                      'fw_iou': matrix.frequency_weighted_iou(),
                      'per_class_iou': {name: float(iou[i]) for i, name in
                                        enumerate(class_names)},
                      'confusion': matrix.matrix.tolist()})


def panoptic_metrics(pq: PanopticQuality | None, class_names: list[str]) -> dict | None:
    """Return PQ, SQ, RQ (all, things, stuff, per class) and the counts; None without any."""
    if pq is None:
        return None
    names = _class_names(class_names, pq.num_classes)
    out = pq.summary(names)
    out['thing_classes'] = [names[i] for i in pq.thing_ids]
    out['counts'] = pq.to_dict()
    return json_safe(out)


def _class_names(class_names: list[str], count: int) -> list[str]:
    return [str(class_names[i]) if i < len(class_names) else str(i) for i in range(count)]


def fleet_summary(rows: list[dict], class_names: list[str], palette: np.ndarray, model: str,
                  seconds: float, worst: list[dict], extra: dict | None = None,
                  startup_seconds: float = 0.0, worst_k: int = WORST_SWITCHES) -> dict:
    """
    Return the fleet summary: dataset metrics from the sum of the bags' confusion matrices.

    Panoptic quality likewise sums the bags' per-class TP, FP, FN and IoU sums (``panoptic``
    of the rows), the result of one bag holding every frame, never a mean of per-bag PQs;
    tracking metrics combine the bags' TrackEval statistics (each bag one sequence).

    ``rows`` are per-bag rows (see :func:`mask2former_ros.offline.fleet.bag_row`); skipped
    (resumed) bags count with the results of the run that completed them. The headline ``fps``
    is the processing rate: frames processed in this run / the summed ``seconds`` the bags took
    (per worker; with N workers the fleet runs up to N times faster); ``seconds`` is the wall
    time of the run, ``startup_seconds`` its model loading and ``wall_fps`` frames / ``seconds``;
    ``worst_k`` frames of most ID switches are listed.
    """
    total, panoptic = None, None
    for row in rows:
        if row.get('confusion') is not None and row['status'] in ('ok', 'skipped'):
            matrix = ConfusionMatrix.from_matrix(row['confusion'])
            total = matrix if total is None else total + matrix
        if row.get('panoptic') is not None and row['status'] in ('ok', 'skipped'):
            counts = PanopticQuality.from_dict(row['panoptic'])
            panoptic = counts if panoptic is None else panoptic.merge(counts)
    frames = sum(row['frames']['processed'] for row in rows if row['status'] != 'failed')
    processed_now = sum(row['frames']['processed'] for row in rows if row['status'] == 'ok')
    dataset = {'frames': frames, 'bags': len(rows),
               'bags_failed': sum(row['status'] == 'failed' for row in rows)}
    dataset.update(metrics_of(total, class_names))
    if panoptic is not None:
        dataset['panoptic'] = panoptic_metrics(panoptic, class_names)
        dataset['pq'] = dataset['panoptic']['all']['pq']
    tracking, switches = fleet_tracking(rows, worst_k)
    if tracking is not None:
        dataset['tracking'] = dict(tracking, most_id_switches=switches)
    processing = sum(row.get('seconds') or 0.0 for row in rows if row['status'] == 'ok')
    dataset.update({'fps': round(processed_now / processing, 3) if processing > 0 else 0.0,
                    'fps_basis': FPS_BASIS, 'processing_seconds': round(processing, 3),
                    'seconds': round(seconds, 3), 'startup_seconds': round(startup_seconds, 3),
                    'wall_fps': round(processed_now / seconds, 3) if seconds > 0 else 0.0})
    out = {'classes': list(class_names),
           'palette': np.asarray(palette).astype(int).tolist(),
           'ignore_index': IGNORE_LABEL, 'model': model, 'dataset': dataset, 'bags': rows,
           'worst_frames': worst}
    out.update(extra or {})
    return json_safe(out)
