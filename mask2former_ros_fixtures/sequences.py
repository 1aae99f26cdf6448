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
Street sequences: moving cars and persons whose instance ids persist from frame to frame.

The street of :mod:`mask2former_ros_fixtures.synthetic` (same background, trees, cars and
persons, drawn by the same functions) stays put while cars and persons move across it at
constant velocities, some also in depth (they grow or shrink with the perspective). Each mover
keeps its appearance (its own seeded generator redraws it identically in every frame) and its
instance id, 1..N in the order of :attr:`TrackSequence.movers`; an id is absent from a frame
where its mover is outside the image or hidden entirely by nearer ones.

Every sequence has a crossing: two persons at different depths walk towards each other and
pass, the nearer one partly hiding the farther one. ``occlusion=False`` sequences are redrawn
until no mover is ever hidden below :data:`MIN_VISIBLE` of its pixels inside the image;
``occlusion=True`` ones add a person who walks behind an advertising pillar near the camera
(building class) and is hidden entirely for a few frames. Lighting is fixed per sequence and
the sensor noise is new in every frame.

This module is separate from ``synthetic`` so that the tiny models' cache key (a hash of
``synthetic.py`` and ``tiny_model.py``) stays valid.
"""

from dataclasses import dataclass

from mask2former_ros_fixtures.synthetic import (
    _Canvas, _draw_background, _draw_car, _draw_person, _draw_tree, _NOISE_CLIP, _NOISE_TILE,
    BUILDING, CAR, PERSON)
import numpy as np

MIN_VISIBLE = 0.25  # occlusion=False: least share of a mover's in-image pixels left visible
CAR_KIND, PERSON_KIND = 1, 2  # the kinds of synthetic._render
KIND_CLASS = {CAR_KIND: CAR, PERSON_KIND: PERSON}
_ATTEMPTS = 200


@dataclass(frozen=True)
class Mover:
    """
    A car or person moving at constant velocity.

    ``depth`` is 0 at the horizon and 1 at the bottom row, ``x`` a fraction of the width;
    ``vx`` (widths) and ``vdepth`` per second; ``seed`` fixes the appearance.
    """

    kind: int
    depth: float
    x: float
    vx: float
    vdepth: float
    seed: int

    def at(self, seconds: float) -> tuple[float, float]:
        """Return (depth, x) after ``seconds``."""
        return self.depth + self.vdepth * seconds, self.x + self.vx * seconds


@dataclass
class TrackSequence:
    """
    Frames of one sequence: ``rgb`` (H, W, 3) uint8, ``labels`` and ``instances`` (uint16).

    ``visible[t][i]``: share of mover ``i``'s in-image pixels visible in frame ``t`` (nan when
    it is outside the image); ``hidden[t]``: ids of movers in the image but hidden entirely.
    """

    movers: list[Mover]
    rgb: list[np.ndarray]
    labels: list[np.ndarray]
    instances: list[np.ndarray]
    visible: np.ndarray
    rate_hz: float

    @property
    def hidden(self) -> list[set[int]]:
        """Return per frame the ids of movers in the image but fully hidden."""
        return [{i + 1 for i, v in enumerate(row) if v == 0.0} for row in self.visible]


class _Street:
    """The static part of a sequence: background, trees and the road geometry."""

    def __init__(self, rng: np.random.Generator, height: int, width: int) -> None:
        h, w = height, width
        cv = _Canvas(h, w, instances=True)
        self.horizon = h * rng.uniform(0.38, 0.5)
        self.vx = w * rng.uniform(0.4, 0.6)
        self.half_road = w * rng.uniform(0.6, 0.9)
        self.walk = rng.uniform(0.3, 0.6)
        ground = _draw_background(rng, cv, self.horizon, self.vx, self.half_road, self.walk)
        self.depth_px = max(h - self.horizon, 1e-3)
        for _ in range(int(rng.integers(1, 4))):
            t = rng.uniform(0.1, 0.3)
            side = rng.choice([-1.0, 1.0])
            x = self.vx + side * t * self.half_road * (1.0 + self.walk * rng.uniform(0.5, 1.0))
            base = min(self.horizon + t * self.depth_px,
                       float(np.interp(x, np.arange(w) + 0.5, ground)))
            _draw_tree(rng, cv, base, x, t * 0.85 + 0.15)
        self.canvas = cv
        # Fixed lighting: gain, gamma and white balance through one lookup table.
        gain, gamma = rng.uniform(0.75, 1.2), rng.uniform(0.8, 1.25)
        balance = 1.0 + rng.uniform(-0.05, 0.05, size=3)
        levels = np.clip(np.arange(-_NOISE_CLIP, 256 + _NOISE_CLIP, dtype=np.float32), 0, 255)
        lut = 255.0 * gain * balance[:, None] * (levels[None, :] / 255.0) ** gamma
        self.lut = np.clip(lut, 0, 255).astype(np.uint8).ravel()
        self.sigma = rng.uniform(2.0, 6.0)
        self.pillar: tuple[float, float, float] | None = None  # (top, left, right) in pixels
        self.pillar_colour = np.array([rng.uniform(150, 200), rng.uniform(120, 150),
                                       rng.uniform(90, 120)], dtype=np.float32)

    def draw(self, cv: _Canvas, mover: Mover, seconds: float, value: int) -> None:
        """Paint ``mover`` at time ``seconds`` into ``cv`` with instance id ``value``."""
        depth, x = mover.at(seconds)
        scale = depth * 0.85 + 0.15
        cv.instance = value
        draw = _draw_car if mover.kind == CAR_KIND else _draw_person
        draw(np.random.default_rng(mover.seed), cv, self.horizon + depth * self.depth_px,
             x * cv.w, scale)

    def frame(self, movers: list[Mover], seconds: float) -> _Canvas:
        """Return a canvas with the movers at ``seconds``, far to near."""
        base = self.canvas
        cv = _Canvas(base.h, base.w, instances=True)
        cv.rgb[:], cv.labels[:], cv.instances[:] = base.rgb, base.labels, 0
        order = sorted(range(len(movers)), key=lambda i: movers[i].at(seconds)[0])
        for i in order:
            self.draw(cv, movers[i], seconds, i + 1)
        if self.pillar is not None:
            top, left, right = self.pillar
            cv.instance = 0
            cv.rect(top, cv.h, left, right, self.pillar_colour, BUILDING)
        return cv

    def alone_area(self, mover: Mover, seconds: float) -> int:
        """Return the pixels ``mover`` covers inside the image with nothing in front."""
        cv = _Canvas(self.canvas.h, self.canvas.w, instances=True)
        self.draw(cv, mover, seconds, 1)
        return int(np.count_nonzero(cv.instances))

    def light(self, rng: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
        """Return ``rgb`` through the sequence's lighting with fresh sensor noise."""
        h, w = rgb.shape[:2]
        th, tw = min(h, _NOISE_TILE), min(w, _NOISE_TILE)
        tile = rng.standard_normal((th, tw, 3), dtype=np.float32) * np.float32(self.sigma)
        tile = np.clip(np.round(tile), -_NOISE_CLIP, _NOISE_CLIP).astype(np.int16)
        tile += np.arange(3, dtype=np.int16) * np.int16(256 + 2 * _NOISE_CLIP) + _NOISE_CLIP
        index = rgb.astype(np.int16)
        for y in range(0, h, th):
            for x in range(0, w, tw):
                block = index[y:y + th, x:x + tw]
                block += tile[:block.shape[0], :block.shape[1]]
        return np.take(self.lut, index)


