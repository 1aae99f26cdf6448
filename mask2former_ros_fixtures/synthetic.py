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
Procedurally generated street scenes with exact ground truth in Cityscapes train ids.

The scenes are cartoon-like but not trivial: a blue sky gradient on top, a row of warm
brown/grey buildings with windows, trees, a road trapezoid in perspective with sidewalks on
both sides, cars and pedestrians whose size follows the perspective, random lighting, colour
jitter per object and sensor noise.  They are used to train and test a tiny Mask2Former
(:mod:`mask2former_ros_fixtures.tiny_model`) without any real data set.

Every class has a jittered but characteristic colour range (sky strongly blue, vegetation
green, road grey-purple, sidewalk light warm grey, buildings warm brown/grey with windows, cars
in paint colours with dark windows and wheels, people in bright clothes with a skin-coloured
head), and the layout is asymmetric (sky always on top, road always at the bottom), so that a
pipeline which transposes, flips upside down or swaps the colour channels of the frames
visibly loses accuracy.  The scenes are left-right symmetric in distribution, so a horizontal
flip is *not* detectable with them.

Panoptic scenes (:func:`make_panoptic_scene`) add instance ground truth: every car and every
person is its own instance, and some of them stand right next to or partly in front of another
one of the same kind, so that instance separation is needed (not only class pixels).

