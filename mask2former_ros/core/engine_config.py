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

"""Engine settings: device, precision and input size, validated (no ROS, no model)."""

from dataclasses import dataclass

import torch

DEVICE_CHOICES = ('auto', 'cpu', 'cuda', 'cuda:N')
PRECISION_CHOICES = ('auto', 'fp32', 'fp16', 'bf16')
INPUT_SIZE_CHOICES = ('checkpoint', 'native', '<short side in pixels, e.g. 1024>')
_DTYPES = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}


@dataclass
class EngineConfig:
    """Settings of a :class:`SegmentationEngine`; see the README for their meaning."""

    model: str
    device: str = 'auto'
    precision: str = 'auto'
    input_size: str | int = 'checkpoint'
    allow_pickle: bool = False
    with_confidence: bool = False


def resolve_device(device: str) -> torch.device:
    """Turn ``auto | cpu | cuda | cuda:N`` into a torch device, or raise ValueError."""
    text = str(device).strip().lower()
    if text == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if text == 'cpu':
        return torch.device('cpu')
    if text == 'cuda' or (text.startswith('cuda:') and text[5:].isdigit()):
        if not torch.cuda.is_available():
            raise ValueError(f"device '{device}' requested but CUDA is not available "
                             f'(torch {torch.__version__}); use device auto or cpu')
        dev = torch.device(text)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device '{device}' does not exist: "
                             f'{torch.cuda.device_count()} CUDA device(s)')
        return dev
    raise ValueError(f"invalid device '{device}': allowed {', '.join(DEVICE_CHOICES)}")


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """
    Turn ``auto | fp32 | fp16 | bf16`` into the autocast dtype of the model forward.

    ``auto`` is fp16 on CUDA and fp32 elsewhere. fp16 and bf16 also run on the CPU (autocast
    supports both there; slower than fp32, but the numerics are those of the GPU path).
    """
    text = str(precision).strip().lower()
    if text == 'auto':
        return torch.float16 if device.type == 'cuda' else torch.float32
    if text not in _DTYPES:
        raise ValueError(
            f"invalid precision '{precision}': allowed {', '.join(PRECISION_CHOICES)}")
    return _DTYPES[text]


def parse_input_size(value: str | int) -> str | int:
    """Validate the input size setting: 'checkpoint', 'native' or a positive short side."""
    if isinstance(value, bool):
        raise ValueError(f'invalid input_size {value!r}: allowed {", ".join(INPUT_SIZE_CHOICES)}')
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        side = int(value)
        if not 32 <= side <= 8192:
            raise ValueError(f'invalid input_size {value!r}: a short side must be 32..8192 px')
        return side
    text = str(value).strip().lower()
    if text in ('checkpoint', 'native'):
        return text
    raise ValueError(f'invalid input_size {value!r}: allowed {", ".join(INPUT_SIZE_CHOICES)}')


def dtype_name(dtype: torch.dtype) -> str:
    """Return the short precision name of a dtype (fp32, fp16, bf16)."""
    return {v: k for k, v in _DTYPES.items()}[dtype]
