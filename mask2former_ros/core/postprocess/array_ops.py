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
One set of array operations over numpy arrays (host) and torch tensors (any device).

The post-processing shared by the backends
(:mod:`~mask2former_ros.core.postprocess.grid_upsampling`,
:mod:`~mask2former_ros.core.postprocess.panoptic`) is written once against
:func:`ops_for`: what numpy and torch spell alike (operators, indexing, ``sum``, ``argmax``,
``reshape``, ``tolist``) is used as it is, the rest goes through these methods. The ONNX
Runtime backend and the torch engine on the CPU run it on numpy arrays (OpenCV resizes and
lookups, numpy ``take``); the torch engine on a GPU runs it on the device. The operations
beyond the Python array API standard (resize, bincount, top-k, scatter-add, lookup tables)
are most of what differs, so this stays a small adapter rather than a dependency on
``array-api-compat``. Importing this module does not import torch.
"""

from typing import Any, Sequence

import cv2
import numpy as np


class NumpyOps:
    """The operations on host numpy arrays (OpenCV where it is faster)."""

    uint8 = np.uint8
    int32 = np.int32
    int64 = np.int64
    float32 = np.float32
    float64 = np.float64

    @staticmethod
    def astype(x: np.ndarray, dtype: Any) -> np.ndarray:
        """Return ``x`` as ``dtype`` (no copy when it already is)."""
        return x.astype(dtype, copy=False)

    @staticmethod
    def asarray(values: Any, dtype: Any) -> np.ndarray:
        """Return a new host array of ``values``."""
        return np.asarray(values, dtype)

    contiguous = staticmethod(np.ascontiguousarray)

    @staticmethod
    def arange(stop: int, dtype: Any) -> np.ndarray:
        """Return 0..stop-1."""
        return np.arange(stop, dtype=dtype)

    @staticmethod
    def zeros(shape: Sequence[int], dtype: Any) -> np.ndarray:
        """Return zeros."""
        return np.zeros(shape, dtype)

    @staticmethod
    def full(shape: Sequence[int], value: Any, dtype: Any) -> np.ndarray:
        """Return an array filled with ``value``."""
        return np.full(shape, value, dtype)

    floor = staticmethod(np.floor)
    rint = staticmethod(np.rint)
    where = staticmethod(np.where)
    maximum = staticmethod(np.maximum)
    einsum = staticmethod(np.einsum)

    @staticmethod
    def clip(x: np.ndarray, low: Any = None, high: Any = None) -> np.ndarray:
        """Return ``x`` limited to [low, high]."""
        return np.clip(x, low, high)

    @staticmethod
    def concat(arrays: Sequence[np.ndarray], axis: int) -> np.ndarray:
        """Join along ``axis``."""
        return np.concatenate(arrays, axis)

    @staticmethod
    def nonzero(x: np.ndarray) -> tuple[np.ndarray, ...]:
        """
        Return the indices of the true elements, one array per axis.

        Through the flat indices: ``np.nonzero`` of a 2-D or 3-D mask was 5-10x slower here.
        """
        if x.ndim == 1:
            return np.nonzero(x)
        return np.unravel_index(np.flatnonzero(x), x.shape)

    @staticmethod
    def cumsum(x: np.ndarray) -> np.ndarray:
        """Return the running sum of a 1-D array."""
        return np.cumsum(x)

    @staticmethod
    def bincount(x: np.ndarray, minlength: int, weights: np.ndarray | None = None) -> np.ndarray:
        """Count each value 0..minlength-1 (summing ``weights`` if given) of a flat array."""
        if x.dtype == np.uint8 and weights is None and (1 << 16) < x.size < (1 << 24):
            # OpenCV's histogram reads the bytes in place (fp32 counts: exact below 2**24);
            # bincount widens them to intp first. All 256 counts: at least minlength.
            counts = cv2.calcHist([x.reshape(1, -1)], [0], None, [256], [0, 256])
            return counts.reshape(-1).astype(np.int64)
        return np.bincount(x.reshape(-1), weights=weights, minlength=minlength)

    @staticmethod
    def repeat(x: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Repeat element i of a 1-D array counts[i] times."""
        return np.repeat(x, counts)

    @staticmethod
    def take(x: np.ndarray, index: np.ndarray, axis: int) -> np.ndarray:
        """Return ``x`` gathered along ``axis``."""
        return np.take(x, index, axis=axis)

    @staticmethod
    def lerp(a: np.ndarray, b: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """Return ``a + weight * (b - a)`` (one temporary less than the expression)."""
        out = np.multiply(np.subtract(b, a), weight)
        out += a
        return out

    @staticmethod
    def amax(x: np.ndarray, axis: int) -> np.ndarray:
        """Return the maximum along ``axis``."""
        return x.max(axis)

    @staticmethod
    def max_argmax(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the maximum along ``axis`` and its (first) index."""
        index = x.argmax(axis)
        return np.take_along_axis(x, np.expand_dims(index, axis), axis).squeeze(axis), index

    @staticmethod
    def fill_where(x: np.ndarray, mask: np.ndarray, value: Any) -> None:
        """Set ``x`` to ``value`` where ``mask`` (in place)."""
        np.copyto(x, value, where=mask, casting='unsafe')

    @staticmethod
    def softmax(x: np.ndarray, axis: int) -> np.ndarray:
        """Return the softmax along ``axis`` in fp32."""
        x = x.astype(np.float32, copy=False)
        e = np.exp(x - x.max(axis, keepdims=True))
        return e / e.sum(axis, keepdims=True)

    @staticmethod
    def sigmoid(x: np.ndarray) -> np.ndarray:
        """Return the logistic sigmoid in fp32."""
        out = np.negative(x, dtype=np.float32)
        with np.errstate(over='ignore'):  # exp(88+) is inf: 1 / (1 + inf) is the right 0
            np.exp(out, out=out)
        out += 1.0
        return np.reciprocal(out, out=out)

    @staticmethod
    def resize(planes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """
        Resample (K, h, w) planes bilinearly to (K, *size) in fp32.

        ``align_corners=False`` and no antialiasing, as ``F.interpolate(mode='bilinear')``.
        """
        planes = planes.astype(np.float32, copy=False)
        if tuple(planes.shape[-2:]) == tuple(size):
            return planes
        out = np.empty((planes.shape[0], *size), np.float32)
        for plane, target in zip(planes, out, strict=True):
            cv2.resize(plane, (size[1], size[0]), dst=target, interpolation=cv2.INTER_LINEAR)
        return out

    @staticmethod
    def topk(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the ``k`` largest values of a 1-D array and their indices, largest first."""
        index = np.argsort(-x, kind='stable')[:k]
        return x[index], index

    @staticmethod
    def argsort_descending(x: np.ndarray) -> np.ndarray:
        """Return the indices that sort a 1-D array largest first (ties: first index first)."""
        return np.argsort(-x, kind='stable')

    @staticmethod
    def scatter_add(target: np.ndarray, index: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Return ``target`` with ``values`` added at ``index`` (repeats add up)."""
        return target + np.bincount(index, weights=values, minlength=target.shape[0]).astype(
            target.dtype)

    @staticmethod
    def lookup(index: np.ndarray, tables: Sequence[np.ndarray]) -> list[np.ndarray]:
        """
        Return ``table[index]`` of each table for an index map (one gather per pixel).

        A uint8 index into uint8 tables is OpenCV's ``LUT`` (0.6 ms for 1024x2048 here,
        ``take`` several times that).
        """
        if index.dtype == np.uint8 and all(t.dtype == np.uint8 and t.size <= 256
                                           for t in tables):
            luts = [np.zeros(256, np.uint8) for _ in tables]
            for lut, table in zip(luts, tables, strict=True):
                lut[:table.size] = table
            return [cv2.LUT(index, lut) for lut in luts]
        return [np.take(table, index) for table in tables]

    @staticmethod
    def gather_grid(grid: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Return ``grid[rows][:, cols]`` of a 2-D grid (columns first: whole rows copied)."""
        return np.take(np.take(grid, cols, axis=1), rows, axis=0)


class TorchOps:
    """The same operations on torch tensors of one device (torch imported on first use)."""

    def __init__(self, device: Any) -> None:
        """Bind the operations to ``device`` (where new tensors are made)."""
        import torch
        import torch.nn.functional as F  # noqa: N812
        self.torch, self.functional, self.device = torch, F, device
        for name in ('uint8', 'int32', 'int64', 'float32', 'float64'):
            setattr(self, name, getattr(torch, name))
        self.floor, self.where, self.maximum = torch.floor, torch.where, torch.maximum
        self.einsum, self.rint, self.lerp = torch.einsum, torch.round, torch.lerp

    def astype(self, x: Any, dtype: Any) -> Any:  # noqa: D102 - as NumpyOps
        return x.to(dtype)

    def contiguous(self, x: Any) -> Any:  # noqa: D102
        return x.contiguous()

    def asarray(self, values: Any, dtype: Any) -> Any:  # noqa: D102
        return self.torch.tensor(values, dtype=dtype, device=self.device)

    def arange(self, stop: int, dtype: Any) -> Any:  # noqa: D102
        return self.torch.arange(stop, dtype=dtype, device=self.device)

    def zeros(self, shape: Sequence[int], dtype: Any) -> Any:  # noqa: D102
        return self.torch.zeros(tuple(shape), dtype=dtype, device=self.device)

    def full(self, shape: Sequence[int], value: Any, dtype: Any) -> Any:  # noqa: D102
        return self.torch.full(tuple(shape), value, dtype=dtype, device=self.device)

    def clip(self, x: Any, low: Any = None, high: Any = None) -> Any:  # noqa: D102
        return x.clamp(min=low, max=high)

    def concat(self, arrays: Sequence[Any], axis: int) -> Any:  # noqa: D102
        return self.torch.cat(list(arrays), axis)

    def nonzero(self, x: Any) -> tuple[Any, ...]:  # noqa: D102
        return x.nonzero(as_tuple=True)

    def cumsum(self, x: Any) -> Any:  # noqa: D102
        return self.torch.cumsum(x, 0)

    def bincount(self, x: Any, minlength: int, weights: Any = None) -> Any:  # noqa: D102
        return self.torch.bincount(x.reshape(-1).long() if x.dtype == self.torch.uint8 else
                                   x.reshape(-1), weights=weights, minlength=minlength)

    def repeat(self, x: Any, counts: Any) -> Any:  # noqa: D102
        return x.repeat_interleave(counts)

    def take(self, x: Any, index: Any, axis: int) -> Any:  # noqa: D102
        return x.index_select(axis, index)

    def amax(self, x: Any, axis: int) -> Any:  # noqa: D102
        return x.amax(axis)

    def max_argmax(self, x: Any, axis: int) -> tuple[Any, Any]:  # noqa: D102
        values, index = x.max(axis)
        return values, index

    def fill_where(self, x: Any, mask: Any, value: Any) -> None:  # noqa: D102
        x.masked_fill_(mask, value)

    def softmax(self, x: Any, axis: int) -> Any:  # noqa: D102
        return x.float().softmax(axis)

    def sigmoid(self, x: Any) -> Any:  # noqa: D102
        return x.float().sigmoid()

    def resize(self, planes: Any, size: tuple[int, int]) -> Any:  # noqa: D102
        planes = planes.float()
        if tuple(planes.shape[-2:]) == tuple(size):
            return planes
        return self.functional.interpolate(planes[None], size=tuple(size), mode='bilinear',
                                           align_corners=False)[0]

    def topk(self, x: Any, k: int) -> tuple[Any, Any]:  # noqa: D102
        values, index = x.topk(k, sorted=True)
        return values, index

    def argsort_descending(self, x: Any) -> Any:  # noqa: D102
        return self.torch.argsort(x, descending=True, stable=True)

    def scatter_add(self, target: Any, index: Any, values: Any) -> Any:  # noqa: D102
        return target.index_add(0, index, values.to(target.dtype))

    def lookup(self, index: Any, tables: Sequence[Any]) -> list[Any]:  # noqa: D102
        if index.device.type == 'cpu':
            return [self.torch.from_numpy(t) for t in
                    NumpyOps.lookup(index.numpy(), [t.numpy() for t in tables])]
        flat = index.reshape(-1).int()
        return [t.to(index.device).index_select(0, flat).reshape(index.shape) for t in tables]

    def gather_grid(self, grid: Any, rows: Any, cols: Any) -> Any:  # noqa: D102
        if grid.device.type == 'cpu':  # numpy's take: 0.5 ms for 1024x2048 bytes, torch 2.3
            return self.torch.from_numpy(NumpyOps.gather_grid(grid.numpy(), rows.numpy(),
                                                              cols.numpy()))
        return grid.index_select(1, cols).index_select(0, rows)


NUMPY = NumpyOps()
_TORCH_OPS: dict[Any, TorchOps] = {}


def ops_for(x: Any) -> Any:
    """Return the operations for ``x``: :data:`NUMPY` for a numpy array, else torch's."""
    if isinstance(x, np.ndarray):
        return NUMPY
    ops = _TORCH_OPS.get(x.device)
    if ops is None:
        ops = _TORCH_OPS[x.device] = TorchOps(x.device)
    return ops