def _movers(rng: np.random.Generator, duration: float, occlusion: bool) -> list[Mover]:
    """Draw the movers of one sequence (cars on the road, persons, a crossing pair)."""
    seed = lambda: int(rng.integers(1 << 31))  # noqa: E731
    movers = []
    for _ in range(int(rng.integers(2, 4))):  # cars crossing the street, some in depth
        direction = rng.choice([-1.0, 1.0])
        movers.append(Mover(CAR_KIND, rng.uniform(0.35, 0.8), rng.uniform(0.15, 0.85),
                            direction * rng.uniform(0.04, 0.14), rng.uniform(-0.03, 0.03),
                            seed()))
    # Two persons at different depths walking towards each other: they meet mid-sequence.
    near = rng.uniform(0.7, 0.9)
    far = near - rng.uniform(0.12, 0.25)
    meet = rng.uniform(0.35, 0.65)
    speed = rng.uniform(0.06, 0.12)
    for depth, direction in ((far, 1.0), (near, -1.0)):
        start = meet - direction * speed * duration / 2
        movers.append(Mover(PERSON_KIND, depth, start, direction * speed, 0.0, seed()))
    for _ in range(int(rng.integers(0, 2))):  # another walker
        direction = rng.choice([-1.0, 1.0])
        movers.append(Mover(PERSON_KIND, rng.uniform(0.5, 0.95), rng.uniform(0.1, 0.9),
                            direction * rng.uniform(0.02, 0.08), 0.0, seed()))
    if occlusion:  # a person who walks behind the pillar (see _pillar)
        speed = rng.uniform(0.08, 0.12)
        movers.append(Mover(PERSON_KIND, rng.uniform(0.55, 0.75), rng.uniform(0.4, 0.6)
                            - speed * duration / 2, speed, 0.0, seed()))
    return movers


