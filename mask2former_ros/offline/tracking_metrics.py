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
Tracking metrics of instance-id images over time: HOTA, DetA, AssA, IDF1, MOTA, ID switches.

Computed by TrackEval (``trackeval``, the reference implementation of HOTA and of the CLEAR MOT
and identity metrics) from mask IoU, as TrackEval scores MOTS: per frame, every ground-truth
object (an id of the instance ground truth) is compared with every predicted one (an id of the
predicted instance image) by the IoU of their masks, zero where their classes differ. A bag is
one sequence; a fleet combines the bags' per-sequence statistics with TrackEval's
``combine_sequences`` (sums of the counts, AssA weighted by true positives), never by averaging
per-bag scores. Predicted objects lying mostly (> 50 %) on crowd pixels (thing class, id 0 in
the ground truth) are left out, as TrackEval's MOTS preprocessing does with ignore regions.

TrackEval is installed without its optional dependencies (``pip install --no-deps
trackeval``): its package metadata requires ``opencv-python``, which would replace this
package's headless OpenCV; the metrics need only numpy and scipy.
"""

from typing import Any, Iterable

from mask2former_ros.offline.errors import SegmentBagError
import numpy as np
from scipy.optimize import linear_sum_assignment

INSTALL_HINT = ('tracking metrics need TrackEval: pip install --no-deps trackeval==1.3.0 '
                '(scripts/setup.sh does)')
METRICS = ('HOTA', 'CLEAR', 'Identity')
CLEAR_THRESHOLD = 0.5  # TrackEval's default similarity for a CLEAR / identity match
CROWD_SHARE = 0.5
WORST_SWITCHES = 6  # frames with the most ID switches kept in a bag's summary by default


def trackeval_metrics() -> dict[str, Any]:
    """Return TrackEval's HOTA, CLEAR and Identity metric objects; ImportError with a hint."""
    import contextlib
    import io
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # it prints missing optional datasets
            from trackeval.metrics import CLEAR, HOTA, Identity
    except ImportError as exc:
        raise ImportError(f'{INSTALL_HINT} ({exc})') from None
    quiet = {'PRINT_CONFIG': False}
    return {'HOTA': HOTA(), 'CLEAR': CLEAR(dict(quiet, THRESHOLD=CLEAR_THRESHOLD)),
            'Identity': Identity(dict(quiet, THRESHOLD=CLEAR_THRESHOLD))}


def check_tracking_metrics() -> None:
    """Raise SegmentBagError (with how to install it) unless TrackEval can be imported."""
    try:
        trackeval_metrics()
    except ImportError as exc:
        raise SegmentBagError(f'--gt-track-ids: {exc}') from None


def tracking_summary(result: dict, worst: int) -> dict:
    """
    Return a bag summary's tracking metrics: the headline numbers and the worst frames.

    ``per_frame_ids``: the same metrics of the engine's per-frame ids (tracking on only).
    """
    frames = sorted(result['switch_frames'], key=lambda f: (-f[2], f[0]))[:worst]
    out = dict(result['summary'], most_id_switches=[
        {'index': index, 'stamp_ns': stamp, 'id_switches': count}
        for index, stamp, count in frames])
    if 'per_frame_ids' in result:
        out['per_frame_ids'] = result['per_frame_ids']['summary']
    return out


def tracking_row(result: dict | None, worst: int) -> dict | None:
    """Return a fleet row's tracking part: statistics to combine, headline, worst frames."""
    if result is None:
        return None
    row = dict(tracking_summary(result, worst), counts=result['counts'])
    if 'per_frame_ids' in result:
        row['per_frame_counts'] = result['per_frame_ids']['counts']
    return row


def fleet_tracking(rows: list[dict], worst: int) -> tuple[dict | None, list[dict]]:
    """
    Return the fleet's tracking metrics (None without any) and its frames of most ID switches.

    The metrics combine the bags' statistics (:func:`combine`), ``per_frame_ids`` those of the
    engine's per-frame ids where every bag has them; the frames are the ``worst`` of all bags'
    (bag, index, stamp, ID switches), most switches first.
    """
    done = [row for row in rows if row.get('tracking') and row['status'] in ('ok', 'skipped')]
    if not done:
        return None, []
    frames = [dict(entry, bag=row['bag']) for row in done
              for entry in row['tracking']['most_id_switches']]
    frames.sort(key=lambda f: (-f['id_switches'], f['bag'], f['index']))
    metrics = combine([row['tracking']['counts'] for row in done])
    if all('per_frame_counts' in row['tracking'] for row in done):
        metrics['per_frame_ids'] = combine([row['tracking']['per_frame_counts'] for row in done])
    return metrics, frames[:worst]


