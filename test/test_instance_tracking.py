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
The instance tracker alone: ids that persist, gaps in time, ends, resets, id wrap, relabelling.

The ground truth of moving street sequences, renumbered per frame in a random order as a
detector would, is the perfect detector: tracking must give each object one id throughout.
"""

from mask2former_ros.core.postprocess.instance_tracking import (
    InstanceTracker, MAX_TRACK_ID, relabel, TrackerConfig)
from mask2former_ros.core.results import Segment
from mask2former_ros.offline.tracking_metrics import TrackingEvaluation
from mask2former_ros_fixtures.sequences import street_sequence
import numpy as np
import pytest
from scipy import ndimage

CAR, PERSON = 13, 11


def detections(ids: np.ndarray, labels: np.ndarray,
               rng: np.random.Generator) -> tuple[np.ndarray, list[Segment]]:
    """Return ground-truth ids renumbered 1..N in a random order, and their Segments."""
    present = np.unique(ids)
    present = present[present > 0]
    lut = np.zeros(int(ids.max()) + 1, np.uint16)
    lut[present] = rng.permutation(len(present)) + 1
    frame_ids = lut[ids]
    segments = []
    for k, box in enumerate(ndimage.find_objects(frame_ids), start=1):
        mask = frame_ids[box] == k
        segments.append(Segment(k, int(np.bincount(labels[box][mask]).argmax()), 0.9,
                                (box[1].start, box[0].start, box[1].stop - 1, box[0].stop - 1),
                                int(mask.sum())))
    return frame_ids, segments


def track_sequence(seq, keep=None, tracker=None) -> tuple[list[dict], dict]:
    """Feed a sequence's ground truth (frames in ``keep``) to a tracker; return the mapping."""
    rng = np.random.default_rng(7)
    tracker = tracker or InstanceTracker()
    evaluation = TrackingEvaluation({CAR, PERSON})
    mapping = []
    for t, (labels, ids) in enumerate(zip(seq.labels, seq.instances, strict=True)):
        if keep is not None and t not in keep:
            continue
        frame_ids, segments = detections(ids, labels, rng)
        tracked = tracker.update(frame_ids, segments, t / seq.rate_hz)
        track_ids = tracked.relabel(frame_ids)
        assert sorted(s.instance_id for s in tracked.segments) == \
            sorted(set(np.unique(track_ids).tolist()) - {0})
        evaluation.add(t, t, labels, ids, labels, track_ids)
        mapping.append({int(g): int(track_ids[ids == g][0]) for g in np.unique(ids) if g})
    return mapping, evaluation.result()['summary']


@pytest.mark.parametrize('seed', [0, 1])
def test_a_perfect_detector_keeps_one_id_per_object_through_crossings(seed):
    seq = street_sequence(seed, 24, 120, 160, occlusion=False)
    mapping, summary = track_sequence(seq)
    first = {}
    for frame in mapping:
        for gt, track in frame.items():
            assert first.setdefault(gt, track) == track, (gt, frame)
    assert len(set(first.values())) == len(first)
    assert summary['idf1'] == 1.0 and summary['id_switches'] == 0, summary


def test_dropped_frames_are_a_gap_in_time_not_the_end_of_a_track():
    seq = street_sequence(3, 24, 120, 160, occlusion=False)
    keep = {0, 1, 2, 6, 7, 11, 12, 13, 18, 23}  # gaps of up to five frames
    _, summary = track_sequence(seq, keep)
    assert summary['id_switches'] == 0 and summary['idf1'] == 1.0, summary


def box_segment(instance_id: int, x: int, width: int = 8, class_id: int = CAR,
                y: int = 10) -> Segment:
    return Segment(instance_id, class_id, 0.9, (x, y, x + width - 1, y + 7), width * 8)


def frame(*segments: Segment, shape: tuple[int, int] = (40, 120)) -> np.ndarray:
    ids = np.zeros(shape, np.uint16)
    for seg in segments:
        x0, y0, x1, y1 = seg.box
        ids[y0:y1 + 1, x0:x1 + 1] = seg.instance_id
    return ids


def test_the_stamps_predict_where_a_fast_object_is_after_a_gap():
    # 8 px wide, 4 px per 0.1 s: after a 0.5 s gap it moved 20 px, far from its last mask.
    def run(stamps):
        tracker = InstanceTracker()
        ids = []
        for x, stamp in zip((0, 4, 8, 28), stamps, strict=True):
            seg = box_segment(1, x)
            ids.append(tracker.update(frame(seg), [seg], stamp).segments[0].instance_id)
        return ids
    assert run((0.0, 0.1, 0.2, 0.7)) == [1, 1, 1, 1]
    # The same frames stamped as if none had been dropped: the object jumps, a new track.
    assert run((0.0, 0.1, 0.2, 0.3)) == [1, 1, 1, 2]


