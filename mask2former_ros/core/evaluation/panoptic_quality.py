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
Panoptic quality (PQ, SQ, RQ) by the COCO panopticapi rules, accumulated over frames (numpy).

A frame is a semantic label map and a uint16 instance-id map per side. Pixels of a stuff class
form one segment per class (their instance ids are ignored); pixels of a thing class form one
segment per (class, instance id). In the ground truth, thing pixels with instance id 0 are the
class's crowd region and ``ignore_label`` is void; in the prediction ``ignore_label`` (the
engines' ``NO_SEGMENT``) is unlabelled and thing pixels with id 0 form one segment per class.

Matching as ``panopticapi.evaluation.pq_compute_single_core``: a ground-truth and a predicted
segment of the same class match when IoU > 0.5, the prediction's pixels on void left out of the
union; crowd segments never match nor count as FN; an unmatched prediction is no FP when more
than half of it lies on void or on the crowd of its class. Frames, bags and fleets add up by
summing each class's TP, FP, FN and IoU sum; PQ is then averaged over the classes with
TP + FP + FN > 0.
"""

from typing import Iterable, Sequence

from mask2former_ros.core.results import IGNORE_LABEL
import numpy as np

_BINCOUNT_LIMIT = 1 << 22  # key ranges up to this are compacted by bincount, larger by np.unique


def _compact(keys: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the distinct keys (< size), their pixel counts and each pixel's index among them."""
    flat = keys.reshape(-1)
    if size <= _BINCOUNT_LIMIT:
        counts = np.bincount(flat, minlength=size)
        present = np.flatnonzero(counts)
        lut = np.zeros(size, dtype=np.int64)
        lut[present] = np.arange(present.size)
        return present, counts[present], lut[flat]
    present, index, counts = np.unique(flat, return_inverse=True, return_counts=True)
    return present, counts, index.reshape(-1)