def _pillar(street: _Street, walker: Mover, duration: float) -> tuple[float, float, float]:
    """
    Return (top row, left, right column) of an advertising pillar near the camera.

    It stands where ``walker`` is mid-sequence, as wide as the walker plus what it walks in
    0.4 s and taller than the walker, so the walker is hidden entirely for about 0.4 s.
    """
    cv = _Canvas(street.canvas.h, street.canvas.w, instances=True)
    street.draw(cv, walker, duration / 2, 1)
    rows, cols = np.nonzero(cv.instances)
    middle = (cols.min() + cols.max() + 1) / 2
    half = (cols.max() + 1 - cols.min()) / 2 + walker.vx * cv.w * 0.2
    return rows.min() - 2.0, middle - half, middle + half


def street_sequence(seed: int, frames: int, height: int, width: int, rate_hz: float = 10.0,
                    occlusion: bool = False) -> TrackSequence:
    """
    Return a sequence of ``frames`` frames at ``rate_hz`` (a pure function of its arguments).

    ``occlusion=False``: no mover is ever hidden below :data:`MIN_VISIBLE` of its in-image
    pixels; ``occlusion=True``: the last mover, a person, is hidden entirely behind a pillar for
    a few frames.
    """
    if frames < 1 or height < 16 or width < 16:
        raise ValueError(f'need frames >= 1 and a size of at least 16x16, got {frames} frames '
                         f'of {height}x{width}')
    rng = np.random.default_rng(seed)
    street = _Street(rng, height, width)
    times = [i / rate_hz for i in range(frames)]
    for _ in range(_ATTEMPTS):
        movers = _movers(rng, times[-1], occlusion)
        street.pillar = _pillar(street, movers[-1], times[-1]) if occlusion else None
        canvases = [street.frame(movers, t) for t in times]
        visible = np.full((frames, len(movers)), np.nan)
        for f, (cv, t) in enumerate(zip(canvases, times, strict=True)):
            counts = np.bincount(cv.instances.ravel(), minlength=len(movers) + 1)
            for i, mover in enumerate(movers):
                alone = street.alone_area(mover, t)
                if alone:
                    visible[f, i] = counts[i + 1] / alone
        shares = np.nan_to_num(visible, nan=1.0)
        if (shares[:, -1] == 0.0).sum() >= 2 if occlusion else shares.min() >= MIN_VISIBLE:
            break
    else:
        raise RuntimeError(f'no sequence with occlusion={occlusion} in {_ATTEMPTS} draws')
    rgb = [street.light(rng, cv.rgb) for cv in canvases]
    return TrackSequence(movers, rgb, [cv.labels for cv in canvases],
                         [cv.instances for cv in canvases], visible, rate_hz)
