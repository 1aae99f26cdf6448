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
Mask2Former panoptic and instance post-processing without Q full-resolution masks.

The references are transformers' ``post_process_panoptic_segmentation`` and
``post_process_instance_segmentation``. Both upsample the query mask logits to a score grid
(384x384 there; here the model input size, as the semantic path), apply the sigmoid and then
upsample every kept query's mask to the output size: Q planes of H x W (25 planes of 1024x2048
are 200 MB of fp32) before an argmax and per-query pixel counts.

Here everything query-shaped stays on the grid; the output size is touched once per pixel:

* **Panoptic.** A pixel belongs to the query with the largest score-weighted mask probability.
  Bilinear upsampling is linear, so that argmax is the upsampled argmax of
  :func:`~mask2former_ros.core.postprocess.grid_upsampling.upsampled_argmax` (exact scores only
  where the four grid corners of a pixel disagree). A query's segment is kept when its pixels are
  more
  than ``overlap_threshold`` of the pixels where its weighted probability reaches
  ``mask_threshold``; that count is exact too
  (:func:`~mask2former_ros.core.postprocess.grid_upsampling.count_at_least`). Stuff segments of a
  class are fused (transformers' ``label_ids_to_fuse``),
  thing segments become instances.
* **Instance.** The top-Q (query, class) pairs above ``score_threshold``, each mask where its
  grid logit is positive, nearest-upsampled as transformers does. Overlaps go to the higher
  score (transformers: the later query in an unsorted top-k).

Written once for numpy arrays and torch tensors
(:mod:`~mask2former_ros.core.postprocess.array_ops`): the ONNX Runtime backend and the torch engine
on the CPU run it on numpy (no torch imported), the
torch engine on a GPU on the device. Pixel counts come from one histogram of the output index
map, boxes from one pass of ``scipy.ndimage.find_objects`` over the host instance image.
Instance ids are 1..N in order of falling score; labels are
:data:`~mask2former_ros.core.results.NO_SEGMENT` where no segment is kept.
"""

from dataclasses import dataclass
from typing import Any, Sequence

from mask2former_ros.core.engine_config import EngineConfig, parse_threshold
from mask2former_ros.core.postprocess.array_ops import ops_for
from mask2former_ros.core.postprocess.grid_upsampling import count_at_least, upsampled_argmax
from mask2former_ros.core.results import NO_SEGMENT, Segment, SegmentationResult
import numpy as np
from scipy import ndimage

__all__ = ['count_at_least', 'instance_inference', 'InstanceMaps', 'panoptic_inference',
           'query_inference', 'SegmentRecord', 'segments_with_boxes', 'thresholds_of',
           'Thresholds', 'to_result']


@dataclass(frozen=True)
class Thresholds:
    """transformers' ``threshold``, ``mask_threshold`` and ``overlap_mask_area_threshold``."""

    score: float = 0.5
    mask: float = 0.5
    overlap: float = 0.8


def thresholds_of(config: EngineConfig) -> Thresholds:
    """Return the validated thresholds of an engine configuration (ValueError if out of 0..1)."""
    return Thresholds(score=parse_threshold('score_threshold', config.score_threshold),
                      mask=parse_threshold('mask_threshold', config.mask_threshold),
                      overlap=parse_threshold('overlap_threshold', config.overlap_threshold))


@dataclass(frozen=True)
class SegmentRecord:
    """An instance before its box is read on the host: id, class, score, pixel count."""

    instance_id: int
    class_id: int
    score: float
    area: int


@dataclass
class InstanceMaps:
    """
    One frame where it was computed: labels (H, W), instance ids (H, W) and the instances.

    Arrays are numpy arrays or torch tensors, as the logits were. Ids are uint8 up to 255
    instances (int32 above): fewer bytes to write and copy. ``records[n]`` is instance
    ``n + 1``; :func:`segments_with_boxes` adds the boxes.
    """

    labels: Any
    instances: Any
    records: tuple[SegmentRecord, ...]


def segments_with_boxes(instances: np.ndarray,
                        records: Sequence[SegmentRecord]) -> tuple[Segment, ...]:
    """
    Return the Segments of ``records`` with their boxes read from the host instance image.

    One pass of ``scipy.ndimage.find_objects`` over the (H, W) ids gives every instance's
    bounds; ids are 1..N, so record ``n`` is instance ``n + 1``.
    """
    if not records:
        return ()
    slices = ndimage.find_objects(instances, max_label=len(records))
    segments = []
    for record, box in zip(records, slices, strict=True):
        if box is None:
            raise RuntimeError(
                f'instance {record.instance_id} has no pixels in the instance image')
        rows, cols = box
        segments.append(Segment(
            instance_id=record.instance_id, class_id=record.class_id, score=record.score,
            box=(cols.start, rows.start, cols.stop - 1, rows.stop - 1), area=record.area))
    return tuple(segments)


def to_result(labels: np.ndarray, instances: np.ndarray, records: Sequence[SegmentRecord],
              label_dtype: Any) -> SegmentationResult:
    """Return the frame's result from its host maps: uint16 ids and segments with boxes."""
    return SegmentationResult(labels.astype(label_dtype, copy=False),
                              instances=instances.astype(np.uint16),
                              segments=segments_with_boxes(instances, records))


def _empty(ops: Any, out_h: int, out_w: int, label_dtype: Any) -> InstanceMaps:
    return InstanceMaps(ops.full((out_h, out_w), NO_SEGMENT, label_dtype),
                        ops.zeros((out_h, out_w), ops.uint8), ())


def query_inference(task: str, class_logits: Any, mask_logits: Any, out_h: int, out_w: int,
                    grid: tuple[int, int], thing_ids: frozenset[int],
                    thresholds: Thresholds = Thresholds()) -> InstanceMaps:
    """Run :func:`panoptic_inference` or :func:`instance_inference` for ``task``."""
    if task == 'panoptic':
        return panoptic_inference(class_logits, mask_logits, out_h, out_w, grid, thing_ids,
                                  thresholds)
    return instance_inference(class_logits, mask_logits, out_h, out_w, grid, thresholds)


def panoptic_inference(class_logits: Any, mask_logits: Any, out_h: int, out_w: int,
                       grid: tuple[int, int], thing_ids: frozenset[int],
                       thresholds: Thresholds = Thresholds()) -> InstanceMaps:
    """
    Panoptic result of one frame: transformers' panoptic post-processing, stuff fused.

    ``class_logits`` (Q, C + 1), ``mask_logits`` (Q, h, w); ``grid`` is the score grid.
    Labels are uint8 up to 255 classes (int32 above); instance ids uint8 up to 255 (int32
    above), where the logits are.
    """
    ops = ops_for(mask_logits)
    num_classes = class_logits.shape[-1] - 1
    label_dtype = ops.uint8 if num_classes < NO_SEGMENT else ops.int32
    scores, classes = ops.max_argmax(ops.softmax(class_logits, -1), -1)
    keep = (classes != num_classes) & (scores > thresholds.score)
    if not bool(keep.any()):
        return _empty(ops, out_h, out_w, label_dtype)
    scores, classes = scores[keep], classes[keep]
    weighted = ops.sigmoid(ops.resize(mask_logits[keep], grid)) * scores[:, None, None]
    kept = weighted.shape[0]
    if out_h * out_w <= grid[0] * grid[1]:
        # Output no larger than the grid: the reference's dense computation is the cheap one.
        dense = ops.resize(weighted, (out_h, out_w))
        index = ops.astype(dense.argmax(0), ops.uint8 if kept <= 256 else ops.int32)
        original = (dense >= thresholds.mask).sum((1, 2))
        del dense
    else:
        index = upsampled_argmax(weighted, out_h, out_w)
        original = count_at_least(weighted, thresholds.mask, out_h, out_w)
    area = ops.bincount(index.reshape(-1), kept)[:kept]
    valid = (area > 0) & (original > 0)
    overlap_floor = thresholds.overlap * ops.astype(original, ops.float32)
    valid &= ops.astype(area, ops.float32) > overlap_floor
    class_list, valid_list, area_list = classes.tolist(), valid.tolist(), area.tolist()
    score_list = [round(s, 6) for s in scores.tolist()]
    things = [k for k in range(kept) if valid_list[k] and class_list[k] in thing_ids]
    things.sort(key=lambda k: -score_list[k])  # stable: query order among equal scores
    label_table = ops.astype(ops.where(valid, classes, NO_SEGMENT), label_dtype)
    instance_ids = [0] * kept
    for instance_id, k in enumerate(things, start=1):
        instance_ids[k] = instance_id
    instance_table = ops.asarray(instance_ids, ops.uint8 if len(things) <= 255 else ops.int32)
    records = tuple(SegmentRecord(n, class_list[k], score_list[k], area_list[k])
                    for n, k in enumerate(things, start=1))
    return InstanceMaps(*ops.lookup(index, [label_table, instance_table]), records)


def _nearest_index(ops: Any, out_size: int, in_size: int) -> Any:
    """Return the source index of ``F.interpolate(mode='nearest')`` for each output position."""
    position = ops.arange(out_size, ops.float32)
    return ops.clip(ops.astype(ops.floor(position * (in_size / out_size)), ops.int64), None,
                    in_size - 1)


def instance_inference(class_logits: Any, mask_logits: Any, out_h: int, out_w: int,
                       grid: tuple[int, int],
                       thresholds: Thresholds = Thresholds()) -> InstanceMaps:
    """
    Instance result of one frame: transformers' instance post-processing, overlaps resolved.

    The top-Q (query, class) pairs are scored by class probability times the mean mask
    probability inside the mask (grid logit > 0), kept from ``thresholds.score`` on; a pixel
    covered by several goes to the highest score. ``mask``/``overlap`` thresholds are unused,
    as in transformers.
    """
    ops = ops_for(mask_logits)
    num_queries, num_classes = class_logits.shape[0], class_logits.shape[-1] - 1
    label_dtype = ops.uint8 if num_classes < NO_SEGMENT else ops.int32
    probs = ops.softmax(class_logits, -1)[:, :-1]
    top_scores, top_index = ops.topk(probs.reshape(-1), num_queries)
    # The mask score is at most 1: a pair below the threshold by its class alone stays below.
    hopeful = top_scores >= thresholds.score
    if not bool(hopeful.any()):
        return _empty(ops, out_h, out_w, label_dtype)
    top_scores, top_index = top_scores[hopeful], top_index[hopeful]
    queries, classes = top_index // num_classes, top_index % num_classes
    logits = ops.resize(mask_logits[queries], grid)
    masks = logits > 0
    flat = masks.reshape(masks.shape[0], -1)
    mask_score = (ops.sigmoid(logits) * masks).reshape(masks.shape[0], -1).sum(1) / (
        ops.astype(flat.sum(1), ops.float32) + 1e-6)
    scores = top_scores * mask_score
    rows, cols = _nearest_index(ops, out_h, grid[0]), _nearest_index(ops, out_w, grid[1])
    # Output pixels per grid point of the nearest resampling (0 where the output shrinks).
    run_y, run_x = ops.bincount(rows, grid[0]), ops.bincount(cols, grid[1])
    # A mask must keep a pixel at the output size (the reference checks after resizing).
    sampled = (run_y > 0)[:, None] & (run_x > 0)[None, :]
    visible = (masks & sampled).reshape(masks.shape[0], -1).any(1)
    keep = visible & (scores >= thresholds.score)
    if not bool(keep.any()):
        return _empty(ops, out_h, out_w, label_dtype)
    order = ops.argsort_descending(ops.where(keep, scores, -1.0))[:int(keep.sum())]
    masks, classes, scores = masks[order], classes[order], scores[order]
    # Grid owner: the first (highest-score) mask that covers a point; 0 = none. Mask k
    # (0-based) votes count - 1 - k where it covers; the largest vote is the first mask.
    count = masks.shape[0] + 1
    owner_dtype = ops.uint8 if count <= 256 else ops.int32
    votes = ops.astype((count - 1) - ops.arange(count - 1, ops.int64), owner_dtype)
    best = ops.amax(ops.astype(masks, owner_dtype) * votes[:, None, None], 0)
    owner = ops.astype(ops.where(best > 0, count - ops.astype(best, ops.int32), 0),
                       owner_dtype)
    pixels = (run_y[:, None] * run_x[None, :]).reshape(-1)
    area_list = ops.astype(ops.rint(ops.bincount(owner.reshape(-1), count, ops.astype(
        pixels, ops.float64))), ops.int64).tolist()
    class_list = [NO_SEGMENT, *classes.tolist()]
    score_list = [0.0, *(round(s, 6) for s in scores.tolist())]
    # Ids 1..N without gaps: a mask hidden by higher scores has no pixels and no id.
    present = [k for k in range(1, count) if area_list[k] > 0]
    ids = [0] * count
    for instance_id, k in enumerate(present, start=1):
        ids[k] = instance_id
    tables = [ops.asarray(class_list, label_dtype), ops.asarray(ids, owner_dtype)]
    records = tuple(SegmentRecord(n, class_list[k], score_list[k], area_list[k])
                    for n, k in enumerate(present, start=1))
    # Labels and ids looked up on the grid, then resampled.
    return InstanceMaps(*(ops.gather_grid(grid_map, rows, cols)
                          for grid_map in ops.lookup(owner, tables)), records)
