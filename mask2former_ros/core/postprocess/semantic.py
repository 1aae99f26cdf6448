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
Mask2Former semantic post-processing without dense full-resolution tensors (torch, no ROS).

The reference (transformers' ``post_process_semantic_segmentation``) upsamples the Q query
mask logits to a score grid (384x384), applies the sigmoid, weights them by the class
probabilities into C class-score planes, upsamples those planes bilinearly to the output size
and takes the argmax. Its cost is Q x grid sigmoids plus C x output-size interpolation.

:func:`semantic_inference` returns the same labels while touching few pixels:

1. For each cell of the mask grid, bounds on every class score over the whole cell follow from
   the per-query min/max of its four corner logits (bilinear values lie between the corners
   and the sigmoid is monotone). Where one class' lower bound beats every other class' upper
   bound, that class wins at every score-grid point in the cell; no score is computed there.
2. Score-grid points in the remaining cells get their exact scores (interpolated logits,
   sigmoid, class weighting).
3. The output pixels: a bilinear value is a convex combination of its four corners, so where
   all four score-grid corners share a class, so does the pixel. Only pixels whose corners
   disagree (class boundaries) are interpolated, from exact scores at those corners.
"""

from mask2former_ros.core.postprocess.array_ops import ops_for
from mask2former_ros.core.postprocess.grid_upsampling import (
    bilinear_source_index, corner_agreement, lerp_rows, upsample_labels, upsampled_argmax)
import torch
import torch.nn.functional as F  # noqa: N812

__all__ = ['class_probabilities', 'DENSE_FRACTION', 'dense_class_scores', 'grid_class_scores',
           'grid_labels_of', 'QUERY_CHUNK', 'resample_index', 'semantic_inference',
           'upsample_grid_labels', 'upsampled_argmax']

# Above this fraction of score-grid points needing exact scores, compute them all densely.
DENSE_FRACTION = 0.25
# Queries upsampled at once to the score grid on the dense path (bounds peak memory).
QUERY_CHUNK = 16


def class_probabilities(class_logits: torch.Tensor) -> torch.Tensor:
    """Per-query class probabilities without the null class, (..., Q, C)."""
    return class_logits.float().softmax(-1)[..., :-1]


def _corners(mask: torch.Tensor) -> torch.Tensor:
    """Return the points that are a corner (top-left, right, lower, diagonal) of a marked cell."""
    out = mask.clone()
    out[1:, :] |= mask[:-1, :]
    out[:, 1:] |= mask[:, :-1]
    out[1:, 1:] |= mask[:-1, :-1]
    return out


def dense_class_scores(logits: torch.Tensor, class_probs: torch.Tensor, grid_h: int,
                       grid_w: int, query_chunk: int | None = None) -> torch.Tensor:
    """
    Class scores (grid_h * grid_w, C) of (Q, h, w) mask logits upsampled to the score grid.

    Queries are upsampled ``query_chunk`` at a time and their weighted sigmoids summed, so the
    peak memory is ``query_chunk + C`` planes of the grid instead of ``Q`` (Q=200 at
    1024x2048 would be 1.6 GB of fp32 at once).
    """
    num_queries = logits.shape[0]
    query_chunk = query_chunk or QUERY_CHUNK
    table = torch.zeros(grid_h * grid_w, class_probs.shape[1], device=logits.device)
    for start in range(0, num_queries, query_chunk):
        chunk = logits[start:start + query_chunk]
        up = F.interpolate(chunk[None].contiguous(memory_format=torch.channels_last),
                           size=(grid_h, grid_w), mode='bilinear', align_corners=False)
        table.addmm_(up[0].permute(1, 2, 0).reshape(-1, chunk.shape[0]).sigmoid_(),
                     class_probs[start:start + query_chunk])
    return table


def semantic_inference(class_probs: torch.Tensor, mask_logits: torch.Tensor, out_h: int,
                       out_w: int, score_grid: tuple[int, int] | None = None,
                       with_confidence: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """
    Label map (out_h, out_w) of one frame from its query outputs, as the reference computes it.

    ``class_probs`` (Q, C) from :func:`class_probabilities`, ``mask_logits`` (Q, h, w).
    ``score_grid`` is the size at which the sigmoid is applied (the reference: 384x384; here
    the model input size); never above the output size. The confidence, if asked for, is the
    winning class' share of the summed class scores on the mask grid, upsampled.
    """
    num_queries, in_h, in_w = mask_logits.shape
    device = mask_logits.device
    grid_h, grid_w = score_grid or (in_h, in_w)
    grid_h, grid_w = min(grid_h, out_h), min(grid_w, out_w)
    logits = mask_logits.float()
    # Step 1: certify mask-grid cells by score bounds over their four corners.
    padded = F.pad(logits[None], (0, 1, 0, 1), mode='replicate')[0]
    corners = (padded[:, :-1, :-1], padded[:, :-1, 1:], padded[:, 1:, :-1], padded[:, 1:, 1:])
    weights_t = class_probs.t()  # (C, Q)
    # Pairwise min/max of the four corner views (no stacked copy of 4 x Q planes).
    lowest = torch.minimum(torch.minimum(corners[0], corners[1]),
                           torch.minimum(corners[2], corners[3]))
    lower = weights_t @ lowest.reshape(num_queries, -1).sigmoid_()
    del lowest
    highest = torch.maximum(torch.maximum(corners[0], corners[1]),
                            torch.maximum(corners[2], corners[3]))
    upper = weights_t @ highest.reshape(num_queries, -1).sigmoid_()
    del highest, corners, padded
    best_lower, cell_class = lower.max(0)
    top2 = upper.topk(min(2, upper.shape[0]), dim=0).values
    own_upper = upper.gather(0, cell_class[None])[0]
    other_upper = torch.where(top2[0] > own_upper, top2[0],
                              top2[-1] if upper.shape[0] > 1 else top2[0] - 1)
    certified = (best_lower > other_upper).reshape(in_h, in_w)
    label_dtype = torch.uint8 if class_probs.shape[1] <= 256 else torch.int32
    cell_class = cell_class.reshape(in_h, in_w).to(label_dtype)

    # Step 2: grid labels; exact scores where a cell is not certified.
    ops = ops_for(logits)
    gy0, gy1, gwy = bilinear_source_index(grid_h, in_h, ops)
    gx0, gx1, gwx = bilinear_source_index(grid_w, in_w, ops)
    grid_labels = cell_class.index_select(0, gy0).index_select(1, gx0)
    exact = (~certified).index_select(0, gy0).index_select(1, gx0)
    if float(exact.float().mean()) > DENSE_FRACTION:
        # Mostly boundaries (e.g. noisy masks): the dense computation is cheaper than
        # gathering corners point by point, and gives the same scores.
        table = dense_class_scores(logits, class_probs, grid_h, grid_w)
        grid_labels = table.argmax(1).to(label_dtype).reshape(grid_h, grid_w)
        exact = torch.ones_like(exact)
    else:
        logit_table = logits.permute(1, 2, 0).reshape(in_h * in_w, num_queries)
        table = torch.empty(grid_h * grid_w, class_probs.shape[1], device=device)
        flat_labels = grid_labels.reshape(-1)

        def compute(points: torch.Tensor) -> None:
            py, px = points // grid_w, points % grid_w
            for start in range(0, points.numel(), 1 << 16):
                sl = slice(start, start + (1 << 16))
                values = lerp_rows(ops, logit_table, in_w, gy0[py[sl]], gy1[py[sl]],
                                   gwy[py[sl]], gx0[px[sl]], gx1[px[sl]], gwx[px[sl]])
                table[points[sl]] = values.sigmoid_() @ class_probs

        points = exact.reshape(-1).nonzero()[:, 0]
        compute(points)
        flat_labels[points] = table[points].argmax(1).to(label_dtype)

    # Step 3: output labels; boundary corners need exact scores too.
    if (grid_h, grid_w) == (out_h, out_w):
        labels = grid_labels
    else:
        needed = _corners(~corner_agreement(grid_labels)) & ~exact
        if bool(needed.any()):
            compute(needed.reshape(-1).nonzero()[:, 0])
        labels = upsample_labels(grid_labels, table, out_h, out_w)
    confidence = None
    if with_confidence:
        scores = (weights_t @ logits.reshape(num_queries, -1).sigmoid()).reshape(-1, in_h, in_w)
        share = (scores.max(0).values / scores.sum(0).clamp(min=1e-6))[None, None]
        confidence = F.interpolate(share, size=(out_h, out_w), mode='bilinear',
                                   align_corners=False)[0, 0]
    return labels, confidence


# --- static-shape variant for exported graphs -------------------------------------------------
#
# An exported graph (ONNX) has fixed sizes but no data-dependent Python control flow: the score
# grid is computed densely (the same scores as :func:`dense_class_scores`), and only step 3 stays
# sparse, through ``nonzero`` (ONNX NonZero): output pixels whose four grid corners agree take the
# corners' class, the others are interpolated from the exact grid scores, as in step 3 above.


def resample_index(out_size: int, in_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return :func:`bilinear_source_index` on the CPU as int64/fp32 constants for a graph."""
    i0, i1, w1 = bilinear_source_index(out_size, in_size, ops_for(torch.empty(0)))
    return i0.contiguous(), i1.contiguous(), w1.contiguous()


def _lerp(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Return ``a + weight * (b - a)``: torch.lerp's value, exported as one Sub, Mul and Add."""
    return a + weight * (b - a)


def grid_class_scores(class_probs: torch.Tensor, mask_logits: torch.Tensor,
                      grid: tuple[int, int]) -> torch.Tensor:
    """
    Class scores (N, grid_h * grid_w, C): logits resampled to the grid, sigmoid, class-weighted.

    ``class_probs`` (N, Q, C), ``mask_logits`` (N, Q, h, w). The same scores as
    :func:`dense_class_scores` (bilinear ``align_corners=False``, then the sigmoid), laid out
    with the classes last, as :func:`upsample_grid_labels` reads them.
    """
    batch, num_queries = mask_logits.shape[:2]
    logits = F.interpolate(mask_logits, size=grid, mode='bilinear', align_corners=False)
    weights = logits.sigmoid().reshape(batch, num_queries, grid[0] * grid[1])
    return weights.transpose(1, 2) @ class_probs


def _gather_rows_then_columns(grid: torch.Tensor, rows: torch.Tensor,
                              cols: torch.Tensor) -> torch.Tensor:
    """
    ``grid[:, rows][:, :, cols]`` of (N, h, w), with both gathers along a row axis.

    A gather along the last axis moves one element per index (ONNX Runtime's CPU Gather: 15 ms
    for 1024x2048 bytes); along a leading axis it copies whole rows. The columns are gathered
    as rows of the transposed grid, so only grid-sized planes are transposed.
    """
    widened = grid.transpose(1, 2).index_select(1, cols).transpose(1, 2)
    return widened.index_select(1, rows)


def grid_labels_of(scores: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Labels (N, grid_h, grid_w) of scores (N, grid_h * grid_w, C): uint8 up to 256 classes."""
    num_classes = scores.shape[-1]
    labels = scores.argmax(-1).to(torch.uint8 if num_classes <= 256 else torch.int32)
    return labels.reshape(scores.shape[0], *grid)


def upsample_grid_labels(scores: torch.Tensor, grid: tuple[int, int],
                         rows: tuple[torch.Tensor, ...],
                         cols: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """
    Labels (N, out_h, out_w) of ``scores`` (N, gh * gw, C) bilinearly upsampled, then argmax.

    Equal to ``F.interpolate(scores, size).argmax(1)`` (step 3 of the module docstring); only
    pixels whose four grid corners disagree are interpolated. Labels are uint8 (int32 above
    256 classes) so that the full-size gathers move one byte per pixel.
    """
    batch, _, num_classes = scores.shape
    grid_h, grid_w = grid
    y0, y1, wy = rows
    x0, x1, wx = cols
    grid_labels = grid_labels_of(scores, grid)
    agree = corner_agreement(grid_labels)
    labels = _gather_rows_then_columns(grid_labels, y0, x0)
    unsure = _gather_rows_then_columns(~agree, y0, x0)
    n, yy, xx = unsure.nonzero().unbind(1)
    table = scores.reshape(batch * grid_h * grid_w, num_classes)
    base = n * (grid_h * grid_w)
    top_row, bottom_row = base + y0[yy] * grid_w, base + y1[yy] * grid_w
    left, right, across = x0[xx], x1[xx], wx[xx][:, None]
    top = _lerp(table[top_row + left], table[top_row + right], across)
    bottom = _lerp(table[bottom_row + left], table[bottom_row + right], across)
    values = _lerp(top, bottom, wy[yy][:, None]).argmax(1).to(labels.dtype)
    return labels.index_put((n, yy, xx), values)
