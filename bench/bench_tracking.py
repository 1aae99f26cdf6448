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
Instance tracking: cost per frame, and mask-IoU association against box trackers by metrics.

Part 1, cost at 1024x2048 with 50 moving instances (an instance-id map and its segments per
frame, as an engine returns them): ``InstanceTracker.update`` (association), ``relabel`` (the
instance image in track ids, done only when the image is used) and, when the ``trackers``
package is installed, its SORT and ByteTrack on the same boxes. Alternating rounds, median ms,
and the ratio to a reference timed in the same rounds: one ``np.bincount`` over the frame's
2 M ids (one pass over the pixels).

Part 2, quality (TrackEval: HOTA, AssA, IDF1, MOTA, ID switches, each set of sequences combined
as one benchmark) of: per-frame ids (no tracking, the baseline), the mask-IoU tracker, and
SORT and ByteTrack of ``trackers`` (one tracker per class, so all associate per class), fed

* the ground truth of street sequences (a perfect detector; ids renumbered per frame in a
  random order): 'crossing' sequences (no object hidden entirely) and 'occlusion' ones (a
  person walks behind a pillar), every frame and with every third frame dropped;
* the trained tiny panoptic model's output on the same sequences (``--model``, default the
  fixtures' model; skipped with ``--skip-model``).

    python bench/bench_tracking.py
    python bench/bench_tracking.py --sequences 2 --skip-model       # quick