Only numpy is needed; everything is vectorised and deterministic for a given generator.
"""

from collections.abc import Iterator

import numpy as np

# Cityscapes train ids of the classes that appear in the synthetic scenes.
ROAD = 0
SIDEWALK = 1
BUILDING = 2
VEGETATION = 8
SKY = 10
PERSON = 11
CAR = 13

# The thing classes of the scenes (Cityscapes' instance classes that occur in them).
THING_CLASSES: frozenset[int] = frozenset({PERSON, CAR})
# Probability that a car or person of a panoptic scene gets a neighbour of the same kind
# touching or overlapping it, and the most instances a panoptic scene places.
COMPANION_PROBABILITY = 0.4
MAX_INSTANCES = 14

TINY_CLASSES: dict[int, str] = {
    ROAD: 'road',
    SIDEWALK: 'sidewalk',
    BUILDING: 'building',
    VEGETATION: 'vegetation',
    SKY: 'sky',
    PERSON: 'person',
    CAR: 'car',
}

_BUILDING_COLOURS = np.array([
    (125, 100, 82), (150, 118, 92), (112, 104, 98), (168, 140, 112), (98, 82, 72),
    (140, 128, 118), (160, 104, 80), (132, 120, 100),
], dtype=np.float32)
# Cars come in the usual paint colours (red, blue, white, silver, black)...
_CAR_COLOURS = np.array([
    (200, 30, 35), (150, 20, 30), (30, 55, 160), (20, 35, 90), (235, 235, 235),
    (170, 172, 178), (28, 28, 30),
], dtype=np.float32)
# ...while people wear brighter "fashion" colours that no other class has (pink, magenta,
# orange, yellow, teal, purple, coral).
_CLOTHES_COLOURS = np.array([
    (235, 85, 165), (200, 40, 180), (245, 135, 30), (235, 205, 40), (20, 170, 170),
    (135, 55, 205), (250, 110, 95),
], dtype=np.float32)
_NOISE_TILE = 256
_NOISE_CLIP = 32
_SKIN_COLOURS = np.array([
    (235, 200, 170), (200, 150, 110), (140, 95, 65), (90, 60, 45),
], dtype=np.float32)


class _Canvas:
    """
    An RGB uint8 canvas with its label map; shapes are painted inside bounding boxes.

    With ``instances``, an (H, W) uint16 map receives :attr:`instance` wherever a shape is
    painted (0 for stuff), so a nearer object hides a farther one in it as in the image.
    """

    def __init__(self, height: int, width: int, instances: bool = False) -> None:
        self.h = height
        self.w = width
        self.rgb = np.zeros((height, width, 3), dtype=np.uint8)
        self.labels = np.zeros((height, width), dtype=np.uint8)
        self.instances = np.zeros((height, width), dtype=np.uint16) if instances else None
        self.instance = 0

    def box(self, y0: float, y1: float, x0: float, x1: float) -> tuple[slice, slice] | None:
        """Return the clipped pixel slices covering [y0, y1) x [x0, x1), or None when empty."""
        iy0 = max(int(np.floor(y0)), 0)
        iy1 = min(int(np.ceil(y1)), self.h)
        ix0 = max(int(np.floor(x0)), 0)
        ix1 = min(int(np.ceil(x1)), self.w)
        if iy1 <= iy0 or ix1 <= ix0:
            return None
        return slice(iy0, iy1), slice(ix0, ix1)

    def paint(self, sl: tuple[slice, slice], mask: np.ndarray | None, colour: np.ndarray,
              label: int) -> None:
        """Paint ``colour`` (RGB or per-pixel HxWx3) and ``label`` where ``mask`` is set."""
        colour = np.clip(colour, 0, 255).astype(np.uint8)
        if mask is None:
            self.rgb[sl] = colour
            self.labels[sl] = label
            if self.instances is not None:
                self.instances[sl] = self.instance
            return
        np.copyto(self.rgb[sl], colour, where=mask[:, :, None])
        np.copyto(self.labels[sl], label, where=mask)
        if self.instances is not None:
            np.copyto(self.instances[sl], self.instance, where=mask)

    def ellipse(self, cy: float, cx: float, ry: float, rx: float, colour: np.ndarray,
                label: int) -> None:
        """Paint a filled axis-aligned oval (at least one pixel when it covers a centre)."""
        ry = max(ry, 0.5)
        rx = max(rx, 0.5)
        sl = self.box(cy - ry, cy + ry + 1, cx - rx, cx + rx + 1)
        if sl is None:
            return
        yy = (np.arange(sl[0].start, sl[0].stop, dtype=np.float32) + 0.5 - cy) / ry
        xx = (np.arange(sl[1].start, sl[1].stop, dtype=np.float32) + 0.5 - cx) / rx
        mask = yy[:, None] ** 2 + xx[None, :] ** 2 <= 1.0
        if mask.any():
            self.paint(sl, mask, colour, label)

    def rect(self, y0: float, y1: float, x0: float, x1: float, colour: np.ndarray,
             label: int) -> None:
        """Paint a filled rectangle, rounding to pixel edges (at least one pixel wide)."""
        iy0, ix0 = round(y0), round(x0)
        sl = self.box(iy0, max(round(y1), iy0 + 1), ix0, max(round(x1), ix0 + 1))
        if sl is not None:
            self.paint(sl, None, colour, label)

    def rounded_rect(self, y0: float, y1: float, x0: float, x1: float, radius: float,
                     colour: np.ndarray, label: int) -> None:
        """Paint a rectangle whose corners are rounded with ``radius`` pixels."""
        sl = self.box(y0, y1, x0, x1)
        if sl is None:
            return
        r = max(min(radius, (y1 - y0) / 2, (x1 - x0) / 2), 1e-3)
        yy = np.arange(sl[0].start, sl[0].stop, dtype=np.float32)[:, None] + 0.5
        xx = np.arange(sl[1].start, sl[1].stop, dtype=np.float32)[None, :] + 0.5
        dy = np.maximum(np.maximum(y0 + r - yy, yy - (y1 - r)), 0.0)
        dx = np.maximum(np.maximum(x0 + r - xx, xx - (x1 - r)), 0.0)
        mask = dy ** 2 + dx ** 2 <= r * r
        mask &= (yy >= y0) & (yy < y1) & (xx >= x0) & (xx < x1)
        if not mask.any():
            # Sub-pixel objects still cover the pixel holding their centre.
            mask[mask.shape[0] // 2, mask.shape[1] // 2] = True
        self.paint(sl, mask, colour, label)


def _jitter(rng: np.random.Generator, colour: np.ndarray, amount: float) -> np.ndarray:
    """Return ``colour`` with a random brightness gain and per-channel offsets."""
    gain = rng.uniform(1.0 - amount, 1.0 + amount)
    offset = rng.uniform(-amount, amount, size=3) * 60.0
    return np.clip(colour * gain + offset, 0.0, 255.0).astype(np.float32)


def _green(rng: np.random.Generator) -> np.ndarray:
    """Return a random foliage green."""
    return np.array([rng.uniform(30, 80), rng.uniform(95, 160), rng.uniform(20, 60)],
                    dtype=np.float32)


def _draw_background(rng: np.random.Generator, cv: _Canvas, horizon: float,
                     vx: float, half_road: float, walk: float) -> np.ndarray:
    """Paint sky, buildings, sidewalks and road; return the ground line per column."""
    h, w = cv.h, cv.w
    depth = max(h - horizon, 1e-3)
    ys = np.arange(h, dtype=np.float32) + 0.5

    # Sky: strongly blue vertical gradient, darker at the top.
    top = np.array([rng.uniform(30, 80), rng.uniform(80, 130), rng.uniform(175, 235)],
                   dtype=np.float32)
    low = np.array([rng.uniform(120, 175), rng.uniform(170, 210), rng.uniform(225, 255)],
                   dtype=np.float32)
    frac = np.clip(ys / max(horizon, 1.0), 0.0, 1.0)[:, None]
    cv.rgb[:] = (top + (low - top) * frac).astype(np.uint8)[:, None, :]
    cv.labels[:] = SKY

    # Row where the outer sidewalk edge crosses each column: facades reach down to it.
    xs = np.arange(w, dtype=np.float32) + 0.5
    ground = horizon + np.abs(xs - vx) / max(half_road * (1.0 + walk), 1e-3) * depth

    # Buildings: contiguous facades with random widths and heights, painted down to the
    # bottom; the road and sidewalks painted afterwards cut them at the ground line.
    x = 0.0
    while x < w:
        bw = w * rng.uniform(0.07, 0.28)
        if rng.random() < 0.15:
            # Gap between facades: the sky above a park hedge.
            sl = cv.box(horizon - h * rng.uniform(0.0, 0.06), h, x, x + bw * 0.5)
            x += bw * 0.5
            if sl is not None:
                cv.paint(sl, None, _green(rng), VEGETATION)
            continue
        b_top = horizon - h * rng.uniform(0.08, 0.5)
        colour = _jitter(rng, _BUILDING_COLOURS[rng.integers(len(_BUILDING_COLOURS))], 0.15)
        sl = cv.box(b_top, h, x, x + bw)
        x0 = x
        x += bw
        if sl is None:
            continue
        cv.paint(sl, None, colour, BUILDING)
        if rng.random() < 0.8:
            # Window grid on the facade above the horizon: darker or lit (still building).
            period_y = max(h * rng.uniform(0.04, 0.08), 2.0)
            period_x = max(w * rng.uniform(0.02, 0.05), 2.0)
            lit = rng.random() < 0.3
            win_col = (np.array([230, 200, 120], dtype=np.float32) if lit
                       else colour * rng.uniform(0.35, 0.6))
            wsl = cv.box(b_top, horizon, x0, x)
            if wsl is None:
                continue
            fy = ((ys[wsl[0]] - b_top) / period_y) % 1.0
            fx = ((xs[wsl[1]] - x0) / period_x) % 1.0
            win = ((fy > 0.35) & (fy < 0.85))[:, None] & ((fx > 0.25) & (fx < 0.75))[None, :]
            np.copyto(cv.rgb[wsl], np.clip(win_col, 0, 255).astype(np.uint8),
                      where=win[:, :, None])

    # Ground below the horizon: per row, a sidewalk span with the road span inside it.
    road_col = np.array([rng.uniform(80, 110), rng.uniform(72, 95), rng.uniform(88, 118)],
                        dtype=np.float32)
    walk_col = np.array([rng.uniform(160, 200), rng.uniform(140, 170), rng.uniform(135, 165)],
                        dtype=np.float32)
    line_col = np.array([225, 225, 215], dtype=np.float32) * rng.uniform(0.8, 1.0)
    r0 = min(max(int(np.ceil(horizon - 0.5)), 0), h)
    t = (ys[r0:] - horizon) / depth
    road_rows = (road_col * (1.0 - 0.15 * t)[:, None]).astype(np.uint8)
    walk_rows = (walk_col - ((np.floor(t * 14.0) % 2) * 10.0)[:, None]).astype(np.uint8)
    line_col = line_col.astype(np.uint8)
    half = t * half_road
    outer = half * (1.0 + walk)
    dash = half * 0.035 + 0.3
    spans = np.stack([vx - outer, vx + outer, vx - half, vx + half, vx - dash, vx + dash])
    spans = np.clip(np.round(spans), 0, w).astype(np.int64).T.tolist()
    dashed = (np.floor(t * t * 18.0) % 2 == 0).tolist()
    for i, (a0, a1, b0, b1, c0, c1) in enumerate(spans):
        y = r0 + i
        if a1 > a0:
            cv.rgb[y, a0:a1] = walk_rows[i]
            cv.labels[y, a0:a1] = SIDEWALK
        if b1 > b0:
            cv.rgb[y, b0:b1] = road_rows[i]
            cv.labels[y, b0:b1] = ROAD
            if dashed[i] and c1 > c0:
                cv.rgb[y, c0:c1] = line_col
    return ground


def _draw_tree(rng: np.random.Generator, cv: _Canvas, base_y: float, x: float,
               scale: float) -> None:
    """Paint a tree (trunk and layered canopy) or a bush standing at ``base_y``."""
    h = cv.h
    green = _green(rng)
    if rng.random() < 0.3:
        # Bush / hedge.
        ry = h * scale * rng.uniform(0.05, 0.1)
        rx = ry * rng.uniform(1.5, 4.0)
        for _ in range(3):
            cv.ellipse(base_y - ry * rng.uniform(0.6, 1.0), x + rx * rng.uniform(-0.4, 0.4),
                       ry, rx * rng.uniform(0.6, 1.0), _jitter(rng, green, 0.15), VEGETATION)
        return
    height = h * scale * rng.uniform(0.35, 0.7)
    trunk_w = max(height * rng.uniform(0.08, 0.12), 0.6)
    trunk = np.array([rng.uniform(70, 100), rng.uniform(50, 70), rng.uniform(30, 45)],
                     dtype=np.float32)
    cv.rect(base_y - height * 0.55, base_y, x - trunk_w / 2, x + trunk_w / 2, trunk, VEGETATION)
    crown_r = height * rng.uniform(0.22, 0.32)
    cy = base_y - height + crown_r
    for _ in range(int(rng.integers(3, 6))):
        cv.ellipse(cy + crown_r * rng.uniform(-0.3, 0.4), x + crown_r * rng.uniform(-0.5, 0.5),
                   crown_r * rng.uniform(0.6, 0.9), crown_r * rng.uniform(0.6, 1.0),
                   _jitter(rng, green, 0.2), VEGETATION)


def _draw_car(rng: np.random.Generator, cv: _Canvas, base_y: float, x: float,
              scale: float) -> None:
    """Paint a car seen from behind or from the side, with cabin windows and wheels."""
    h = cv.h
    body_h = h * scale * rng.uniform(0.1, 0.14)
    width = body_h * rng.uniform(1.6, 3.2)
    colour = _jitter(rng, _CAR_COLOURS[rng.integers(len(_CAR_COLOURS))], 0.12)
    # Wheels first so the body overlaps their upper half.
    wheel_r = body_h * 0.32
    dark = np.array([20, 20, 22], dtype=np.float32) * rng.uniform(0.8, 1.5)
    for wx in (x - width * 0.32, x + width * 0.32):
        cv.ellipse(base_y - wheel_r, wx, wheel_r, wheel_r * rng.uniform(0.6, 1.0), dark, CAR)
    body_top = base_y - body_h - wheel_r * 0.6
    cv.rounded_rect(body_top, base_y - wheel_r * 0.6, x - width / 2, x + width / 2,
                    body_h * 0.3, colour, CAR)
    # Glossy paint: a highlight along the top of the body, a dark bumper along the bottom.
    cv.rect(body_top + body_h * 0.08, body_top + body_h * 0.2, x - width * 0.45,
            x + width * 0.45, np.minimum(colour * 1.25 + 30, 255), CAR)
    cv.rect(base_y - wheel_r * 0.6 - body_h * 0.22, base_y - wheel_r * 0.6 - body_h * 0.05,
            x - width * 0.47, x + width * 0.47, colour * 0.35 + 10, CAR)
    cabin_h = body_h * rng.uniform(0.55, 0.8)
    cabin_w = width * rng.uniform(0.55, 0.75)
    cx = x + width * rng.uniform(-0.08, 0.08)
    cv.rounded_rect(body_top - cabin_h, body_top + 1.0, cx - cabin_w / 2, cx + cabin_w / 2,
                    cabin_h * 0.4, colour * 0.95, CAR)
    glass = np.array([60, 70, 85], dtype=np.float32) * rng.uniform(0.7, 1.3)
    inset = max(cabin_h * 0.15, 0.5)
    cv.rect(body_top - cabin_h + inset, body_top - inset * 0.3, cx - cabin_w / 2 + inset,
            cx + cabin_w / 2 - inset, glass, CAR)
    # Rear lights.
    light = np.array([200, 20, 20], dtype=np.float32)
    lh = max(body_h * 0.15, 0.5)
    cv.rect(body_top + body_h * 0.25, body_top + body_h * 0.25 + lh, x - width / 2 + lh,
            x - width / 2 + 3 * lh, light, CAR)
    cv.rect(body_top + body_h * 0.25, body_top + body_h * 0.25 + lh, x + width / 2 - 3 * lh,
            x + width / 2 - lh, light, CAR)


def _draw_person(rng: np.random.Generator, cv: _Canvas, base_y: float, x: float,
                 scale: float) -> None:
    """Paint a pedestrian: legs, a thin elliptic torso, arms and a head."""
    h = cv.h
    height = h * scale * rng.uniform(0.3, 0.45)
    top_col = _jitter(rng, _CLOTHES_COLOURS[rng.integers(len(_CLOTHES_COLOURS))], 0.12)
    leg_col = _jitter(rng, _CLOTHES_COLOURS[rng.integers(len(_CLOTHES_COLOURS))], 0.12)
    skin = _jitter(rng, _SKIN_COLOURS[rng.integers(len(_SKIN_COLOURS))], 0.08)
    leg_w = max(height * 0.08, 0.5)
    stride = height * rng.uniform(0.0, 0.08)
    hip = base_y - height * 0.47
    cv.rect(hip, base_y, x - stride - leg_w, x - stride + leg_w * 0.3, leg_col, PERSON)
    cv.rect(hip, base_y, x + stride - leg_w * 0.3, x + stride + leg_w, leg_col, PERSON)
    torso_ry = height * 0.2
    torso_rx = height * rng.uniform(0.12, 0.16)
    cv.ellipse(hip - torso_ry * 0.8, x, torso_ry, torso_rx, top_col, PERSON)
    cv.rect(hip - torso_ry * 1.5, hip - torso_ry * 0.1, x - torso_rx * 1.25,
            x + torso_rx * 1.25, top_col * 0.9, PERSON)
    head_r = height * 0.075
    head_y = hip - torso_ry * 1.8 - head_r
    cv.ellipse(head_y, x, head_r, head_r * 0.85, skin, PERSON)
    hair = np.array([40, 30, 25], dtype=np.float32) * rng.uniform(0.6, 2.5)
    cv.ellipse(head_y - head_r * 0.55, x, head_r * 0.5, head_r * 0.85, hair, PERSON)


def _count(rng: np.random.Generator) -> int:
    """Return how many cars or persons to place: usually 1-4, sometimes none."""
    return 0 if rng.random() < 0.15 else int(rng.integers(1, 5))


def make_scene(rng: np.random.Generator, height: int,
               width: int) -> tuple[np.ndarray, np.ndarray]:
    """
    Generate one street scene and its labels.

    ``rng`` is the source of randomness (the scene is a pure function of its state);
    ``height`` and ``width`` are in pixels (>= 1). Returns ``(rgb, labels)``: an (H, W, 3)
    uint8 RGB image and an (H, W) uint8 map of Cityscapes train ids, using only the ids in
    :data:`TINY_CLASSES`.

    """
    rgb, labels, _ = _render(rng, height, width, panoptic=False)
    return rgb, labels


def make_panoptic_scene(rng: np.random.Generator, height: int,
                        width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Generate one street scene with its labels and instance ids.

    Like :func:`make_scene` (a pure function of the state of ``rng``), but each car and person
    may get a neighbour of the same kind touching or overlapping it (extra random draws, so the
    scene differs from the one :func:`make_scene` draws from the same state). Returns
    ``(rgb, labels, instances)``; ``instances`` is an (H, W) uint16 map: 0 for stuff, and
    ids 1..N for the cars and persons in paint order (far to near), each id present in the
    image (an object hidden entirely by nearer ones gets no id) and of a single class of
    :data:`THING_CLASSES`.
    """
    rgb, labels, instances = _render(rng, height, width, panoptic=True)
    assert instances is not None
    return rgb, labels, instances


