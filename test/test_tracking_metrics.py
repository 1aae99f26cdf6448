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

"""Tracking metrics (TrackEval on instance-id images) against cases computed by hand."""

import math

from mask2former_ros.offline.tracking_metrics import (
    combine, frame_similarity, id_switches_per_frame, sequence_data, trackeval_metrics,
    TrackingEvaluation)
import numpy as np
import pytest

try:
    trackeval_metrics()
except ImportError as exc:  # scripts/setup.sh installs it
    pytest.skip(str(exc), allow_module_level=True)

CAR, PERSON, ROAD = 13, 11, 0
THINGS = (PERSON, CAR)
# Where objects stand in the 8x24 frames: A, B and a stray third object.
SLOTS = {'A': np.s_[1:4, 1:6], 'B': np.s_[4:7, 9:14], 'C': np.s_[1:3, 18:22]}


def maps(objects: dict[str, tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Return labels and ids with each named object (its id, its class) in its slot."""
    labels = np.full((8, 24), ROAD, np.uint8)
    ids = np.zeros((8, 24), np.uint16)
    for name, (value, cls) in objects.items():
        labels[SLOTS[name]], ids[SLOTS[name]] = cls, value
    return labels, ids


def hand_case() -> TrackingEvaluation:
    """
    Two cars A and B in four frames, masks predicted exactly.

    A is tracked as 10 in frames 0-1 and as 30 in frames 2-3 (one ID switch); B is 20 but
    missed in frame 1 (one miss); a stray object 40 appears in frame 3 (one false positive).
    """
    truth = maps({'A': (1, CAR), 'B': (2, CAR)})
    predicted = [{'A': (10, CAR), 'B': (20, CAR)}, {'A': (10, CAR)},
                 {'A': (30, CAR), 'B': (20, CAR)},
                 {'A': (30, CAR), 'B': (20, CAR), 'C': (40, CAR)}]
    evaluation = TrackingEvaluation(THINGS)
    for t, objects in enumerate(predicted):
        evaluation.add(t, 1000 + t, *truth, *maps(objects))
    return evaluation


def test_clear_mot_and_identity_metrics_equal_the_hand_computed_values():
    result = hand_case().result()
    s = result['summary']
    # CLEAR MOT: 8 ground-truth detections; 7 matched, 1 missed, 1 false, 1 switch (A).
    assert (s['tp'], s['fn'], s['fp'], s['id_switches']) == (7, 1, 1, 1)
    assert s['mota'] == pytest.approx(1 - (1 + 1 + 1) / 8)
    # Identity: A-10 (2 frames) or A-30 (2), B-20 (3): IDTP 5, IDFN 8-5, IDFP 8-5.
    assert (s['idtp'], s['idfn'], s['idfp']) == (5, 3, 3)
    assert s['idf1'] == pytest.approx(2 * 5 / (2 * 5 + 3 + 3))
    # HOTA with exact masks (IoU 1 at every alpha): DetA = 7 / (7 + 1 + 1); AssA is the
    # mean over the 7 true positives of TPA / (TPA + FNA + FPA): 2/4 each
    # (4 true positives), B-20 3/4 (3).
    assert s['deta'] == pytest.approx(7 / 9)
    assert s['assa'] == pytest.approx((4 * 0.5 + 3 * 0.75) / 7)
    assert s['hota'] == pytest.approx(math.sqrt(7 / 9 * (4 * 0.5 + 3 * 0.75) / 7))
    # The report's frame of the switch: frame 2 (stamp 1002).
    assert result['switch_frames'] == [(2, 1002, 1)]


def test_a_wrong_class_is_a_miss_and_a_false_positive_and_crowd_is_ignored():
    labels, ids = maps({'A': (1, CAR)})
    crowd_labels = labels.copy()
    crowd_labels[SLOTS['C']] = PERSON  # person pixels without an id: crowd
    evaluation = TrackingEvaluation(THINGS)
    evaluation.add(0, 0, crowd_labels, ids, *maps({'A': (5, PERSON), 'C': (6, PERSON)}))
    s = evaluation.result()['summary']
    assert (s['tp'], s['fn'], s['fp']) == (0, 1, 1)  # the object on crowd is left out


def test_mask_iou_is_the_similarity():
    truth_labels, truth_ids = maps({'A': (1, CAR)})
    labels, ids = maps({})
    labels[1:4, 1:4], ids[1:4, 1:4] = CAR, 9  # 9 of A's 15 pixels
    gt, predicted, iou = frame_similarity(truth_labels, truth_ids, labels, ids, THINGS)
    assert gt.tolist() == [1] and predicted.tolist() == [9]
    assert iou.tolist() == [[9 / 15]]


def test_a_fleet_combines_the_bags_statistics_not_their_scores():
    first = hand_case().result()
    second = TrackingEvaluation(THINGS)  # a perfect bag of 6 frames
    truth = maps({'A': (1, CAR)})
    for t in range(6):
        second.add(t, t, *truth, *maps({'A': (3, CAR)}))
    second = second.result()
    combined = combine([first['counts'], second['counts']])
    assert combined['id_switches'] == 1 and combined['idtp'] == 5 + 6
    assert combined['idf1'] == pytest.approx(2 * 11 / (2 * 11 + 3 + 3))
    assert combined['mota'] == pytest.approx(1 - 3 / 14)
    assert combined['deta'] == pytest.approx(13 / 15)
    # AssA: the true positives' association scores, weighted by their number.
    assert combined['assa'] == pytest.approx((4 * 0.5 + 3 * 0.75 + 6 * 1.0) / 13)
    mean = (first['summary']['idf1'] + second['summary']['idf1']) / 2
    assert combined['idf1'] != pytest.approx(mean)


def test_id_switches_per_frame_add_up_to_trackevals_count():
    rng = np.random.default_rng(3)
    clear = trackeval_metrics()['CLEAR']
    for _ in range(30):
        frames = int(rng.integers(1, 12))
        gt, tracker, similarity = [], [], []
        for _ in range(frames):
            g = np.sort(rng.choice(6, int(rng.integers(0, 5)), replace=False))
            p = np.sort(rng.choice(8, int(rng.integers(0, 5)), replace=False))
            gt.append(g)
            tracker.append(p)
            similarity.append(rng.random((len(g), len(p))) * (rng.random((len(g), len(p))) < 0.5))
        data = sequence_data(gt, tracker, similarity)
        assert sum(id_switches_per_frame(data)) == clear.eval_sequence(data)['IDSW']
