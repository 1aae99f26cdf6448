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
Mask2Former panoptic and instance post-processing without Q full-resolution masks (torch).

The references are transformers' ``post_process_panoptic_segmentation`` and
``post_process_instance_segmentation``. Both upsample the query mask logits to a score grid
(384x384 there; here the model input size, as the semantic path), apply the sigmoid and then
upsample every kept query's mask to the output size: Q planes of H x W (25 planes of 1024x2048
are 200 MB of fp32) before an argmax and per-query pixel counts.

Here everything query-shaped stays on the grid; the output size is touched once per pixel:

* **Panoptic.** A pixel belongs to the query with the largest score-weighted mask probability.
  Bilinear upsampling is linear, so that argmax is the semantic path's upsampled argmax
  (:func:`~mask2former_ros.core.semantic_postprocess.upsampled_argmax`: exact scores only where
  the four grid corners of a pixel disagree). A query's segment is kept when its pixels are more
  than ``overlap_threshold`` of the pixels where its weighted probability reaches
  ``mask_threshold``; that count is exact too: grid cells whose four corners are all above
  (below) the threshold count (do not count) all their output pixels, only mixed cells are
  interpolated pixel by pixel. Stuff segments of a class are fused (transformers'
  ``label_ids_to_fuse``), thing segments become instances.
* **Instance.** The top-Q (query, class) pairs above ``score_threshold``, each mask where its
  grid logit is positive, nearest-upsampled as transformers does. Overlaps go to the higher
  score (transformers: the later query in an unsorted top-k).

Pixel counts come from one ``bincount`` over the output index map, boxes from one pass of
``scipy.ndimage.find_objects`` over the host instance image. Instance ids
are 1..N in order of falling score; labels are :data:`~mask2former_ros.core.results.NO_SEGMENT`
where no segment is kept.
"""

from dataclasses import dataclass
from typing import Sequence

import cv2
from mask2former_ros.core.results import NO_SEGMENT, Segment
from mask2former_ros.core.semantic_postprocess import (
    bilinear_source_index, gather_grid, shift_up_left, upsampled_argmax)
import numpy as np
from scipy import ndimage
import torch
import torch.nn.functional as F  # noqa: N812

# Output pixels of mixed threshold cells interpolated at once (bounds peak memory).
PIXEL_CHUNK = 1 << 20


@dataclass(frozen=True)
class Thresholds:
    """transformers' ``threshold``, ``mask_threshold`` and ``overlap_mask_area_threshold``."""

    score: float = 0.5
    mask: float = 0.5
    overlap: float = 0.8


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
    One frame on the device: labels (H, W), instance ids (H, W) and the instances.

    Ids are uint8 up to 255 instances (int32 above): fewer bytes to write and copy.

    ``records[n]`` is instance ``n + 1``; :func:`segments_with_boxes` adds the boxes.
    """

    labels: torch.Tensor
    instances: torch.Tensor
    records: tuple[SegmentRecord, ...]


def _grid_probabilities(mask_logits: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Sigmoid of (K, h, w) mask logits bilinearly resampled to ``grid``: (K, gh, gw)."""
    if tuple(mask_logits.shape[-2:]) != tuple(grid):
        mask_logits = F.interpolate(mask_logits[None].float(), size=grid, mode='bilinear',
                                    align_corners=False)[0]
    return mask_logits.float().sigmoid()