def _companion(rng: np.random.Generator, obj: tuple[float, int, float], h: int, horizon: float,
               depth: float) -> tuple[float, int, float]:
    """Return an object of the same kind beside ``obj``, touching or overlapping it."""
    base_y, kind, x = obj
    scale = (base_y - horizon) / depth * 0.85 + 0.15
    # Typical object widths (see _draw_car and _draw_person) at this depth.
    width = h * scale * (0.29 if kind == 1 else 0.11)
    near = rng.uniform(0.55, 1.0) if kind == 1 else rng.uniform(0.4, 1.0)
    side = rng.choice([-1.0, 1.0])
    return (base_y + depth * rng.uniform(-0.04, 0.04), kind, x + side * near * width)


def _render(rng: np.random.Generator, height: int, width: int,
            panoptic: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Return ``(rgb, labels, instances)``; ``instances`` and companions only if ``panoptic``."""
    h, w = int(height), int(width)
    if h < 1 or w < 1:
        raise ValueError(f'scene size must be positive, got {h}x{w}')
    cv = _Canvas(h, w, instances=panoptic)
    horizon = h * rng.uniform(0.32, 0.55)
    vx = w * rng.uniform(0.3, 0.7)
    half_road = w * rng.uniform(0.45, 0.9)
    walk = rng.uniform(0.3, 0.7)
    ground = _draw_background(rng, cv, horizon, vx, half_road, walk)
    depth = max(h - horizon, 1e-3)

    # Objects: (base row, kind, x); painted far to near so nearer ones occlude.
    objects: list[tuple[float, int, float]] = []
    for _ in range(int(rng.integers(1, 5))):
        # Trees stand on the sidewalk or just in front of the facades.
        t = rng.uniform(0.15, 0.6)
        side = rng.choice([-1.0, 1.0])
        x = vx + side * t * half_road * (1.0 + walk * rng.uniform(0.3, 1.0))
        objects.append((horizon + t * depth, 0, x))
    for _ in range(_count(rng)):
        t = rng.uniform(0.25, 0.95)
        x = vx + rng.uniform(-0.75, 0.75) * t * half_road
        objects.append((horizon + t * depth, 1, x))
    for _ in range(_count(rng)):
        t = rng.uniform(0.4, 1.0)
        side = rng.choice([-1.0, 1.0])
        on_road = rng.random() < 0.25
        off = rng.uniform(0.3, 0.9) if on_road else rng.uniform(1.05, 1.0 + walk * 0.9)
        objects.append((horizon + t * depth, 2, vx + side * off * t * half_road))
    if panoptic:
        things = [obj for obj in objects if obj[1] != 0]
        for obj in things:
            if len(things) < MAX_INSTANCES and rng.random() < COMPANION_PROBABILITY:
                things.append(_companion(rng, obj, h, horizon, depth))
                objects.append(things[-1])
    objects.sort(key=lambda o: o[0])
    painted = 0
    for base_y, kind, x in objects:
        scale = (base_y - horizon) / depth * 0.85 + 0.15
        if kind == 0:
            cv.instance = 0
            _draw_tree(rng, cv, min(base_y, float(np.interp(x, np.arange(w) + 0.5, ground))),
                       x, scale)
            continue
        painted += 1
        cv.instance = painted
        if kind == 1:
            _draw_car(rng, cv, base_y, x, scale)
        else:
            _draw_person(rng, cv, base_y, x, scale)

    # Lighting (global gain, gamma, slight white balance) and Gaussian sensor noise, both
    # through one lookup table indexed by pixel value + noise offset + channel offset.
    gain = rng.uniform(0.65, 1.25)
    gamma = rng.uniform(0.75, 1.35)
    balance = 1.0 + rng.uniform(-0.06, 0.06, size=3)
    levels = np.clip(np.arange(-_NOISE_CLIP, 256 + _NOISE_CLIP, dtype=np.float32), 0, 255)
    lut = 255.0 * gain * balance[:, None] * (levels[None, :] / 255.0) ** gamma
    lut = np.clip(lut, 0, 255).astype(np.uint8).ravel()
    sigma = rng.uniform(2.0, 8.0)
    # A fresh noise tile repeated over large frames keeps the noise cheap at any size.
    th, tw = min(h, _NOISE_TILE), min(w, _NOISE_TILE)
    tile = rng.standard_normal((th, tw, 3), dtype=np.float32) * np.float32(sigma)
    tile = np.clip(np.round(tile), -_NOISE_CLIP, _NOISE_CLIP).astype(np.int16)
    tile += np.arange(3, dtype=np.int16) * np.int16(256 + 2 * _NOISE_CLIP) + _NOISE_CLIP
    index = cv.rgb.astype(np.int16)
    for y in range(0, h, th):
        for x in range(0, w, tw):
            block = index[y:y + th, x:x + tw]
            block += tile[:block.shape[0], :block.shape[1]]
    instances = cv.instances
    if instances is not None:
        # Number the visible instances 1..N in paint order (fully hidden ones drop out).
        present = np.unique(instances)
        present = present[present != 0]
        renumber = np.zeros(painted + 1, dtype=np.uint16)
        renumber[present] = np.arange(1, len(present) + 1, dtype=np.uint16)
        instances = renumber[instances]
    return np.take(lut, index), cv.labels, instances


def scene_stream(seed: int, n: int, height: int,
                 width: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``n`` scenes ``(rgb, labels)`` of one size from a generator seeded with ``seed``."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield make_scene(rng, height, width)


def panoptic_scene_stream(seed: int, n: int, height: int,
                          width: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``n`` scenes ``(rgb, labels, instances)`` from a generator seeded with ``seed``."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield make_panoptic_scene(rng, height, width)
