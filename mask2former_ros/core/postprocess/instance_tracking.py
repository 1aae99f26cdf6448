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
Instance tracking: the per-frame instance ids of a camera become track ids that persist.

Backend-agnostic: :meth:`InstanceTracker.update` takes what every engine returns for a
panoptic or instance frame (the (H, W) instance-id map and its
:class:`~mask2former_ros.core.results.Segment` records) and the frame's stamp in seconds.

Association is mask IoU, per class (pairs of different classes are never matched), solved by
Hungarian assignment (``scipy.optimize.linear_sum_assignment``):

* Masks live on a grid of at most about :data:`GRID_CELLS` cells, every ``stride``-th pixel
  (stride 4 at 1024x2048, 1 at 240x320).
* Each track keeps its last mask (a reference into the grid of the frame it was seen in) and
  the velocity of its box centre in pixels per second. For a new frame every track's mask is
  pasted into one predicted id map, moved by velocity x (stamp - the stamp it was last seen
  at): a frame dropped upstream is a longer time step, not a lost track.
* One ``bincount`` of (predicted track, detection) pairs over the grid gives every
  intersection and area at once, so the cost does not grow with tracks x detections.
* Assignment in three rounds, each on what the previous left: mask IoU (at least
  :attr:`TrackerConfig.min_iou`), intersection over the smaller mask (at least
  :data:`MIN_OVERLAP`: an object partly hidden, or coming out from behind something), predicted
  box IoU (at least ``min_iou``; also what masks too small for the grid rely on). A track seen
  with less than :data:`OCCLUDED_SHARE` of its mask keeps its shape and velocity and moves as
  predicted. An unmatched detection starts a track; a track unmatched in more than ``max_age``
  processed frames ends, and so does one unseen for longer than ``max_age`` + 1 of the
  camera's usual frame intervals (a pause of the stream).

Track ids are 1..65535 (0 = no instance, as in mono16 instance images). After 65535 they
wrap to 1, skipping the ids of live tracks, so an id is never shared by two live tracks.
A frame size change, or a stamp more than :data:`BACKWARDS_TOLERANCE_S` older than the
previous one (e.g. a replayed bag starting over), resets the tracks.
"""

from collections import deque
from dataclasses import dataclass, field
import math
from typing import Sequence

import cv2
from mask2former_ros.core.results import Segment
import numpy as np
from scipy.optimize import linear_sum_assignment

MAX_TRACK_ID = 65535
GRID_CELLS = 1 << 17  # target size of the association grid (128 Ki cells)
BACKWARDS_TOLERANCE_S = 0.5  # a stamp this much older than the last one restarts tracking
VELOCITY_SMOOTHING = 0.2  # weight of a new velocity measurement (exponential average)
DEFAULT_MAX_AGE = 10
DEFAULT_MIN_IOU = 0.1
MIN_OVERLAP = 0.5  # second association: intersection over the smaller mask
OCCLUDED_SHARE = 0.5  # a match below this share of the track's mask is a partly hidden sighting
STEP_WINDOW = 16  # frame intervals whose median bounds how long an unseen track lives
STEADY_AREA = 0.85  # velocity is measured while the mask area changes by less than this factor


@dataclass(frozen=True)
class TrackerConfig:
    """
    ``max_age``: processed frames a track may go unmatched before it ends (0: ends at once).

    ``min_iou``: smallest (predicted) mask IoU that continues a track.
    """

    max_age: int = DEFAULT_MAX_AGE
    min_iou: float = DEFAULT_MIN_IOU


@dataclass
class _Track:
    track_id: int
    class_id: int
    box: np.ndarray  # float64 (x_min, y_min, x_max, y_max), inclusive pixel bounds
    stamp: float  # seconds, when it was last matched
    grid: np.ndarray  # the association grid of the frame its mask comes from
    value: int  # its id in that grid
    cells: tuple[int, int, int, int]  # (row, col, stop row, stop col) of its mask there
    area: int  # its mask's cells
    offset: tuple[int, int] = (0, 0)  # (rows, cols) it moved since, while mostly hidden
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # box centre, px/s
    misses: int = 0
    hits: int = 1


@dataclass(frozen=True)
class TrackedFrame:
    """
    Segments of one frame with track ids, and ``lut``: per-frame id -> track id (uint16).

    ``reset`` says why the tracks were reset before this frame ('' when they were not).
    """

    segments: tuple[Segment, ...]
    lut: np.ndarray
    reset: str = ''

    def relabel(self, instances: np.ndarray) -> np.ndarray:
        """Return the frame's (H, W) per-frame instance ids as uint16 track ids."""
        return relabel(instances, self.lut)