def test_a_track_ends_after_max_age_unseen_frames():
    tracker = InstanceTracker(TrackerConfig(max_age=2))
    seg = box_segment(1, 50)
    assert tracker.update(frame(seg), [seg], 0.0).segments[0].instance_id == 1
    for k in range(1, 3):  # unseen in 2 frames: still alive
        tracker.update(frame(), [], k * 0.1)
    assert tracker.update(frame(seg), [seg], 0.3).segments[0].instance_id == 1
    for k in range(4, 7):  # unseen in 3 frames: ended
        tracker.update(frame(), [], k * 0.1)
    assert tracker.update(frame(seg), [seg], 0.7).segments[0].instance_id == 2


def test_a_pause_of_the_stream_ends_the_tracks():
    # Frames every 0.1 s; after a pause longer than (max_age + 1) frame intervals an object
    # in the same place is a new one, before it the same.
    for pause, expected in ((1.0, 1), (1.2, 2)):
        tracker = InstanceTracker(TrackerConfig(max_age=10))
        seg = box_segment(1, 50)
        for k in range(5):
            assert tracker.update(frame(seg), [seg], k * 0.1).segments[0].instance_id == 1
        out = tracker.update(frame(seg), [seg], 0.4 + pause).segments
        assert out[0].instance_id == expected, pause


def test_classes_are_never_mixed_and_ids_stay_unique():
    tracker = InstanceTracker()
    car, person = box_segment(1, 30), box_segment(2, 60, class_id=PERSON)
    tracker.update(frame(car, person), [car, person], 0.0)
    # The person now stands exactly where the car was, the car is gone.
    moved = box_segment(1, 30, class_id=PERSON)
    out = tracker.update(frame(moved), [moved], 0.1).segments
    assert [s.instance_id for s in out] == [3]


def test_reset_by_a_new_frame_size_a_stamp_back_in_time_and_on_request():
    tracker = InstanceTracker()
    seg = box_segment(1, 10)
    assert tracker.update(frame(seg), [seg], 5.0).reset == ''
    bigger = tracker.update(frame(seg, shape=(48, 120)), [seg], 5.1)
    assert bigger.reset == 'frame size changed from 120x40 to 120x48'
    assert bigger.segments[0].instance_id == 2
    back = tracker.update(frame(seg, shape=(48, 120)), [seg], 1.0)
    assert back.reset.startswith('stamp went back 4.1') and back.segments[0].instance_id == 3
    tracker.reset()
    assert tracker.update(frame(seg, shape=(48, 120)), [seg], 1.1).segments[0].instance_id == 4


def test_ids_wrap_after_65535_skipping_live_tracks():
    tracker = InstanceTracker()
    tracker._next_id = MAX_TRACK_ID - 1
    a, b = box_segment(1, 0), box_segment(2, 40)
    assert [s.instance_id for s in tracker.update(frame(a, b), [a, b], 0.0).segments] == \
        [MAX_TRACK_ID - 1, MAX_TRACK_ID]
    tracker._next_id = MAX_TRACK_ID - 1  # the next two candidates are taken
    c = box_segment(3, 90)
    out = tracker.update(frame(a, b, c), [a, b, c], 0.1)
    assert [s.instance_id for s in out.segments] == [MAX_TRACK_ID - 1, MAX_TRACK_ID, 1]
    assert out.lut.dtype == np.uint16 and out.relabel(frame(a, b, c)).max() == MAX_TRACK_ID


def test_sparse_ids_and_relabel_paths_agree():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 4, (30, 50)).astype(np.uint16) * 1000  # ids 1000, 2000, 3000
    lut = np.zeros(3001, np.uint16)
    lut[[1000, 2000, 3000]] = [7, 65535, 3]
    np.testing.assert_array_equal(relabel(ids, lut), lut[ids])
    small = (ids // 1000).astype(np.uint16)
    np.testing.assert_array_equal(relabel(small, lut[[0, 1000, 2000, 3000]]),
                                  lut[[0, 1000, 2000, 3000]][small])
    segments = [Segment(v, CAR, 0.9, (0, 0, 49, 29), 1) for v in (1000, 2000, 3000)]
    tracked = InstanceTracker().update(ids, segments, 0.0)
    assert sorted(np.unique(tracked.relabel(ids)).tolist()) == [0, 1, 2, 3]


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError, match='max_age must be >= 0'):
        InstanceTracker(TrackerConfig(max_age=-1))
    with pytest.raises(ValueError, match='min_iou'):
        InstanceTracker(TrackerConfig(min_iou=0.0))
