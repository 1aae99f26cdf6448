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

"""Segmentation metrics: confusion matrix, per-class IoU, mIoU, pixel accuracy, fwIoU."""

from dataclasses import dataclass

import cv2
from mask2former_ros.core.results import IGNORE_LABEL
import numpy as np

EXACT_FLOAT32_COUNT = 2 ** 24  # every count below this is exact in float32


def _pair_counts(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """
    Return the 256 x 256 int64 counts of (truth, pred) pairs of two uint8 label maps.

    OpenCV's 2-D histogram reads both maps in place instead of packing the pairs into one intp
    array for ``np.bincount`` (segment_bag's evaluate stage in ``bench/bench_bag.py``: 2.7-7.7 ms
    per 1024x2048 frame, 5.3-12.6 ms before). Its float32 counts are exact below 2**24 pixels;
    larger maps take the bincount.
    """
    if truth.size < EXACT_FLOAT32_COUNT:
        t, p = np.ascontiguousarray(truth), np.ascontiguousarray(pred)
        return cv2.calcHist([t, p], [0, 1], None, [256, 256], [0, 256, 0, 256]).astype(np.int64)
    pairs = truth.astype(np.intp)
    pairs <<= 8
    pairs |= pred
    return np.bincount(pairs.reshape(-1), minlength=65536).reshape(256, 256)


@dataclass
class ConfusionMatrix:
    """Accumulates a (num_classes x num_classes) confusion matrix (rows: truth, cols: pred)."""

    num_classes: int
    ignore_index: int = IGNORE_LABEL

    def __post_init__(self) -> None:
        """Create the empty matrix."""
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    @classmethod
    def from_matrix(cls, matrix, ignore_index: int = IGNORE_LABEL) -> 'ConfusionMatrix':
        """Return a confusion matrix holding ``matrix`` (C x C counts, rows: truth)."""
        counts = np.asarray(matrix, dtype=np.int64)
        if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
            raise ValueError(f'a confusion matrix must be square, got shape {counts.shape}')
        out = cls(counts.shape[0], ignore_index)
        out.matrix = counts.copy()
        return out

    def __add__(self, other: 'ConfusionMatrix') -> 'ConfusionMatrix':
        """Return the sum of two matrices of the same classes (e.g. two bags of a dataset)."""
        if other.num_classes != self.num_classes:
            raise ValueError(f'cannot add confusion matrices of {self.num_classes} and '
                             f'{other.num_classes} classes')
        return ConfusionMatrix.from_matrix(self.matrix + other.matrix, self.ignore_index)

    def update(self, truth: np.ndarray, pred: np.ndarray) -> None:
        """Add a pair of equal-shape label maps; truth pixels at ignore_index are skipped."""
        if truth.shape != pred.shape:
            raise ValueError(f'ground truth {truth.shape} and prediction {pred.shape} differ '
                             'in size')
        if truth.dtype == np.uint8 and pred.dtype == np.uint8 and self.num_classes <= 256:
            # Fast path: count all 256 x 256 (truth, pred) pairs at once; the ignore index and
            # ids beyond the classes fall outside the kept C x C block.
            counts = _pair_counts(truth, pred)[:self.num_classes, :self.num_classes]
            if 0 <= self.ignore_index < self.num_classes:
                counts[self.ignore_index, :] = 0
            self.matrix += counts
            return
        t = truth.reshape(-1).astype(np.int64)
        p = pred.reshape(-1).astype(np.int64)
        keep = (t != self.ignore_index) & (t < self.num_classes) & (p < self.num_classes)
        idx = t[keep] * self.num_classes + p[keep]
        self.matrix += np.bincount(idx, minlength=self.num_classes ** 2).reshape(
            self.num_classes, self.num_classes)

    def iou(self) -> np.ndarray:
        """Per-class IoU; NaN for classes absent from both truth and prediction."""
        tp = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(0) + self.matrix.sum(1) - tp
        with np.errstate(invalid='ignore', divide='ignore'):
            return np.where(union > 0, tp / np.maximum(union, 1), np.nan)

    def miou(self, present_only: bool = True) -> float:
        """Mean IoU over classes present in the ground truth (or all non-NaN classes)."""
        iou = self.iou()
        if present_only:
            iou = iou[self.matrix.sum(1) > 0]
        iou = iou[~np.isnan(iou)]
        return float(iou.mean()) if iou.size else float('nan')

    def pixel_accuracy(self) -> float:
        """Fraction of counted pixels labelled correctly."""
        total = self.matrix.sum()
        return float(np.trace(self.matrix) / total) if total else float('nan')

    def frequency_weighted_iou(self) -> float:
        """Return the IoU of each class weighted by its share of the ground-truth pixels."""
        total = self.matrix.sum()
        if not total:
            return float('nan')
        freq = self.matrix.sum(1) / total
        iou = self.iou()
        present = freq > 0
        return float((freq[present] * iou[present]).sum())

    def summary(self, class_names: list[str] | None = None) -> dict:
        """Return a JSON-serialisable summary: mIoU, pixel accuracy, per-class IoU, matrix."""
        names = class_names or [str(i) for i in range(self.num_classes)]
        present = self.matrix.sum(1) > 0
        per_class = {names[i]: round(float(v), 6) for i, v in enumerate(self.iou())
                     if present[i] or self.matrix[:, i].sum() > 0}
        return {'miou': self.miou(), 'pixel_accuracy': self.pixel_accuracy(),
                'fw_iou': self.frequency_weighted_iou(), 'per_class_iou': per_class,
                'confusion_matrix': self.matrix.tolist()}


def miou(truth: np.ndarray, pred: np.ndarray, num_classes: int) -> float:
    """Return the mIoU of one pair of label maps over the classes present in the ground truth."""
    cm = ConfusionMatrix(num_classes)
    cm.update(truth, pred)
    return cm.miou()
