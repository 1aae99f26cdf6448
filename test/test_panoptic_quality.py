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

"""PQ, SQ, RQ of core.evaluation.panoptic_quality: hand-built cases, COCO loop, torchmetrics."""

import json
import math

from mask2former_ros.core.evaluation.panoptic_quality import PanopticQuality
import numpy as np
import pytest

# Classes: 0 road (stuff), 1 sky (stuff), 2 car (thing), 3 person (thing).
THINGS = (2, 3)
VOID = 255


def frame(rows: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """
    Return labels and instance ids drawn as text, one character per pixel.

    ``r`` road, ``s`` sky, ``.`` void (255), ``c``/``C`` car 1/2, ``p``/``P`` person 1/2,
    ``x`` car crowd (instance 0), ``y`` person crowd.
    """
    code = {'r': (0, 0), 's': (1, 0), '.': (VOID, 0), 'c': (2, 1), 'C': (2, 2), 'p': (3, 1),
            'P': (3, 2), 'x': (2, 0), 'y': (3, 0)}
    pairs = np.array([[code[ch] for ch in row] for row in rows])
    return pairs[..., 0].astype(np.uint8), pairs[..., 1].astype(np.uint16)


def pq_of(pred_rows: list[str], gt_rows: list[str]) -> PanopticQuality:
    """Return the accumulator after one frame drawn as text."""
    metric = PanopticQuality(4, THINGS)
    metric.add(*frame(pred_rows), *frame(gt_rows))
    return metric


GT = ['rrrrrrrrrr',
      'rrcccccrrr',
      'rrcccccrrr',
      'sssssssppp',
      'sssssssppp']


def test_perfect_prediction_has_pq_one():
    summary = pq_of(GT, GT).summary(['road', 'sky', 'car', 'person'])
    assert summary['all'] == {'pq': 1.0, 'sq': 1.0, 'rq': 1.0, 'n': 4}
    assert summary['things']['n'] == 2 and summary['stuff']['n'] == 2
    assert summary['per_class']['car'] == {'pq': 1.0, 'sq': 1.0, 'rq': 1.0, 'tp': 1, 'fp': 0,
                                           'fn': 0, 'iou_sum': 1.0, 'thing': True}


def test_one_false_positive_and_one_false_negative():
    # A second (wrong) car on the road: FP of car; the road still matches (IoU 18/20).
    pred = ['rrrrrrrCCr',
            'rrcccccrrr',
            'rrcccccrrr',
            'sssssssppp',
            'sssssssppp']
    metric = pq_of(pred, GT)
    assert (metric.tp.tolist(), metric.fp.tolist(), metric.fn.tolist()) == (
        [1, 1, 1, 1], [0, 0, 1, 0], [0, 0, 0, 0])
    car = metric.summary()['per_class']['2']
    assert car['rq'] == pytest.approx(1 / 1.5) and car['pq'] == pytest.approx(1 / 1.5)
    # The person predicted as sky: FN of person; the grown sky still matches (IoU 14/20).
    pred = ['rrrrrrrrrr',
            'rrcccccrrr',
            'rrcccccrrr',
            'ssssssssss',
            'ssssssssss']
    metric = pq_of(pred, GT)
    assert metric.fn.tolist() == [0, 0, 0, 1] and metric.fp.tolist() == [0, 0, 0, 0]
    assert metric.iou_sum[1] == pytest.approx(14 / 20)
    summary = metric.summary()
    assert summary['per_class']['3']['pq'] == 0.0
    assert summary['things']['pq'] == pytest.approx(0.5)  # car 1, person 0
    assert summary['stuff']['pq'] == pytest.approx((1 + 14 / 20) / 2)
    assert summary['all']['sq'] == pytest.approx((1 + 14 / 20 + 1 + 0) / 4)


def test_iou_just_above_and_below_one_half():
    gt = ['cccccccccc', 'rrrrrrrrrr']
    # 6 of 10 car pixels predicted: IoU 0.6 > 0.5 -> TP.
    above = pq_of(['ccccccrrrr', 'rrrrrrrrrr'], gt)
    assert above.tp[2] == 1 and above.iou_sum[2] == pytest.approx(0.6)
    # 5 of 10: IoU exactly 0.5 is no match -> one FP and one FN.
    at = pq_of(['cccccrrrrr', 'rrrrrrrrrr'], gt)
    assert (at.tp[2], at.fp[2], at.fn[2]) == (0, 1, 1)
    # 10 of 10 plus 10 extra pixels (IoU 0.5 again) vs 9 extra pixels (IoU 10/19 > 0.5).
    gt2 = ['cccccccccc', 'rrrrrrrrrr', 'rrrrrrrrrr']
    assert pq_of(['cccccccccc', 'cccccccccc', 'rrrrrrrrrr'], gt2).tp[2] == 0
    just = pq_of(['cccccccccc', 'cccccccccr', 'rrrrrrrrrr'], gt2)
    assert just.tp[2] == 1 and just.iou_sum[2] == pytest.approx(10 / 19)


def test_void_pixels_leave_the_union_and_do_not_make_false_positives():
    # Ground-truth void under half the predicted car: the car matches perfectly without it.
    gt = ['rrrrrrrrrr', 'rrcccc....']
    pred = ['rrrrrrrrrr', 'rrcccccccc']
    metric = pq_of(pred, gt)
    assert metric.tp[2] == 1 and metric.iou_sum[2] == pytest.approx(1.0)
    # A predicted person mostly (3 of 4) on void: no FP; half on void (2 of 4): FP.
    gt = ['rrrrrrrrrr', 'rrrrrr....']
    assert pq_of(['rrrrrrrrrr', 'rrrrrppppr'], gt).fp[3] == 0
    assert pq_of(['rrrrrrrrrr', 'rrrrrrrppp'], gt).fp[3] == 0
    assert pq_of(['rrrrrrrrpp', 'rrrrrrrrpp'], gt).fp[3] == 1
    # Prediction void (255, no segment) is simply unlabelled: the road it leaves out is an FN.
    metric = pq_of(['..........', '..........'], ['rrrrrrrrrr', 'rrrrrrrrrr'])
    assert metric.fn.tolist() == [1, 0, 0, 0] and metric.fp.sum() == 0


def test_crowd_regions_never_match_nor_count_and_absorb_false_positives():
    gt = ['xxxxxxxxrr', 'xxxxxxxxrr']  # a car crowd (instance 0)
    # A car predicted inside the crowd: no TP, no FN for the crowd, no FP (all on crowd).
    metric = pq_of(['ccccrrrrrr', 'ccccrrrrrr'], gt)
    assert (metric.tp[2], metric.fp[2], metric.fn[2]) == (0, 0, 0)
    # A person on the car crowd is an FP: the crowd only absorbs predictions of its class.
    metric = pq_of(['pppprrrrrr', 'pppprrrrrr'], gt)
    assert metric.fp[3] == 1
    # Crowd of a class absent elsewhere leaves the class out of the averages.
    summary = pq_of(['ccccrrrrrr', 'ccccrrrrrr'], gt).summary()
    assert '2' not in summary['per_class'] and summary['things']['n'] == 0
    assert math.isnan(summary['things']['pq'])


def test_stuff_instance_ids_are_ignored_and_touching_things_stay_apart():
    gt_labels, gt_ids = frame(['ccCCrr', 'ccCCrr'])
    pred_labels, pred_ids = gt_labels.copy(), gt_ids.copy()
    pred_ids[:, 4:] = [7, 9]  # ids on road pixels do not split the road
    metric = PanopticQuality(4, THINGS)
    metric.add(pred_labels, pred_ids, gt_labels, gt_ids)
    assert metric.tp.tolist() == [1, 0, 2, 0] and metric.fp.sum() == metric.fn.sum() == 0
    # Both cars predicted as one car: it overlaps each by IoU 0.5 -> 2 FN, 1 FP.
    metric = PanopticQuality(4, THINGS)
    metric.add(pred_labels, np.where(pred_labels == 2, 1, 0).astype(np.uint16), gt_labels,
               gt_ids)
    assert (metric.tp[2], metric.fp[2], metric.fn[2]) == (0, 1, 2)


def test_bad_inputs_raise_one_clear_error():
    labels, ids = frame(GT)
    with pytest.raises(ValueError, match='labels \\[7\\] are neither classes 0..3 nor 255'):
        PanopticQuality(4, THINGS).add(np.full_like(labels, 7), ids, labels, ids)
    with pytest.raises(ValueError, match='must be one \\(H, W\\)'):
        PanopticQuality(4, THINGS).add(labels[:-1], ids[:-1], labels, ids)
    with pytest.raises(ValueError, match='thing ids \\[4\\]'):
        PanopticQuality(4, (4,))
    with pytest.raises(ValueError, match='cannot add panoptic quality'):
        PanopticQuality(4, THINGS).merge(PanopticQuality(4, (2,)))


def coco_reference(metric: PanopticQuality, pred_labels, pred_ids, gt_labels, gt_ids) -> None:
    """Add one frame by panopticapi's pq_compute_single_core loop, one boolean mask per segment."""
    c = metric.num_classes

    def segments(labels, ids, gt):
        out = {}
        for cls in np.unique(labels):
            if cls >= c:
                continue
            cls_mask = labels == cls
            for inst in (np.unique(ids[cls_mask]) if metric.is_thing[cls] else [0]):
                mask = cls_mask & (ids == inst) if metric.is_thing[cls] else cls_mask
                out[(int(cls), int(inst))] = {'mask': mask, 'area': int(mask.sum()),
                                              'crowd': gt and bool(metric.is_thing[cls])
                                              and inst == 0}
        return out

    gts, preds = segments(gt_labels, gt_ids, True), segments(pred_labels, pred_ids, False)
    void = gt_labels >= c
    gt_matched, pred_matched = set(), set()
    for gk, g in gts.items():
        for pk, p in preds.items():
            inter = int((g['mask'] & p['mask']).sum())
            if not inter or g['crowd'] or gk[0] != pk[0]:
                continue
            union = p['area'] + g['area'] - inter - int((void & p['mask']).sum())
            if inter / union > 0.5:
                metric.tp[gk[0]] += 1
                metric.iou_sum[gk[0]] += inter / union
                gt_matched.add(gk)
                pred_matched.add(pk)
    crowd = {}
    for gk, g in gts.items():
        if gk in gt_matched:
            continue
        if g['crowd']:
            crowd[gk[0]] = g['mask']
            continue
        metric.fn[gk[0]] += 1
    for pk, p in preds.items():
        if pk in pred_matched:
            continue
        ignored = int((void & p['mask']).sum())
        if pk[0] in crowd:
            ignored += int((crowd[pk[0]] & p['mask']).sum())
        if ignored / p['area'] > 0.5:
            continue
        metric.fp[pk[0]] += 1


def random_frame(rng: np.random.Generator, shape=(24, 32), void=True, crowd=True,
                 pred_void=True) -> tuple[np.ndarray, ...]:
    """Return a ground truth of blocky segments and a perturbed prediction of it."""
    h, w = shape
    coarse = rng.integers(0, 4, size=(h // 4, w // 4))
    gt_labels = np.kron(coarse, np.ones((4, 4), dtype=np.int64)).astype(np.uint8)
    gt_ids = np.kron(rng.integers(1, 4, size=coarse.shape),
                     np.ones((4, 4), dtype=np.int64)).astype(np.uint16)
    gt_ids[~np.isin(gt_labels, THINGS)] = 0
    if crowd:
        gt_ids[(gt_labels == 2) & (rng.random(gt_labels.shape) < 0.05)] = 0
    if void:
        gt_labels[rng.random(gt_labels.shape) < 0.08] = VOID
    pred_labels = np.where(rng.random(shape) < 0.85, gt_labels, rng.integers(0, 4, shape))
    pred_labels = np.where(pred_labels == VOID, rng.integers(0, 4, shape), pred_labels)
    pred_ids = np.where(rng.random(shape) < 0.9, gt_ids, rng.integers(0, 3, shape))
    pred_ids = np.roll(pred_ids, rng.integers(0, 3), axis=1).astype(np.uint16)
    if pred_void:
        pred_labels[rng.random(shape) < 0.05] = VOID
    return pred_labels.astype(np.uint8), pred_ids, gt_labels, gt_ids


def test_equals_the_panopticapi_loop_on_random_frames():
    rng = np.random.default_rng(0)
    fast, slow = PanopticQuality(4, THINGS), PanopticQuality(4, THINGS)
    for _ in range(60):
        data = random_frame(rng)
        fast.add(*data)
        coco_reference(slow, *data)
    assert fast.tp.tolist() == slow.tp.tolist() and fast.fp.tolist() == slow.fp.tolist()
    assert fast.fn.tolist() == slow.fn.tolist()
    np.testing.assert_allclose(fast.iou_sum, slow.iou_sum, rtol=1e-12)
    assert fast.tp.sum() > 50 and fast.fp.sum() > 20 and fast.fn.sum() > 20  # not trivial


def test_equals_torchmetrics_without_crowd_or_prediction_void():
    # torchmetrics has no crowd, and also leaves the prediction's void out of the union (COCO
    # does not): with neither, both follow the same rules.
    torch = pytest.importorskip('torch')
    from torchmetrics.detection import PanopticQuality as TorchmetricsPQ

    rng = np.random.default_rng(1)
    ours = PanopticQuality(4, THINGS)
    theirs = TorchmetricsPQ(things={2, 3}, stuffs={0, 1}, allow_unknown_preds_category=True,
                            return_per_class=True, return_sq_and_rq=True)
    for _ in range(40):
        pred_labels, pred_ids, gt_labels, gt_ids = random_frame(rng, crowd=False,
                                                                pred_void=False)
        ours.add(pred_labels, pred_ids, gt_labels, gt_ids)
        theirs.update(torch.from_numpy(np.stack([pred_labels, pred_ids], -1)[None].astype(int)),
                      torch.from_numpy(np.stack([gt_labels, gt_ids], -1)[None].astype(int)))
    # (classes, [pq, sq, rq]), things first then stuff, each in id order.
    expected = theirs.compute().double().numpy()
    per_class = ours.summary()['per_class']
    actual = [[per_class[str(i)][k] for k in ('pq', 'sq', 'rq')] for i in (2, 3, 0, 1)]
    np.testing.assert_allclose(actual, expected, rtol=1e-6)  # torchmetrics sums in float32
    order = [2, 3, 0, 1]
    for ours_counts, their_counts in ((ours.tp, theirs.true_positives),
                                      (ours.fp, theirs.false_positives),
                                      (ours.fn, theirs.false_negatives)):
        assert ours_counts[order].tolist() == their_counts.tolist()
    assert 0.2 < ours.pq() < 0.9


def test_sum_over_two_halves_equals_all_frames_and_survives_json():
    rng = np.random.default_rng(2)
    frames = [random_frame(rng) for _ in range(20)]
    whole, first, second = (PanopticQuality(4, THINGS) for _ in range(3))
    for i, data in enumerate(frames):
        whole.add(*data)
        (first if i < 10 else second).add(*data)
    restored = PanopticQuality.from_dict(json.loads(json.dumps(first.to_dict())))
    restored += PanopticQuality.from_dict(json.loads(json.dumps(second.to_dict())))
    assert (restored.tp.tolist(), restored.fp.tolist(), restored.fn.tolist()) == (
        whole.tp.tolist(), whole.fp.tolist(), whole.fn.tolist())
    np.testing.assert_allclose(restored.iou_sum, whole.iou_sum, rtol=1e-12)
    for part in ('all', 'things', 'stuff'):
        assert restored.summary()[part] == pytest.approx(whole.summary()[part], rel=1e-12)
    # The standard sum is not the mean of the frames' PQs: a perfect frame and one predicted
    # as void (all FN) give 1 / (1 + 0.5) per class, not (1 + 0) / 2.
    metric = PanopticQuality(4, THINGS)
    pqs = [metric.add(*frame(pred), *frame(GT)).pq() for pred in (GT, ['.' * 10] * 5)]
    assert pqs == [1.0, 0.0] and metric.pq() == pytest.approx(2 / 3)
