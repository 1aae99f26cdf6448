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

"""Colour masks that tell instances apart: shades of the class colour and outlines (numpy)."""

from mask2former_ros.core.render.palette import colorize
import numpy as np

OUTLINE_COLOR = np.array((255, 255, 255), dtype=np.uint8)
# Shades step through brightness factors by the golden ratio, so neighbouring ids differ.
_SHADE_LOW, _SHADE_HIGH = 0.55, 1.0


def instance_shades(count: int) -> np.ndarray:
    """Return brightness factors (count + 1,) for instance ids 0..count; id 0 keeps 1.0."""
    ids = np.arange(count + 1, dtype=np.float64)
    shades = _SHADE_LOW + (_SHADE_HIGH - _SHADE_LOW) * ((ids * 0.618033988749895) % 1.0)
    shades[0] = 1.0
    return shades.astype(np.float32)


def instance_outlines(instances: np.ndarray) -> np.ndarray:
    """Return a bool (H, W) map of borders: right or lower neighbour is another instance."""
    edge = np.zeros(instances.shape, dtype=bool)
    right = instances[:, 1:] != instances[:, :-1]
    right &= (instances[:, 1:] > 0) | (instances[:, :-1] > 0)
    down = instances[1:, :] != instances[:-1, :]
    down &= (instances[1:, :] > 0) | (instances[:-1, :] > 0)
    edge[:, :-1] |= right
    edge[:-1, :] |= down
    return edge


def colorize_instances(labels: np.ndarray, instances: np.ndarray | None,
                       palette: np.ndarray, outline: bool = True) -> np.ndarray:
    """
    Colour ``labels`` by class and shade each instance of ``instances`` (0 = none) apart.

    Pixels of instance ``i`` get their class colour times :func:`instance_shades` ``[i]``;
    with ``outline`` instance borders are white. Without instances this is
    :func:`~mask2former_ros.core.render.palette.colorize`.
    """
    color = colorize(labels, palette)
    if instances is None or not instances.size:
        return color
    ids = instances.astype(np.intp, copy=False)
    found = ids > 0
    if not found.any():
        return color
    shades = instance_shades(int(ids.max()))
    color[found] = (color[found] * shades[ids[found], None]).astype(np.uint8)
    if outline:
        color[instance_outlines(instances)] = OUTLINE_COLOR
    return color
