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

"""Torch device and autocast dtype of the torch backend, from validated settings."""

from mask2former_ros.core.engine_config import parse_device, parse_precision
import torch

_DTYPES = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}


def resolve_device(device: str) -> torch.device:
    """Turn ``auto | cpu | cuda | cuda:N`` into a torch device, or raise ValueError."""
    text = parse_device(device)
    if text == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if text == 'cpu':
        return torch.device('cpu')
    if not torch.cuda.is_available():
        raise ValueError(f"device '{device}' requested but CUDA is not available "
                         f'(torch {torch.__version__}); use device auto or cpu')
    dev = torch.device(text)
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device '{device}' does not exist: "
                         f'{torch.cuda.device_count()} CUDA device(s)')
    return dev


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """
    Turn ``auto | fp32 | fp16 | bf16`` into the autocast dtype of the model forward.

    ``auto`` is fp16 on CUDA and fp32 elsewhere. fp16 and bf16 also run on the CPU (autocast
    supports both there; slower than fp32, but the numerics are those of the GPU path).
    """
    text = parse_precision(precision)
    if text == 'auto':
        return torch.float16 if device.type == 'cuda' else torch.float32
    return _DTYPES[text]


def dtype_name(dtype: torch.dtype) -> str:
    """Return the short precision name of a dtype (fp32, fp16, bf16)."""
    return {v: k for k, v in _DTYPES.items()}[dtype]
