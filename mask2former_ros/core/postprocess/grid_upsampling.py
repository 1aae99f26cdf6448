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
Exact decisions on a bilinearly upsampled score grid without the full-size planes.

A bilinear value (``align_corners=False``) is a convex combination of the four corners of its
grid cell. So where all four corners agree (same argmax; all above or all below a threshold),
every output pixel of the cell agrees with them; only pixels of the other cells are
interpolated. :func:`upsampled_argmax` (the semantic and panoptic label maps) and
:func:`count_at_least` (panoptic mask areas) use that rule. Written once for numpy arrays and
torch tensors (:mod:`~mask2former_ros.core.postprocess.array_ops`); importing this does not
import torch.
"""

from typing import Any

from mask2former_ros.core.postprocess.array_ops import ops_for

# Output pixels of mixed threshold cells interpolated at once (bounds peak memory).
PIXEL_CHUNK = 1 << 20


def bilinear_source_index(out_size: int, in_size: int, ops: Any) -> tuple[Any, Any, Any]:
    """Return (i0, i1, w1): bilinear ``align_corners=False`` resampling as a lerp."""
    scale = in_size / out_size
    src = ops.clip((ops.arange(out_size, ops.float64) + 0.5) * scale - 0.5, 0.0)
    i0 = ops.clip(ops.astype(ops.floor(src), ops.int64), None, in_size - 1)
    i1 = ops.clip(i0 + 1, None, in_size - 1)
    return i0, i1, ops.astype(src - i0, ops.float32)


def shift_up_left(grid: Any, dy: int, dx: int) -> Any:
    """Return ``grid`` (..., h, w) moved up by ``dy`` and left by ``dx``, edges replicated."""
    ops = ops_for(grid)
    if dy:
        grid = ops.concat([grid[..., 1:, :], grid[..., -1:, :]], -2)
    if dx:
        grid = ops.concat([grid[..., :, 1:], grid[..., :, -1:]], -1)
    return grid


def corner_agreement(labels: Any) -> Any:
    """Return a bool map: a point equals its right, lower and lower-right neighbours."""
    return ((labels == shift_up_left(labels, 1, 0)) & (labels == shift_up_left(labels, 0, 1))
            & (labels == shift_up_left(labels, 1, 1)))


def channel_argmax(scores: Any) -> Any:
    """
    Argmax over dim 0 of (C, ...) as the smallest integer dtype; the first maximum wins.

    A loop of C vectorised comparisons over contiguous planes is several times faster on the
    CPU than ``argmax(0)``, which walks a strided dimension.
    """
    ops = ops_for(scores)
    best = scores[0]
    index = ops.zeros(best.shape, ops.uint8 if scores.shape[0] <= 256 else ops.int32)
    for c in range(1, scores.shape[0]):
        ops.fill_where(index, scores[c] > best, c)
        best = ops.maximum(best, scores[c])
    return index


def lerp_rows(ops: Any, table: Any, width: int, y0, y1, wy, x0, x1, wx) -> Any:
    """Bilinearly interpolate rows of a (H*W, K) table at N points given by lerp indices."""
    top = ops.lerp(table[y0 * width + x0], table[y0 * width + x1], wx[:, None])
    bottom = ops.lerp(table[y1 * width + x0], table[y1 * width + x1], wx[:, None])
    return ops.lerp(top, bottom, wy[:, None])


def upsampled_argmax(scores: Any, out_h: int, out_w: int) -> Any:
    """
    Argmax of dense ``scores`` (C, h, w) bilinearly upsampled to (out_h, out_w).

    Equal to ``F.interpolate(scores[None], (out_h, out_w), mode='bilinear').argmax(1)[0]``
    without building the (C, out_h, out_w) tensor.
    """
    ops = ops_for(scores)
    num_classes = scores.shape[0]
    table = ops.contiguous(scores.reshape(num_classes, -1).T)
    return upsample_labels(channel_argmax(scores), table, out_h, out_w)


def upsample_labels(grid_labels: Any, table: Any, out_h: int, out_w: int,
                    chunk: int = 1 << 18) -> Any:
    """
    Output labels from grid labels and a (grid points, C) table of exact scores.

    Pixels whose four grid corners share a label take it; only the others are interpolated
    from the table (which must hold exact scores at those corners) and take their argmax.
    """
    ops = ops_for(grid_labels)
    in_h, in_w = grid_labels.shape
    y0, y1, wy = bilinear_source_index(out_h, in_h, ops)
    x0, x1, wx = bilinear_source_index(out_w, in_w, ops)
    labels = ops.gather_grid(grid_labels, y0, x0)
    # Enumerate pixels of uncertain cells without a full-size mask: per output row, the
    # uncertain grid columns, each expanded to the run of output columns that map to it.
    rows, cols = ops.nonzero(ops.take(~corner_agreement(grid_labels), y0, 0))
    run_length = ops.bincount(x0, in_w)
    run_start = ops.cumsum(run_length) - run_length
    counts = run_length[cols]
    ys = ops.repeat(rows, counts)
    first = ops.repeat(ops.cumsum(counts) - counts, counts)
    xs = ops.repeat(run_start[cols], counts) + ops.arange(ys.shape[0], ops.int64) - first
    for start in range(0, ys.shape[0], chunk):
        cy, cx = ys[start:start + chunk], xs[start:start + chunk]
        values = lerp_rows(ops, table, in_w, y0[cy], y1[cy], wy[cy], x0[cx], x1[cx], wx[cx])
        labels[cy, cx] = ops.astype(values.argmax(1), labels.dtype)
    return labels


def _runs(index: Any, size: int) -> tuple[Any, Any]:
    """Return (run length, first output position) of each grid line in a sorted source index."""
    ops = ops_for(index)
    length = ops.bincount(index, size)
    return length, ops.cumsum(length) - length


def count_at_least(probs: Any, threshold: float, out_h: int, out_w: int) -> Any:
    """
    Count, per plane, the output pixels where bilinearly upsampled ``probs`` reach ``threshold``.

    Equal to ``(F.interpolate(probs[None], (out_h, out_w), mode='bilinear') >= threshold)
    .sum((-1, -2))`` without the (K, out_h, out_w) tensor: cells whose corners are all at or
    above (all below) the threshold are decided whole; only pixels of mixed cells are
    interpolated.
    """
    ops = ops_for(probs)
    _, in_h, in_w = probs.shape
    y0, _, wy = bilinear_source_index(out_h, in_h, ops)
    x0, _, wx = bilinear_source_index(out_w, in_w, ops)
    run_y, start_y = _runs(y0, in_h)
    run_x, start_x = _runs(x0, in_w)
    above = probs >= threshold
    corners = (above, shift_up_left(above, 1, 0), shift_up_left(above, 0, 1),
               shift_up_left(above, 1, 1))
    all_above = corners[0] & corners[1] & corners[2] & corners[3]
    any_above = corners[0] | corners[1] | corners[2] | corners[3]
    counts = (ops.astype(all_above, ops.float32) @ ops.astype(run_x, ops.float32)) \
        @ ops.astype(run_y, ops.float32)
    counts = ops.astype(ops.rint(counts), ops.int64)
    mixed = any_above & ~all_above
    mixed &= (run_y > 0)[None, :, None] & (run_x > 0)[None, None, :]
    plane, cy, cx = ops.nonzero(mixed)
    if plane.shape[0] == 0:
        return counts
    # Each mixed cell as a block of (longest row run) x (longest column run) output pixels,
    # the positions beyond its own runs masked out: dense arithmetic, no per-pixel gathers.
    step_y = ops.arange(int(run_y.max()), ops.int64)
    step_x = ops.arange(int(run_x.max()), ops.int64)
    cells_per_chunk = max(1, PIXEL_CHUNK // (step_y.shape[0] * step_x.shape[0]))
    for start in range(0, plane.shape[0], cells_per_chunk):
        p = plane[start:start + cells_per_chunk]
        i, j = cy[start:start + cells_per_chunk], cx[start:start + cells_per_chunk]
        i1, j1 = ops.clip(i + 1, None, in_h - 1), ops.clip(j + 1, None, in_w - 1)
        oy = start_y[i][:, None] + step_y
        ox = start_x[j][:, None] + step_x
        inside_y = step_y < run_y[i][:, None]
        inside_x = step_x < run_x[j][:, None]
        across = wx[ops.clip(ox, None, out_w - 1)]
        top = ops.lerp(probs[p, i, j][:, None], probs[p, i, j1][:, None], across)
        bottom = ops.lerp(probs[p, i1, j][:, None], probs[p, i1, j1][:, None], across)
        value = ops.lerp(top[:, None, :], bottom[:, None, :],
                         wy[ops.clip(oy, None, out_h - 1)][:, :, None])
        hits = ((value >= threshold) & inside_y[:, :, None] & inside_x[:, None, :]).sum((1, 2))
        counts = ops.scatter_add(counts, p, hits)
    return counts