def relabel(instances: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """
    Return ``lut[instances]`` as uint16, one pass over the pixels.

    Ids up to 255 go through OpenCV's ``LUT`` (uint8 in, uint16 table: ~3x numpy's ``take``
    at 1024x2048); larger ids through ``numpy.take``.
    """
    if len(lut) <= 256 and instances.size:
        table = np.zeros(256, np.uint16)
        table[:len(lut)] = lut
        return cv2.LUT(instances.astype(np.uint8), table)
    return np.take(lut.astype(np.uint16), instances)


def grid_stride(height: int, width: int) -> int:
    """Return the pixel stride of the association grid for frames of ``height`` x ``width``."""
    return max(1, math.ceil(math.sqrt(height * width / GRID_CELLS)))


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the IoU of inclusive pixel boxes ``a`` (T, 4) and ``b`` (N, 4): (T, N)."""
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0 + 1, 0, None) * np.clip(y1 - y0 + 1, 0, None)
    area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


@dataclass
class _Scores:
    """Similarities of every (track, detection) pair of one frame, (T, N) each."""

    iou: np.ndarray  # IoU of predicted track mask and detection mask (box IoU if too small)
    overlap: np.ndarray  # intersection / the smaller mask: a partly hidden object scores high
    box_iou: np.ndarray  # IoU of the predicted track box and the detection box
    det_area: np.ndarray  # (N,) grid cells of each detection


class InstanceTracker:
    """The tracks of one camera: call :meth:`update` with its frames in order of arrival."""

    def __init__(self, config: TrackerConfig = TrackerConfig()) -> None:
        """Start without tracks."""
        if config.max_age < 0:
            raise ValueError(f'max_age must be >= 0, got {config.max_age}')
        if not 0.0 < config.min_iou <= 1.0:
            raise ValueError(f'min_iou must be within (0, 1], got {config.min_iou}')
        self.config = config
        self.tracks: list[_Track] = []
        self._shape: tuple[int, int] | None = None
        self._stride = 1
        self._stamp: float | None = None
        self._steps: deque[float] = deque(maxlen=STEP_WINDOW)  # seconds between frames
        self._next_id = 1

    def reset(self) -> None:
        """End every track; the next frame starts new ones (ids go on from the last one)."""
        self.tracks = []
        self._shape, self._stamp = None, None
        self._steps.clear()

    def update(self, instances: np.ndarray, segments: Sequence[Segment],
               stamp: float) -> TrackedFrame:
        """
        Associate one frame's instances with the tracks; return them with track ids.

        ``instances`` (H, W): per-frame ids, 0 = none; ``segments``: one per id present, any
        order (the result keeps it); ``stamp``: the frame's time in seconds (its header stamp).
        """
        reason = self._check_restart(instances.shape, stamp)
        self._expire(stamp)
        self._stamp = stamp if self._stamp is None else max(stamp, self._stamp)
        s = self._stride
        grid = np.ascontiguousarray(instances[::s, ::s])
        det_ids = np.array([seg.instance_id for seg in segments], dtype=np.int64)
        lut = np.zeros(int(det_ids.max()) + 1 if len(det_ids) else 1, np.uint16)
        values, size = det_ids, len(lut)
        if size > 2 * len(det_ids) + 256:  # sparse ids (e.g. ground truth): number them 1..N
            compact = np.zeros(size, np.uint16)
            compact[det_ids] = np.arange(1, len(det_ids) + 1)
            grid, size = np.take(compact, grid), len(det_ids) + 1
            values = np.arange(1, len(det_ids) + 1)
        scores = self._scores(grid, segments, values, size, stamp)
        matched = self._assign(scores)
        out, current = [], set()
        for k, seg in enumerate(segments):
            track = matched.get(k)
            area = int(scores.det_area[k])
            if track is None:
                track = _Track(self._new_id(), seg.class_id, np.array(seg.box, np.float64),
                               stamp, grid, int(values[k]), self._cells(seg), area)
                self.tracks.append(track)
            elif area < OCCLUDED_SHARE * track.area:
                self._coast(track, stamp)  # mostly hidden: keep its whole shape and velocity
            else:
                self._advance(track, seg, stamp, grid, int(values[k]), area)
            current.add(id(track))
            lut[det_ids[k]] = track.track_id
            out.append(Segment(track.track_id, seg.class_id, seg.score, seg.box, seg.area))
        alive = []
        for track in self.tracks:
            if id(track) not in current:
                track.misses += 1
                if track.misses > self.config.max_age:
                    continue
            alive.append(track)
        self.tracks = alive
        return TrackedFrame(tuple(out), lut, reason)

    # --- steps of update ---------------------------------------------------------------------

    def _check_restart(self, shape: tuple[int, int], stamp: float) -> str:
        """Reset for a new frame size or a stamp far back in time; return why ('' if not)."""
        reason = ''
        if self._shape is not None and shape != self._shape:
            reason = (f'frame size changed from {self._shape[1]}x{self._shape[0]} to '
                      f'{shape[1]}x{shape[0]}')
        elif self._stamp is not None and stamp < self._stamp - BACKWARDS_TOLERANCE_S:
            reason = f'stamp went back {self._stamp - stamp:.3f} s'
        if reason:
            self.reset()
        if self._shape is None:
            self._shape = (int(shape[0]), int(shape[1]))
            self._stride = grid_stride(*self._shape)
        return reason

    def _expire(self, stamp: float) -> None:
        """
        End tracks unseen for longer than ``max_age`` + 1 of this camera's frame intervals.

        The interval is the median step between the last processed frames, drops included:
        this ends tracks after a pause of the stream, while ``max_age`` counts the frames.
        """
        if self._stamp is not None and stamp > self._stamp:
            if len(self._steps) >= 3:
                limit = (self.config.max_age + 1) * float(np.median(self._steps))
                self.tracks = [t for t in self.tracks if stamp - t.stamp <= limit]
            self._steps.append(stamp - self._stamp)

    def _shifts(self, stamp: float) -> np.ndarray:
        """Return the (x, y) pixels each track has moved since it was last seen, (T, 2)."""
        velocity = np.array([track.velocity for track in self.tracks]).reshape(-1, 2)
        elapsed = np.array([max(stamp - track.stamp, 0.0) for track in self.tracks])
        return velocity * elapsed[:, None]

    def _scores(self, grid: np.ndarray, segments: Sequence[Segment], values: np.ndarray,
                size: int, stamp: float) -> _Scores:
        """Compare every predicted track mask with every detection, one pass over the grid."""
        tracks = self.tracks
        if not tracks or not len(segments):
            empty = np.zeros((len(tracks), len(segments)))
            return _Scores(empty, empty, empty, np.bincount(grid.ravel(), minlength=size)[values])
        s = self._stride
        shifts = self._shifts(stamp)
        boxes = np.array([track.box for track in tracks]) + shifts[:, [0, 1, 0, 1]]
        moves = np.rint(shifts[:, ::-1] / s).astype(int)  # (rows, cols) on the grid
        # Every track's mask moved to where its velocity puts it now; far tracks first, so
        # nearer ones (lower box bottom in the image) cover them where they overlap.
        predicted = np.zeros(grid.shape, np.int32)
        for slot in np.argsort(boxes[:, 3], kind='stable').tolist():
            self._paste(predicted, tracks[slot], moves[slot], slot + 1)
        predicted *= size
        predicted += grid
        pairs = np.bincount(predicted.ravel(), minlength=(len(tracks) + 1) * size)
        pairs = pairs.reshape(len(tracks) + 1, size)
        inter = pairs[1:, values].astype(np.float64)
        track_area = pairs[1:].sum(1).astype(np.float64)
        det_area = pairs[:, values].sum(0)
        union = track_area[:, None] + det_area[None, :] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        smaller = np.minimum(track_area[:, None], det_area[None, :])
        overlap = np.divide(inter, smaller, out=np.zeros_like(inter), where=smaller > 0)
        box_iou = _box_iou(boxes, np.array([seg.box for seg in segments], np.float64))
        iou = np.where(smaller == 0, box_iou, iou)
        det_class = np.array([seg.class_id for seg in segments])
        track_class = np.array([track.class_id for track in tracks])
        other = track_class[:, None] != det_class[None, :]
        iou[other] = overlap[other] = box_iou[other] = 0.0
        return _Scores(iou, overlap, box_iou, det_area)

    def _assign(self, scores: _Scores) -> dict[int, _Track]:
        """
        Return detection index -> matched track: Hungarian assignments in turn.

        First by mask IoU (at least ``min_iou``); the tracks and detections left over then by
        the overlap of the smaller mask (at least :data:`MIN_OVERLAP`: an object mostly hidden
        or coming out from behind something), and last by predicted box IoU (at least
        ``min_iou``).
        """
        matched: dict[int, _Track] = {}
        rows, cols = np.arange(len(self.tracks)), np.arange(scores.iou.shape[1])
        for score, least in ((scores.iou, self.config.min_iou), (scores.overlap, MIN_OVERLAP),
                             (scores.box_iou, self.config.min_iou)):
            if not len(rows) or not len(cols):
                break
            part = score[np.ix_(rows, cols)]
            r, c = linear_sum_assignment(-part)
            ok = part[r, c] >= least
            r, c = r[ok], c[ok]
            for row, col in zip(rows[r].tolist(), cols[c].tolist(), strict=True):
                matched[col] = self.tracks[row]
            rows, cols = np.delete(rows, r), np.delete(cols, c)
        return matched

    @staticmethod
    def _paste(target: np.ndarray, track: _Track, move: np.ndarray, value: int) -> None:
        """Write ``value`` where ``track``'s mask, moved by ``move`` cells, lies (clipped)."""
        height, width = target.shape
        r0, c0, r1, c1 = track.cells
        dy, dx = int(move[0]) + track.offset[0], int(move[1]) + track.offset[1]
        top, left = max(r0 + dy, 0), max(c0 + dx, 0)
        bottom, right = min(r1 + dy, height), min(c1 + dx, width)
        if bottom <= top or right <= left:
            return
        mask = track.grid[top - dy:bottom - dy, left - dx:right - dx] == track.value
        np.copyto(target[top:bottom, left:right], value, where=mask)

    def _cells(self, seg: Segment) -> tuple[int, int, int, int]:
        """Return the grid cells (row, col, stop row, stop col) of a segment's box."""
        s = self._stride
        x0, y0, x1, y1 = seg.box
        return -(-y0 // s), -(-x0 // s), y1 // s + 1, x1 // s + 1

    def _coast(self, track: _Track, stamp: float) -> None:
        """Seen but mostly hidden: move the track as predicted, keeping shape and velocity."""
        shift = track.velocity * max(stamp - track.stamp, 0.0)
        s = self._stride
        track.box = track.box + shift[[0, 1, 0, 1]]
        track.offset = (track.offset[0] + round(shift[1] / s),
                        track.offset[1] + round(shift[0] / s))
        track.stamp = stamp
        track.misses, track.hits = 0, track.hits + 1

    def _advance(self, track: _Track, seg: Segment, stamp: float, grid: np.ndarray,
                 value: int, area: int) -> None:
        """
        Move a matched track to its new detection; update its velocity estimate.

        Only while its mask keeps its area: an object sliding behind something (or out of the
        image) moves its box centre at a fraction of its speed.
        """
        box = np.array(seg.box, np.float64)
        elapsed = stamp - track.stamp
        steady = STEADY_AREA < area / max(track.area, 1) < 1.0 / STEADY_AREA
        if elapsed > 0 and (steady or track.hits == 1):
            moved = ((box[:2] + box[2:]) - (track.box[:2] + track.box[2:])) / 2.0
            weight = 1.0 if track.hits == 1 else VELOCITY_SMOOTHING
            track.velocity = weight * moved / elapsed + (1.0 - weight) * track.velocity
        track.box, track.stamp, track.class_id = box, stamp, seg.class_id
        track.grid, track.value, track.cells = grid, value, self._cells(seg)
        track.area, track.offset = area, (0, 0)
        track.misses, track.hits = 0, track.hits + 1

    def _new_id(self) -> int:
        """Return the next free track id, wrapping after :data:`MAX_TRACK_ID`."""
        live = {track.track_id for track in self.tracks}
        if len(live) >= MAX_TRACK_ID:
            raise RuntimeError(f'more than {MAX_TRACK_ID} live tracks')
        while True:
            candidate = self._next_id
            self._next_id = 1 if candidate >= MAX_TRACK_ID else candidate + 1
            if candidate not in live:
                return candidate
