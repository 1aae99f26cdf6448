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

"""A module shaped like Mask2Former's output that Inductor compiles in seconds (tests)."""

import torch
from transformers.models.mask2former.modeling_mask2former import (
    Mask2FormerForUniversalSegmentationOutput)


class Toy(torch.nn.Module):
    """One convolution; its output as class and mask logits, as Mask2Former returns them."""

    def __init__(self) -> None:
        """Create the convolution (3 channels in, 4 'queries' out)."""
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, pixel_values: torch.Tensor) -> Mask2FormerForUniversalSegmentationOutput:
        """Return the convolution as mask logits and its mean as class logits."""
        masks = self.conv(pixel_values)
        return Mask2FormerForUniversalSegmentationOutput(
            class_queries_logits=masks.mean((2, 3)), masks_queries_logits=masks)