def _runs(index: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (run length, first output position) of each grid line in a sorted source index."""
    length = torch.bincount(index, minlength=size)
    return length, torch.cumsum(length, 0) - length


def count_at_least(probs: torch.Tensor, threshold: float, out_h: int,
                   out_w: int) -> torch.Tensor:
    """
    Count, per plane, the output pixels where bilinearly upsampled ``probs`` reach ``threshold``.

    Equal to ``(F.interpolate(probs[None], (out_h, out_w), mode='bilinear') >= threshold)
    .sum((-1, -2))`` without the (K, out_h, out_w) tensor: an output pixel is a convex
    combination of the four corners of its grid cell, so cells whose corners are all at or
    above (all below) the threshold are decided whole; only pixels of mixed cells are
    interpolated.
    """
    num, in_h, in_w = probs.shape
    device = probs.device
    y0, y1, wy = bilinear_source_index(out_h, in_h, device)
    x0, x1, wx = bilinear_source_index(out_w, in_w, device)
    run_y, start_y = _runs(y0, in_h)
    run_x, start_x = _runs(x0, in_w)
    above = probs >= threshold
    corners = (above, shift_up_left(above, 1, 0), shift_up_left(above, 0, 1),
               shift_up_left(above, 1, 1))
    all_above = corners[0] & corners[1] & corners[2] & corners[3]
    any_above = corners[0] | corners[1] | corners[2] | corners[3]
    counts = torch.einsum('kij,i,j->k', all_above.float(), run_y.float(), run_x.float())
    counts = counts.round().long()
    mixed = any_above & ~all_above
    mixed &= (run_y > 0)[None, :, None] & (run_x > 0)[None, None, :]
    plane, cy, cx = mixed.nonzero(as_tuple=True)
    if plane.numel() == 0:
        return counts
    # Each mixed cell as a block of (longest row run) x (longest column run) output pixels,
    # the positions beyond its own runs masked out: dense arithmetic, no per-pixel gathers.
    step_y = torch.arange(int(run_y.max()), device=device)
    step_x = torch.arange(int(run_x.max()), device=device)
    cells_per_chunk = max(1, PIXEL_CHUNK // (step_y.numel() * step_x.numel()))
    for start in range(0, plane.numel(), cells_per_chunk):
        p = plane[start:start + cells_per_chunk]
        i, j = cy[start:start + cells_per_chunk], cx[start:start + cells_per_chunk]
        i1, j1 = (i + 1).clamp(max=in_h - 1), (j + 1).clamp(max=in_w - 1)
        oy = start_y[i][:, None] + step_y
        ox = start_x[j][:, None] + step_x
        inside_y = step_y < run_y[i][:, None]
        inside_x = step_x < run_x[j][:, None]
        across = wx[ox.clamp(max=out_w - 1)]
        top = torch.lerp(probs[p, i, j][:, None], probs[p, i, j1][:, None], across)
        bottom = torch.lerp(probs[p, i1, j][:, None], probs[p, i1, j1][:, None], across)
        value = torch.lerp(top[:, None, :], bottom[:, None, :],
                           wy[oy.clamp(max=out_h - 1)][:, :, None])
        hits = ((value >= threshold) & inside_y[:, :, None] & inside_x[:, None, :]).sum((1, 2))
        counts.index_add_(0, p, hits)
    return counts


def _areas(index: torch.Tensor, count: int) -> torch.Tensor:
    """Return the pixel count of each value 0..count-1 of an (H, W) index map."""
    return torch.bincount(index.reshape(-1), minlength=count)[:count]


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


def _empty(out_h: int, out_w: int, device: torch.device,
           label_dtype: torch.dtype) -> InstanceMaps:
    return InstanceMaps(torch.full((out_h, out_w), NO_SEGMENT, dtype=label_dtype, device=device),
                        torch.zeros((out_h, out_w), dtype=torch.uint8, device=device), ())


def _lookup(index: torch.Tensor, *tables: torch.Tensor) -> list[torch.Tensor]:
    """
    Return ``table[index]`` of each table for an (H, W) index map (one gather per pixel).

    On the CPU, a uint8 index into uint8 tables is OpenCV's ``LUT`` (0.6 ms for 1024x2048,
    ``index_select`` 2-3 ms here); otherwise ``index_select``.
    """
    if index.device.type == 'cpu' and index.dtype == torch.uint8 and \
            all(t.dtype == torch.uint8 and t.numel() <= 256 for t in tables):
        pixels = index.numpy()
        luts = [np.zeros(256, np.uint8) for _ in tables]
        for lut, table in zip(luts, tables, strict=True):
            lut[:table.numel()] = table.numpy()
        return [torch.from_numpy(cv2.LUT(pixels, lut)) for lut in luts]
    flat = index.reshape(-1).int()
    return [table.index_select(0, flat).reshape(index.shape) for table in tables]


def panoptic_inference(class_logits: torch.Tensor, mask_logits: torch.Tensor, out_h: int,
                       out_w: int, grid: tuple[int, int], thing_ids: frozenset[int],
                       thresholds: Thresholds = Thresholds()) -> InstanceMaps:
    """
    Panoptic result of one frame: transformers' panoptic post-processing, stuff fused.

    ``class_logits`` (Q, C + 1), ``mask_logits`` (Q, h, w); ``grid`` is the score grid.
    Labels are uint8 up to 255 classes (int32 above); instance ids uint8 up to 255 (int32
    above), on the device.
    """
    num_classes = class_logits.shape[-1] - 1
    label_dtype = torch.uint8 if num_classes < NO_SEGMENT else torch.int32
    device = mask_logits.device
    scores, classes = class_logits.float().softmax(-1).max(-1)
    keep = (classes != num_classes) & (scores > thresholds.score)
    if not bool(keep.any()):
        return _empty(out_h, out_w, device, label_dtype)
    scores, classes = scores[keep], classes[keep]
    weighted = _grid_probabilities(mask_logits[keep], grid) * scores[:, None, None]
    kept = weighted.shape[0]
    if out_h * out_w <= grid[0] * grid[1]:
        # Output no larger than the grid: the reference's dense computation is the cheap one.
        dense = F.interpolate(weighted[None], size=(out_h, out_w), mode='bilinear',
                              align_corners=False)[0]
        index = dense.argmax(0).to(torch.uint8 if kept <= 256 else torch.int32)
        original = (dense >= thresholds.mask).sum((1, 2))
        del dense
    else:
        index = upsampled_argmax(weighted, out_h, out_w)
        original = count_at_least(weighted, thresholds.mask, out_h, out_w)
    area = _areas(index, kept)
    valid = (area > 0) & (original > 0)
    valid &= area.float() > thresholds.overlap * original.float()
    class_list, valid_list, area_list = classes.tolist(), valid.tolist(), area.tolist()
    score_list = [round(s, 6) for s in scores.tolist()]
    things = [k for k in range(kept) if valid_list[k] and class_list[k] in thing_ids]
    things.sort(key=lambda k: -score_list[k])  # stable: query order among equal scores
    label_table = torch.where(valid, classes, NO_SEGMENT).to(label_dtype)
    instance_table = torch.zeros(kept, dtype=torch.uint8 if len(things) <= 255 else torch.int32)
    for instance_id, k in enumerate(things, start=1):
        instance_table[k] = instance_id
    records = tuple(SegmentRecord(n, class_list[k], score_list[k], area_list[k])
                    for n, k in enumerate(things, start=1))
    return InstanceMaps(*_lookup(index, label_table, instance_table.to(device)), records)


def _nearest_index(out_size: int, in_size: int, device: torch.device) -> torch.Tensor:
    """Return the source index of ``F.interpolate(mode='nearest')`` for each output position."""
    scale = in_size / out_size
    position = torch.arange(out_size, device=device, dtype=torch.float32)
    return (position * scale).floor().long().clamp(max=in_size - 1)


def instance_inference(class_logits: torch.Tensor, mask_logits: torch.Tensor, out_h: int,
                       out_w: int, grid: tuple[int, int],
                       thresholds: Thresholds = Thresholds()) -> InstanceMaps:
    """
    Instance result of one frame: transformers' instance post-processing, overlaps resolved.

    The top-Q (query, class) pairs are scored by class probability times the mean mask
    probability inside the mask (grid logit > 0), kept from ``thresholds.score`` on; a pixel
    covered by several goes to the highest score. ``mask``/``overlap`` thresholds are unused,
    as in transformers.
    """
    num_queries, num_classes = class_logits.shape[0], class_logits.shape[-1] - 1
    label_dtype = torch.uint8 if num_classes < NO_SEGMENT else torch.int32
    device = mask_logits.device
    probs = class_logits.float().softmax(-1)[:, :-1]
    top_scores, top_index = probs.reshape(-1).topk(num_queries, sorted=True)
    # The mask score is at most 1: a pair below the threshold by its class alone stays below.
    hopeful = top_scores >= thresholds.score
    if not bool(hopeful.any()):
        return _empty(out_h, out_w, device, label_dtype)
    top_scores, top_index = top_scores[hopeful], top_index[hopeful]
    queries, classes = top_index // num_classes, top_index % num_classes
    logits = mask_logits[queries].float()
    if tuple(logits.shape[-2:]) != tuple(grid):
        logits = F.interpolate(logits[None], size=grid, mode='bilinear', align_corners=False)[0]
    masks = logits > 0
    mask_score = (logits.sigmoid() * masks).flatten(1).sum(1) / (masks.flatten(1).sum(1) + 1e-6)
    scores = top_scores * mask_score
    rows = _nearest_index(out_h, grid[0], device)
    cols = _nearest_index(out_w, grid[1], device)
    # Output pixels per grid point of the nearest resampling (0 where the output shrinks).
    run_y = torch.bincount(rows, minlength=grid[0])
    run_x = torch.bincount(cols, minlength=grid[1])
    # A mask must keep a pixel at the output size (the reference checks after resizing).
    sampled = (run_y > 0)[:, None] & (run_x > 0)[None, :]
    visible = (masks & sampled).flatten(1).any(1)
    keep = visible & (scores >= thresholds.score)
    if not bool(keep.any()):
        return _empty(out_h, out_w, device, label_dtype)
    order = torch.argsort(torch.where(keep, scores, -1.0), descending=True, stable=True)
    order = order[:int(keep.sum())]
    masks, classes, scores = masks[order], classes[order], scores[order]
    # Grid owner: the first (highest-score) mask that covers a point; 0 = none. Mask k
    # (0-based) votes count - 1 - k where it covers; the largest vote is the first mask.
    count = masks.shape[0] + 1
    owner_dtype = torch.uint8 if count <= 256 else torch.int32
    votes = torch.arange(count - 1, 0, -1, device=device, dtype=owner_dtype)
    best = (masks.to(owner_dtype) * votes[:, None, None]).amax(0)
    owner = torch.where(best > 0, count - best.int(), 0).to(owner_dtype)
    pixels = (run_y[:, None] * run_x[None, :]).reshape(-1)
    area_list = torch.bincount(owner.reshape(-1), weights=pixels.double(),
                               minlength=count).round().long().tolist()
    class_list = [NO_SEGMENT, *classes.tolist()]
    score_list = [0.0, *(round(s, 6) for s in scores.tolist())]
    # Ids 1..N without gaps: a mask hidden by higher scores has no pixels and no id.
    present = [k for k in range(1, count) if area_list[k] > 0]
    id_table = torch.zeros(count, dtype=owner_dtype)
    for instance_id, k in enumerate(present, start=1):
        id_table[k] = instance_id
    label_table = torch.tensor(class_list, dtype=label_dtype, device=device)
    records = tuple(SegmentRecord(n, class_list[k], score_list[k], area_list[k])
                    for n, k in enumerate(present, start=1))
    # Labels and ids looked up on the grid, then resampled.
    return InstanceMaps(*(gather_grid(grid_map, rows, cols) for grid_map in
                          _lookup(owner, label_table, id_table.to(device))), records)