class PanopticQuality:
    """Per-class TP, FP, FN and IoU sums of panoptic segmentations; adds frames, bags, fleets."""

    def __init__(self, num_classes: int, thing_ids: Iterable[int],
                 ignore_label: int = IGNORE_LABEL) -> None:
        """Start empty for classes 0..num_classes-1, of which ``thing_ids`` are things."""
        if num_classes < 1:
            raise ValueError(f'num_classes must be at least 1, got {num_classes}')
        if 0 <= ignore_label < num_classes:
            raise ValueError(f'ignore_label {ignore_label} is one of the {num_classes} classes')
        self.num_classes = int(num_classes)
        self.thing_ids = tuple(sorted({int(i) for i in thing_ids}))
        bad = [i for i in self.thing_ids if not 0 <= i < num_classes]
        if bad:
            raise ValueError(f'thing ids {bad} are not classes 0..{num_classes - 1}')
        self.ignore_label = int(ignore_label)
        self.is_thing = np.zeros(num_classes, dtype=bool)
        self.is_thing[list(self.thing_ids)] = True
        self.tp = np.zeros(num_classes, dtype=np.int64)
        self.fp = np.zeros(num_classes, dtype=np.int64)
        self.fn = np.zeros(num_classes, dtype=np.int64)
        self.iou_sum = np.zeros(num_classes, dtype=np.float64)

    def _empty(self) -> 'PanopticQuality':
        return PanopticQuality(self.num_classes, self.thing_ids, self.ignore_label)

    def _segments(self, labels: np.ndarray, instances: np.ndarray | None, side: str,
                  width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
        """
        Return each segment's class, instance id and area, each pixel's segment, segment count.

        ``width`` bounds the instance ids (keys are ``label * width + id``); stuff and void
        pixels' ids are dropped by merging their keys into one segment per class.
        """
        top = int(labels.max()) if labels.size else 0
        keys = labels.astype(np.int64)
        if instances is not None:
            keys *= width
            keys += instances
        size = (top + 1) * (width if instances is not None else 1)
        present, counts, index = _compact(keys, size)
        classes = present // width if instances is not None else present
        ids = present % width if instances is not None else np.zeros_like(present)
        bad = np.unique(classes[(classes >= self.num_classes) & (classes != self.ignore_label)])
        if bad.size:
            raise ValueError(f'{side} labels {bad.tolist()} are neither classes '
                             f'0..{self.num_classes - 1} nor {self.ignore_label}')
        valid = classes < self.num_classes
        thing = np.zeros(classes.shape, dtype=bool)
        thing[valid] = self.is_thing[classes[valid]]
        ids = np.where(thing, ids, 0)
        merged, seg_of_key = np.unique(classes * width + ids, return_inverse=True)
        seg_of_key = seg_of_key.reshape(-1)
        area = np.bincount(seg_of_key, weights=counts, minlength=merged.size).astype(np.int64)
        return merged // width, merged % width, area, seg_of_key[index], merged.size

    def add(self, pred_labels: np.ndarray, pred_instances: np.ndarray | None,
            gt_labels: np.ndarray, gt_instances: np.ndarray) -> 'PanopticQuality':
        """Add one frame; return its own statistics (e.g. for its PQ) as a new accumulator."""
        shapes = {pred_labels.shape, gt_labels.shape, gt_instances.shape}
        if pred_instances is not None:
            shapes.add(pred_instances.shape)
        if len(shapes) != 1 or pred_labels.ndim != 2:
            raise ValueError(f'prediction {pred_labels.shape} and ground truth '
                             f'{gt_labels.shape} label and instance maps must be one (H, W)')
        frame = self._empty()
        if not gt_labels.size:
            return frame
        width = int(gt_instances.max()) + 1
        if pred_instances is not None:
            width = max(width, int(pred_instances.max()) + 1)
        g_cls, g_id, g_area, g_pix, n_g = self._segments(gt_labels, gt_instances, 'ground truth',
                                                         width)
        p_cls, _, p_area, p_pix, n_p = self._segments(pred_labels, pred_instances, 'prediction',
                                                      width)
        inter = np.bincount(g_pix * n_p + p_pix, minlength=n_g * n_p).reshape(n_g, n_p)
        frame._match(inter, g_cls, g_id, g_area, p_cls, p_area)
        self.merge(frame)
        return frame

    def _match(self, inter: np.ndarray, g_cls: np.ndarray, g_id: np.ndarray, g_area: np.ndarray,
               p_cls: np.ndarray, p_area: np.ndarray) -> None:
        """Count one frame's TP, FP, FN and IoU from the segments' intersection matrix."""
        c = self.num_classes
        g_void = g_cls >= c
        p_void = p_cls >= c
        g_crowd = ~g_void & self.is_thing[np.minimum(g_cls, c - 1)] & (g_id == 0)
        on_void = inter[g_void].sum(0)  # each prediction's pixels on ground-truth void
        union = p_area[None, :] + g_area[:, None] - inter - on_void[None, :]
        candidate = ((inter > 0) & (g_cls[:, None] == p_cls[None, :])
                     & ~(g_void | g_crowd)[:, None] & ~p_void[None, :])
        iou = np.where(candidate, inter / np.maximum(union, 1), 0.0)
        matched = iou > 0.5  # at most one per row and column: segments do not overlap
        rows, cols = np.nonzero(matched)
        self.tp += np.bincount(g_cls[rows], minlength=c)
        self.iou_sum += np.bincount(g_cls[rows], weights=iou[rows, cols], minlength=c)
        g_matched = matched.any(1)
        p_matched = matched.any(0)
        missed = ~g_matched & ~g_void & ~g_crowd
        self.fn += np.bincount(g_cls[missed], minlength=c)
        crowd_of = np.full(c, -1)
        crowd_of[g_cls[g_crowd]] = np.flatnonzero(g_crowd)
        spare = np.flatnonzero(~p_matched & ~p_void)
        ignored = on_void[spare].astype(np.int64)
        crowd_rows = crowd_of[p_cls[spare]]
        has_crowd = crowd_rows >= 0
        ignored[has_crowd] += inter[crowd_rows[has_crowd], spare[has_crowd]]
        false_pos = spare[ignored * 2 <= p_area[spare]]
        self.fp += np.bincount(p_cls[false_pos], minlength=c)

    def _check_same(self, other: 'PanopticQuality') -> None:
        if (other.num_classes, other.thing_ids) != (self.num_classes, self.thing_ids):
            raise ValueError(f'cannot add panoptic quality of {other.num_classes} classes '
                             f'(things {list(other.thing_ids)}) to {self.num_classes} classes '
                             f'(things {list(self.thing_ids)})')

    def merge(self, other: 'PanopticQuality') -> 'PanopticQuality':
        """Add another accumulator's counts (frames, bags, workers) in place; return self."""
        self._check_same(other)
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.iou_sum += other.iou_sum
        return self

    def __iadd__(self, other: 'PanopticQuality') -> 'PanopticQuality':
        """Add another accumulator in place."""
        return self.merge(other)

    def __add__(self, other: 'PanopticQuality') -> 'PanopticQuality':
        """Return the sum of two accumulators of the same classes."""
        return self._empty().merge(self).merge(other)

    def to_dict(self) -> dict:
        """Return the counts as JSON-able lists (for workers, fleets and summaries)."""
        return {'num_classes': self.num_classes, 'thing_ids': list(self.thing_ids),
                'ignore_label': self.ignore_label, 'tp': self.tp.tolist(),
                'fp': self.fp.tolist(), 'fn': self.fn.tolist(),
                'iou_sum': self.iou_sum.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> 'PanopticQuality':
        """Return the accumulator that :meth:`to_dict` wrote."""
        out = cls(data['num_classes'], data['thing_ids'], data.get('ignore_label', IGNORE_LABEL))
        for name in ('tp', 'fp', 'fn', 'iou_sum'):
            values = np.asarray(data[name], dtype=getattr(out, name).dtype)
            if values.shape != (out.num_classes,):
                raise ValueError(f'{name} has {values.shape} values, expected '
                                 f'{out.num_classes}')
            getattr(out, name)[:] = values
        return out

    def _average(self, keep: np.ndarray) -> dict:
        """Return the mean PQ, SQ, RQ over the kept classes that have TP + FP + FN > 0."""
        denom = self.tp + 0.5 * self.fp + 0.5 * self.fn
        keep = keep & (denom > 0)
        n = int(keep.sum())
        if not n:
            return {'pq': float('nan'), 'sq': float('nan'), 'rq': float('nan'), 'n': 0}
        tp, iou, d = self.tp[keep], self.iou_sum[keep], denom[keep]
        sq = np.where(tp > 0, iou / np.maximum(tp, 1), 0.0)
        return {'pq': float((iou / d).mean()), 'sq': float(sq.mean()),
                'rq': float((tp / d).mean()), 'n': n}

    def pq(self) -> float:
        """Return PQ over all classes with TP + FP + FN > 0 (NaN when none)."""
        return self._average(np.ones(self.num_classes, dtype=bool))['pq']

    def summary(self, class_names: Sequence[str] | None = None) -> dict:
        """Return PQ, SQ, RQ for all classes, things and stuff, and per class (JSON-able)."""
        names = list(class_names) if class_names else [str(i) for i in range(self.num_classes)]
        per_class = {}
        for i in np.flatnonzero(self.tp + self.fp + self.fn > 0):
            tp, fp, fn = int(self.tp[i]), int(self.fp[i]), int(self.fn[i])
            iou, denom = float(self.iou_sum[i]), tp + 0.5 * fp + 0.5 * fn
            per_class[names[i]] = {'pq': iou / denom, 'sq': iou / tp if tp else 0.0,
                                   'rq': tp / denom, 'tp': tp, 'fp': fp, 'fn': fn,
                                   'iou_sum': iou, 'thing': bool(self.is_thing[i])}
        return {'all': self._average(np.ones(self.num_classes, dtype=bool)),
                'things': self._average(self.is_thing),
                'stuff': self._average(~self.is_thing), 'per_class': per_class}
