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
The whole serving path as one torch module, for export: uint8 frame in, labels out (torch).

:class:`ServingGraph` wraps a Mask2Former model with the preprocessing of the checkpoint
(resize to the model input, normalisation: :meth:`Preprocessing.normalisation`, as the torch
engine). For task semantic it adds the semantic post-processing of
:mod:`mask2former_ros.core.postprocess.semantic` (static-shape variant), so that the graph
takes the camera's RGB bytes and returns one byte per pixel. For panoptic and instance it
returns the query outputs (class logits and the low-resolution mask logits): their
post-processing is data-dependent (kept queries, segments, ids) and runs after the graph in
numpy, the same code as the torch engine's (:mod:`mask2former_ros.core.postprocess.panoptic`).
Sizes are fixed when the module is built: one frame size, batch 1.
"""

from mask2former_ros.core.checkpoint import Preprocessing
from mask2former_ros.core.postprocess.semantic import (
    grid_class_scores, grid_labels_of, resample_index, upsample_grid_labels)
import torch
import torch.nn.functional as F  # noqa: N812

INPUT_NAME = 'image'
OUTPUT_NAMES = ('labels', 'finite')
QUERY_OUTPUT_NAMES = ('class_logits', 'mask_logits', 'finite')


def output_names(task: str) -> tuple[str, ...]:
    """Return the graph's output names for ``task`` (semantic: labels; else query outputs)."""
    return OUTPUT_NAMES if task == 'semantic' else QUERY_OUTPUT_NAMES


class ServingGraph(torch.nn.Module):
    """
    uint8 RGB (1, H, W, 3) -> labels (1, H, W) and a finite flag (1,), for one frame size.

    Task panoptic or instance: -> class logits (1, Q, C + 1), mask logits (1, Q, h, w) and
    the finite flag.

    The forward runs in fp32: reduced precision on a GPU comes from the provider (TensorRT's
    fp16 engines), not from the graph.
    """

    def __init__(self, model: torch.nn.Module, preprocessing: Preprocessing,
                 frame_size: tuple[int, int], input_size: str | int = 'checkpoint',
                 task: str = 'semantic') -> None:
        """Fix the sizes: frame, model input (from the preprocessing) and score grid."""
        super().__init__()
        self.model = model
        self.task = task
        self.frame_size = tuple(frame_size)
        self.input_hw = preprocessing.target_size(*self.frame_size, input_size)
        height, width = self.frame_size
        # The score grid: the model input size, never above the frame (as the torch engine).
        self.grid = (min(self.input_hw[0], height), min(self.input_hw[1], width))
        for name, (out_size, in_size) in {'out_rows': (height, self.grid[0]),
                                          'out_cols': (width, self.grid[1])}.items():
            for i, tensor in enumerate(resample_index(out_size, in_size)):
                self.register_buffer(f'{name}_{i}', tensor, persistent=False)
        scale, bias = preprocessing.normalisation()
        self.register_buffer('scale', torch.tensor(scale).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('bias', torch.tensor(bias).view(1, 3, 1, 1), persistent=False)

    def _index(self, name: str) -> tuple[torch.Tensor, ...]:
        return tuple(getattr(self, f'{name}_{i}') for i in range(3))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Segment one frame; see the class docstring."""
        x = image.permute(0, 3, 1, 2)
        if tuple(x.shape[-2:]) != self.input_hw:
            # As the torch engine: a shrink resizes the uint8 frame with antialiasing (rounded
            # to uint8 like PIL), an enlargement resizes in float.
            height, width = x.shape[-2:]
            if self.input_hw[0] <= height and self.input_hw[1] <= width:
                x = F.interpolate(x, size=self.input_hw, mode='bilinear', align_corners=False,
                                  antialias=True)
            else:
                x = F.interpolate(x.float(), size=self.input_hw, mode='bilinear',
                                  align_corners=False,
                                  antialias=self.input_hw[0] < height or self.input_hw[1] < width)
        x = x.float() * self.scale + self.bias
        outputs = self.model(pixel_values=x)
        class_logits = outputs.class_queries_logits.float()
        masks = outputs.masks_queries_logits.float()
        finite = (torch.isfinite(class_logits).flatten(1).all(1)
                  & torch.isfinite(masks).flatten(1).all(1))
        if self.task != 'semantic':
            return class_logits, masks, finite
        probs = class_logits.softmax(-1)[..., :-1]
        scores = grid_class_scores(probs, masks, self.grid)
        if self.grid == self.frame_size:
            labels = grid_labels_of(scores, self.grid)
        else:
            labels = upsample_grid_labels(scores, self.grid, self._index('out_rows'),
                                          self._index('out_cols'))
        return labels, finite
