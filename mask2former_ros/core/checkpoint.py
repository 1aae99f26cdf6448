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

"""Loading a Mask2Former checkpoint safely, and the preprocessing its config asks for."""

from dataclasses import dataclass
import math
import os
from pathlib import Path
from typing import Mapping


class ModelLoadError(RuntimeError):
    """A checkpoint could not be found, read or trusted."""


@dataclass(frozen=True)
class Preprocessing:
    """Resize and normalisation read from a checkpoint's preprocessor config."""

    size: Mapping[str, int]
    size_divisor: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    rescale_factor: float
    do_resize: bool
    do_rescale: bool
    do_normalize: bool

    @classmethod
    def from_processor(cls, processor) -> 'Preprocessing':
        """Read the settings of a transformers Mask2Former image processor."""
        size = {k: int(v) for k, v in dict(processor.size).items() if v is not None}
        return cls(size=size, size_divisor=int(getattr(processor, 'size_divisor', 0) or 0),
                   mean=tuple(float(v) for v in processor.image_mean),
                   std=tuple(float(v) for v in processor.image_std),
                   rescale_factor=float(processor.rescale_factor),
                   do_resize=bool(processor.do_resize), do_rescale=bool(processor.do_rescale),
                   do_normalize=bool(processor.do_normalize))

    def normalisation(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Return per-channel (scale, bias): ``(x * rescale - mean) / std = x * scale + bias``."""
        rescale = self.rescale_factor if self.do_rescale else 1.0
        mean = self.mean if self.do_normalize else (0.0, 0.0, 0.0)
        std = self.std if self.do_normalize else (1.0, 1.0, 1.0)
        return (tuple(rescale / s for s in std),
                tuple(-m / s for m, s in zip(mean, std, strict=True)))

    def target_size(self, height: int, width: int, input_size: str | int) -> tuple[int, int]:
        """Return the model input (height, width) for a frame, as the HF processor would."""
        if input_size == 'native':
            new_h, new_w = height, width
        elif isinstance(input_size, int):
            scale = input_size / min(height, width)
            new_h, new_w = round(height * scale), round(width * scale)
        elif not self.do_resize:
            new_h, new_w = height, width
        elif 'height' in self.size and 'width' in self.size:
            new_h, new_w = self.size['height'], self.size['width']
        elif 'shortest_edge' in self.size:
            new_h, new_w = _shortest_edge_size(height, width, self.size['shortest_edge'],
                                               self.size.get('longest_edge'))
        else:
            raise ModelLoadError(f'unsupported preprocessor size setting {dict(self.size)}')
        divisor = self.size_divisor if input_size == 'checkpoint' else max(self.size_divisor, 32)
        if divisor > 0:
            new_h = int(math.ceil(new_h / divisor) * divisor)
            new_w = int(math.ceil(new_w / divisor) * divisor)
        return max(new_h, 1), max(new_w, 1)


def _shortest_edge_size(height: int, width: int, shortest: int,
                        longest: int | None) -> tuple[int, int]:
    """Aspect-preserving size as transformers' ``get_size_with_aspect_ratio``."""
    size = shortest
    if longest is not None:
        min_orig, max_orig = float(min(height, width)), float(max(height, width))
        if max_orig / min_orig * size > longest:
            size = int(round(longest * min_orig / max_orig))
    if (height <= width and height == size) or (width <= height and width == size):
        return height, width
    if width < height:
        return int(size * height / width), size
    return size, int(size * width / height)


def load_checkpoint(model: str, allow_pickle: bool = False):
    """
    Load a Mask2Former model and its image processor from a hub id or a local directory.

    Never executes code from the checkpoint (``trust_remote_code`` is never set). Weights must be
    safetensors unless ``allow_pickle`` is True, in which case ``torch.load`` is still limited to
    ``weights_only``.
    """
    from transformers import Mask2FormerForUniversalSegmentation
    try:
        from transformers import Mask2FormerImageProcessorPil
    except ImportError:  # transformers before the Pil/fast processor split
        from transformers import Mask2FormerImageProcessor as Mask2FormerImageProcessorPil
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    local = Path(model).expanduser()
    if str(model).startswith(('/', '.', '~')) and not local.is_dir():
        raise ModelLoadError(f"model directory '{model}' does not exist")
    source = str(local) if local.is_dir() else str(model)
    if local.is_dir() and not allow_pickle:
        has_safetensors = any(local.glob('*.safetensors')) or any(
            local.glob('*.safetensors.index.json'))
        if not has_safetensors and any(local.glob('*.bin')):
            raise ModelLoadError(
                f"checkpoint '{model}' has only pickle weights (*.bin); they can run arbitrary "
                'code when loaded and are refused. Convert them to safetensors, or set '
                'allow_pickle:=true if you trust the file')
    try:
        processor = Mask2FormerImageProcessorPil.from_pretrained(source)
        net = Mask2FormerForUniversalSegmentation.from_pretrained(
            source, use_safetensors=None if allow_pickle else True)
    except (OSError, ValueError) as exc:
        offline = os.environ.get('HF_HUB_OFFLINE', '') not in ('', '0')
        hint = ('the hub is unreachable or HF_HUB_OFFLINE is set' if offline or not local.is_dir()
                else 'the directory is incomplete or corrupt')
        raise ModelLoadError(
            f"cannot load Mask2Former checkpoint '{model}' ({hint}): {first_line(exc)}. "
            'Pass a local directory holding config.json, model.safetensors and '
            'preprocessor_config.json (e.g. made with `hf download '
            f'{model} --local-dir DIR` on a machine with network), as model:=DIR') from exc
    except Exception as exc:  # corrupt weights surface as many error types
        raise ModelLoadError(f"cannot load Mask2Former checkpoint '{model}': "
                             f'{type(exc).__name__}: {first_line(exc)}') from exc
    return net, processor


def first_line(exc: BaseException) -> str:
    """Return the first line of an exception's message (or its type name)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