def _objects(ids: np.ndarray, labels: np.ndarray, num_classes: int) -> tuple[np.ndarray, ...]:
    """Return (present ids, their class, their pixel count, the ids numbered 1..N per pixel)."""
    flat = ids.ravel()
    counts = np.bincount(flat, minlength=1)
    present = np.flatnonzero(counts)
    present = present[present > 0]
    lut = np.zeros(len(counts), np.int64)
    lut[present] = np.arange(1, len(present) + 1)
    compact = lut[flat]
    by_class = np.bincount(compact * num_classes + labels.ravel().astype(np.int64),
                           minlength=(len(present) + 1) * num_classes)
    classes = by_class.reshape(len(present) + 1, num_classes)[1:].argmax(1)
    return present, classes, counts[present], compact


def frame_similarity(truth_labels: np.ndarray, truth_ids: np.ndarray, labels: np.ndarray,
                     ids: np.ndarray,
                     thing_ids: Iterable[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Return (ground-truth ids, predicted ids, their mask IoU (G, P)) of one frame.

    IoU is zero between objects of different classes (a class is the majority label of an
    object's pixels). Predicted objects with more than half their pixels on crowd (thing
    label, id 0 in the ground truth) are left out.
    """
    thing_ids = list(thing_ids)
    num_classes = int(max(truth_labels.max(), labels.max(), *thing_ids)) + 1
    things = np.zeros(num_classes, bool)
    things[thing_ids] = True
    gt_ids, gt_class, gt_area, gt_index = _objects(truth_ids, truth_labels, num_classes)
    pr_ids, pr_class, pr_area, pr_index = _objects(ids, labels, num_classes)
    crowd = (things[truth_labels.ravel()] & (truth_ids.ravel() == 0)).astype(np.int64)
    size = len(pr_ids) + 1
    pairs = np.bincount((gt_index * size + pr_index) * 2 + crowd,
                        minlength=(len(gt_ids) + 1) * size * 2).reshape(len(gt_ids) + 1, size, 2)
    on_crowd = pairs[0, 1:, 1]
    keep = on_crowd <= CROWD_SHARE * pr_area
    inter = pairs[1:, 1:].sum(2).astype(np.float64)
    union = gt_area[:, None] + pr_area[None, :] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    iou[gt_class[:, None] != pr_class[None, :]] = 0.0
    return gt_ids, pr_ids[keep], iou[:, keep]


class TrackingEvaluation:
    """One sequence (a bag): the frames' objects and similarities, scored at the end."""

    def __init__(self, thing_ids: Iterable[int]) -> None:
        """Score objects; pixels of ``thing_ids`` with ground-truth id 0 are crowd."""
        self.thing_ids = tuple(thing_ids)
        self.frames: list[tuple[int, int]] = []  # (index, stamp)
        self.gt_ids: list[np.ndarray] = []
        self.tracker_ids: list[np.ndarray] = []
        self.similarity: list[np.ndarray] = []

    def add(self, index: int, stamp: int, truth_labels: np.ndarray, truth_ids: np.ndarray,
            labels: np.ndarray, ids: np.ndarray) -> None:
        """Add one frame: ground-truth labels and ids, predicted labels and ids (0 = none)."""
        gt, pr, iou = frame_similarity(truth_labels, truth_ids, labels, ids, self.thing_ids)
        self.frames.append((int(index), int(stamp)))
        self.gt_ids.append(gt)
        self.tracker_ids.append(pr)
        self.similarity.append(iou)

    def data(self) -> dict[str, Any]:
        """Return the sequence in TrackEval's form (ids numbered 0..n-1 over the sequence)."""
        return sequence_data(self.gt_ids, self.tracker_ids, self.similarity)

    def result(self) -> dict[str, Any]:
        """Return ``counts`` (per-metric statistics, JSON-ready), ``summary`` and ``switches``."""
        data = self.data()
        counts = {name: metric.eval_sequence(data)
                  for name, metric in trackeval_metrics().items()}
        switches = [(index, stamp, count) for (index, stamp), count in
                    zip(self.frames, id_switches_per_frame(data), strict=True) if count]
        return {'counts': to_json(counts), 'summary': summary(counts, len(self.frames)),
                'switch_frames': switches}


def sequence_data(gt_ids: list[np.ndarray], tracker_ids: list[np.ndarray],
                  similarity: list[np.ndarray]) -> dict[str, Any]:
    """Return TrackEval's input dict of one sequence from per-frame ids and similarities."""
    def number(per_frame: list[np.ndarray]) -> tuple[list[np.ndarray], int]:
        known = np.unique(np.concatenate(per_frame)) if per_frame else np.zeros(0, int)
        return [np.searchsorted(known, ids).astype(int) for ids in per_frame], len(known)

    gt, num_gt = number(gt_ids)
    tracker, num_tracker = number(tracker_ids)
    return {'num_timesteps': len(gt), 'num_gt_ids': num_gt, 'num_tracker_ids': num_tracker,
            'num_gt_dets': sum(len(ids) for ids in gt),
            'num_tracker_dets': sum(len(ids) for ids in tracker), 'gt_ids': gt,
            'tracker_ids': tracker, 'similarity_scores': list(similarity)}


def id_switches_per_frame(data: dict[str, Any],
                          threshold: float = CLEAR_THRESHOLD) -> list[int]:
    """
    Return the ID switches of each frame, as TrackEval's CLEAR counts them.

    TrackEval gives the total only; this replays its per-frame matching (continue last
    frame's matches first, then the highest similarity; a switch is a ground-truth object
    matched to another id than at its previous match). The totals agree (tested).
    """
    prev_any = np.full(data['num_gt_ids'], np.nan)  # last matched tracker id, any frame
    prev_last = np.full(data['num_gt_ids'], np.nan)  # matched tracker id in the last frame
    eps = np.finfo('float').eps
    out = []
    for gt, tracker, similarity in zip(data['gt_ids'], data['tracker_ids'],
                                       data['similarity_scores'], strict=True):
        if len(gt) == 0 or len(tracker) == 0:
            out.append(0)  # TrackEval skips the frame: last frame's matches stay
            continue
        score = 1000.0 * (tracker[None, :] == prev_last[gt[:, None]]) + similarity
        score[similarity < threshold - eps] = 0.0
        rows, cols = linear_sum_assignment(-score)
        ok = score[rows, cols] > eps
        matched_gt, matched_tracker = gt[rows[ok]], tracker[cols[ok]]
        before = prev_any[matched_gt]
        out.append(int(np.sum(~np.isnan(before) & (matched_tracker != before))))
        prev_any[matched_gt] = matched_tracker
        prev_last[:] = np.nan
        prev_last[matched_gt] = matched_tracker
    return out


def summary(counts: dict[str, dict], frames: int | None = None) -> dict[str, Any]:
    """Return the headline numbers of per-metric statistics (one sequence or combined)."""
    hota, clear, identity = counts['HOTA'], counts['CLEAR'], counts['Identity']
    out = {'hota': float(np.mean(hota['HOTA'])), 'deta': float(np.mean(hota['DetA'])),
           'assa': float(np.mean(hota['AssA'])), 'idf1': float(identity['IDF1']),
           'mota': float(clear['MOTA']), 'id_switches': int(clear['IDSW']),
           'idtp': int(identity['IDTP']), 'idfp': int(identity['IDFP']),
           'idfn': int(identity['IDFN']), 'tp': int(clear['CLR_TP']),
           'fp': int(clear['CLR_FP']), 'fn': int(clear['CLR_FN']),
           'fragmentations': int(clear['Frag'])}
    if frames is not None:
        out['frames'] = frames
    return out


def combine(per_sequence: list[dict[str, dict]]) -> dict[str, Any] | None:
    """
    Return the summary of several sequences' ``counts`` (e.g. a fleet's bags), or None.

    TrackEval's ``combine_sequences`` of each metric: the result of one evaluation over all
    the sequences, not a mean of their scores.
    """
    if not per_sequence:
        return None
    metrics = trackeval_metrics()
    combined = {name: metric.combine_sequences(
        {str(k): from_json(seq[name]) for k, seq in enumerate(per_sequence)})
        for name, metric in metrics.items()}
    return summary(combined)


def to_json(counts: dict[str, dict]) -> dict[str, dict]:
    """Return per-metric statistics with arrays as lists and numpy scalars as Python numbers."""
    def plain(value: Any) -> Any:
        return value.tolist() if isinstance(value, np.ndarray) else \
            value.item() if isinstance(value, np.generic) else value
    return {name: {field: plain(value) for field, value in res.items()}
            for name, res in counts.items()}


def from_json(res: dict[str, Any]) -> dict[str, Any]:
    """Invert :func:`to_json` for one metric (lists back to arrays)."""
    return {field: np.asarray(value, dtype=float) if isinstance(value, list) else value
            for field, value in res.items()}