``trackers`` (Apache-2.0) is not a dependency of the package: its metadata pulls
opencv-python (the GUI build, which would replace opencv-python-headless's cv2), PyAV and
supervision (about 400 MB). For this comparison install it beside the package with
``pip install --no-deps trackers==2.6.1 supervision pydeprecate defusedxml``.
"""

import argparse
import statistics
import sys
import time
from typing import Any, Callable
import warnings

import numpy as np
from scipy import ndimage

from mask2former_ros.core.postprocess.instance_tracking import (  # noqa: I100
    InstanceTracker, relabel)
from mask2former_ros.core.results import Segment
from mask2former_ros.offline.tracking_metrics import combine, TrackingEvaluation
from mask2former_ros_fixtures.sequences import street_sequence

THINGS = (11, 13)  # person, car (Cityscapes train ids)


def moving_frames(count: int, instances: int, height: int, width: int,
                  seed: int = 0) -> list[tuple[np.ndarray, list[Segment]]]:
    """Return frames of ``instances`` ellipses moving at constant velocities, ids 1..N."""
    rng = np.random.default_rng(seed)
    centre = rng.uniform([0, 0], [height, width], (instances, 2))
    velocity = rng.uniform(-12, 12, (instances, 2))
    radius = rng.uniform(10, 90, (instances, 2))
    classes = rng.choice(THINGS, instances)
    yy, xx = np.ogrid[:height, :width]
    frames = []
    for t in range(count):
        ids = np.zeros((height, width), np.uint16)
        for k in np.argsort(radius[:, 0]):  # larger ones first, smaller on top
            cy, cx = centre[k] + t * velocity[k]
            y0, y1 = int(max(cy - radius[k, 0], 0)), int(min(cy + radius[k, 0] + 1, height))
            x0, x1 = int(max(cx - radius[k, 1], 0)), int(min(cx + radius[k, 1] + 1, width))
            if y1 <= y0 or x1 <= x0:
                continue
            inside = ((yy[y0:y1] - cy) / radius[k, 0]) ** 2 + \
                ((xx[:, x0:x1] - cx) / radius[k, 1]) ** 2 <= 1
            ids[y0:y1, x0:x1][inside] = k + 1
        frames.append(detections(ids, classes, rng, renumber=False))
    return frames


def detections(ids: np.ndarray, classes: Any, rng: np.random.Generator,
               renumber: bool = True) -> tuple[np.ndarray, list[Segment]]:
    """
    Return an id map numbered 1..N (in a random order with ``renumber``) and its segments.

    ``classes``: an (H, W) label map or a per-id class table.
    """
    present = np.unique(ids)
    present = present[present > 0]
    lut = np.zeros(int(ids.max()) + 1, np.uint16)
    lut[present] = (rng.permutation(len(present)) if renumber else np.arange(len(present))) + 1
    frame_ids = lut[ids]
    segments = []
    for k, box in enumerate(ndimage.find_objects(frame_ids), start=1):
        if box is None:
            continue
        mask = frame_ids[box] == k
        if isinstance(classes, np.ndarray) and classes.ndim == 2:
            cls = int(np.bincount(classes[box][mask]).argmax())
        else:
            cls = int(classes[present[k - 1] - 1])
        segments.append(Segment(k, cls, 0.9, (box[1].start, box[0].start, box[1].stop - 1,
                                              box[0].stop - 1), int(mask.sum())))
    return frame_ids, segments


class BoxTracker:
    """A box tracker of ``trackers`` (SORT, ByteTrack), one per class, as a tracker here."""

    def __init__(self, make: Callable[[], Any]) -> None:
        """``make()`` returns a new tracker of ``trackers``."""
        import supervision  # noqa: F401 - fail early when it is missing
        self.make, self.per_class, self.ids, self.next = make, {}, {}, 1

    def update(self, frame_ids: np.ndarray, segments: list[Segment], stamp: float) -> np.ndarray:
        """Return the per-frame id -> track id table (0: the box tracker gave no id)."""
        import supervision as sv
        lut = np.zeros(int(frame_ids.max()) + 1 if frame_ids.size else 1, np.uint16)
        present = {s.class_id for s in segments}
        for cls in sorted(present | set(self.per_class)):
            mine = [s for s in segments if s.class_id == cls]
            tracker = self.per_class.setdefault(cls, self.make())
            if not mine:
                tracker.update(sv.Detections.empty(), timestamp=stamp)
                continue
            found = tracker.update(sv.Detections(
                xyxy=np.array([s.box for s in mine], float),
                confidence=np.array([s.score for s in mine]), class_id=np.full(len(mine), cls),
                data={'k': np.array([s.instance_id for s in mine])}), timestamp=stamp)
            for k, track in zip(found.data['k'], found.tracker_id, strict=True):
                if track >= 0:
                    key = (cls, int(track))
                    self.ids.setdefault(key, len(self.ids) + 1)
                    lut[k] = self.ids[key]
        return lut


class PerFrame:
    """No tracking: the per-frame ids (the node's behaviour before tracking)."""

    def update(self, frame_ids: np.ndarray, segments: list[Segment], stamp: float) -> np.ndarray:
        """Return the identity table."""
        return np.arange(int(frame_ids.max()) + 1 if frame_ids.size else 1, dtype=np.uint16)


class MaskTracker:
    """The package's :class:`InstanceTracker` with the same interface."""

    def __init__(self) -> None:
        """Start without tracks."""
        self.tracker = InstanceTracker()

    def update(self, frame_ids: np.ndarray, segments: list[Segment], stamp: float) -> np.ndarray:
        """Return the per-frame id -> track id table."""
        return self.tracker.update(frame_ids, segments, stamp).lut


def box_makers(rate_hz: float) -> dict[str, Callable[[], Any]]:
    """Return SORT and ByteTrack of ``trackers`` (empty when it is not installed)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            from trackers import ByteTrackTracker, SORTTracker
    except ImportError as exc:
        print(f'(trackers not installed: {exc}; box trackers skipped)')
        return {}
    common = {'lost_track_buffer': 30, 'frame_rate': rate_hz, 'minimum_consecutive_frames': 1,
              'minimum_iou_threshold': 0.1}
    return {'SORT': lambda: BoxTracker(lambda: SORTTracker(**common)),
            'ByteTrack': lambda: BoxTracker(lambda: ByteTrackTracker(
                track_activation_threshold=0.5, **common))}


def cost(args: argparse.Namespace) -> None:
    """Part 1: ms per frame at 1024x2048 with ``--instances`` moving instances."""
    height, width = 1024, 2048
    frames = moving_frames(args.cost_frames, args.instances, height, width)
    counts = [len(s) for _, s in frames]
    print(f'\n== cost: {height}x{width}, {min(counts)}-{max(counts)} instances per frame, '
          f'{len(frames)} frames, {args.rounds} alternating rounds')
    makers = {'mask-IoU tracker (update)': MaskTracker,
              **{f'{name} (trackers)': make for name, make in box_makers(30.0).items()}}
    times: dict[str, list[float]] = {name: [] for name in makers}
    times['relabel (instance image)'] = []
    times['reference: np.bincount over the ids'] = []
    for _ in range(args.rounds):
        for name, make in makers.items():
            tracker = make()
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                for t, (ids, segments) in enumerate(frames):
                    started = time.perf_counter()
                    lut = tracker.update(ids, segments, t / 30.0)
                    times[name].append((time.perf_counter() - started) * 1e3)
        for ids, _ in frames:
            started = time.perf_counter()
            relabel(ids, lut)
            times['relabel (instance image)'].append((time.perf_counter() - started) * 1e3)
            started = time.perf_counter()
            np.bincount(ids.ravel())
            times['reference: np.bincount over the ids'].append(
                (time.perf_counter() - started) * 1e3)
    reference = statistics.median(times['reference: np.bincount over the ids'])
    print(f"{'stage':<40} {'median ms':>10} {'p90 ms':>8} {'x reference':>12}")
    for name, values in times.items():
        p50 = statistics.median(values)
        p90 = float(np.percentile(values, 90))
        print(f'{name:<40} {p50:>10.2f} {p90:>8.2f} {p50 / reference:>12.2f}')


def evaluate(sequences: list[tuple[Any, list]], makers: dict[str, Callable[[], Any]],
             drop_every: int = 0) -> dict[str, dict]:
    """Return each tracker's combined metrics over ``sequences`` [(seq, detections per frame)]."""
    out = {}
    for name, make in makers.items():
        per_sequence = []
        for seq, frames in sequences:
            tracker = make()
            evaluation = TrackingEvaluation(THINGS)
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                for t, ((frame_ids, segments, labels), truth) in enumerate(
                        zip(frames, zip(seq.labels, seq.instances, strict=True), strict=True)):
                    if drop_every and t % drop_every == drop_every - 1:
                        continue
                    lut = tracker.update(frame_ids, segments, t / seq.rate_hz)
                    evaluation.add(t, t, truth[0], truth[1], labels, lut[frame_ids])
            per_sequence.append(evaluation.result()['counts'])
        out[name] = combine(per_sequence)
    return out


def print_quality(title: str, results: dict[str, dict]) -> None:
    """Print one table of combined metrics."""
    print(f'\n== {title}')
    print(f"{'tracker':<26} {'HOTA':>6} {'DetA':>6} {'AssA':>6} {'IDF1':>6} {'MOTA':>7} "
          f"{'ID sw.':>7}")
    for name, m in results.items():
        print(f"{name:<26} {m['hota']:>6.3f} {m['deta']:>6.3f} {m['assa']:>6.3f} "
              f"{m['idf1']:>6.3f} {m['mota']:>7.3f} {m['id_switches']:>7d}")


def quality(args: argparse.Namespace) -> None:
    """Part 2: the trackers on ground truth and on the tiny panoptic model's output."""
    makers = {'per-frame ids (baseline)': PerFrame, 'mask-IoU tracker': MaskTracker,
              **box_makers(args.rate)}
    engine = None
    if not args.skip_model:
        from mask2former_ros.core.backends.torch_engine import SegmentationEngine
        from mask2former_ros.core.engine_config import EngineConfig
        from mask2former_ros_fixtures.tiny_model import ensure_tiny_panoptic_model
        model = args.model or str(ensure_tiny_panoptic_model())
        engine = SegmentationEngine(EngineConfig(model=model, task='panoptic'))
    for kind in ('crossing', 'occlusion'):
        rng = np.random.default_rng(0)
        truth, model = [], []
        for seed in range(args.sequences):
            seq = street_sequence(100 + seed, args.frames, args.height, args.width, args.rate,
                                  occlusion=kind == 'occlusion')
            truth.append((seq, [(*detections(ids, labels, rng), labels) for labels, ids in
                                zip(seq.labels, seq.instances, strict=True)]))
            if engine is not None:
                frames = []
                for rgb in seq.rgb:
                    result = engine.segment(rgb)
                    frames.append((result.instances, list(result.segments), result.labels))
                model.append((seq, frames))
        count = f'{args.sequences} x {args.frames} frames {args.height}x{args.width}'
        print_quality(f'{kind}, ground truth fed ({count})', evaluate(truth, makers))
        print_quality(f'{kind}, ground truth fed, every 3rd frame dropped',
                      evaluate(truth, makers, drop_every=3))
        if model:
            print_quality(f'{kind}, tiny panoptic model ({count})', evaluate(model, makers))


def main() -> int:
    """Run the parts the arguments select."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--instances', type=int, default=50)
    parser.add_argument('--cost-frames', type=int, default=20)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--sequences', type=int, default=6, help='sequences per kind')
    parser.add_argument('--frames', type=int, default=30)
    parser.add_argument('--height', type=int, default=256)
    parser.add_argument('--width', type=int, default=512)
    parser.add_argument('--rate', type=float, default=10.0)
    parser.add_argument('--model', default='', help='panoptic checkpoint (default: tiny)')
    parser.add_argument('--skip-model', action='store_true')
    parser.add_argument('--skip-cost', action='store_true')
    parser.add_argument('--skip-quality', action='store_true')
    args = parser.parse_args()
    if not args.skip_cost:
        cost(args)
    if not args.skip_quality:
        quality(args)
    return 0


if __name__ == '__main__':
    sys.exit(main())
