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

"""Engine settings: backend, device, precision and sizes, validated (no ROS, no torch)."""

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

# The checkpoint the node and segment_bag load when none is given (19 Cityscapes classes).
DEFAULT_MODEL = 'facebook/mask2former-swin-large-cityscapes-semantic'
BACKEND_CHOICES = ('torch', 'onnxruntime')
DEVICE_CHOICES = ('auto', 'cpu', 'cuda', 'cuda:N')
PRECISION_CHOICES = ('auto', 'fp32', 'fp16', 'bf16')
INPUT_SIZE_CHOICES = ('checkpoint', 'native', '<short side in pixels, e.g. 1024>')
TASK_CHOICES = ('auto', 'semantic', 'panoptic', 'instance')
# torch.compile of the torch backend's model forward; torch's own mode names (reduce-overhead
# and max-autotune capture CUDA graphs on CUDA). auto: off on the CPU, reduce-overhead on CUDA.
COMPILE_CHOICES = ('auto', 'off', 'default', 'reduce-overhead', 'max-autotune')
# transformers' post_process_panoptic/instance_segmentation defaults (threshold,
# mask_threshold, overlap_mask_area_threshold).
DEFAULT_SCORE_THRESHOLD = 0.5
DEFAULT_MASK_THRESHOLD = 0.5
DEFAULT_OVERLAP_THRESHOLD = 0.8
# ONNX Runtime execution providers, best first; short names are accepted too.
PROVIDER_ALIASES = {'tensorrt': 'TensorrtExecutionProvider', 'cuda': 'CUDAExecutionProvider',
                    'cpu': 'CPUExecutionProvider'}
DEFAULT_PROVIDERS = tuple(PROVIDER_ALIASES.values())


def parse_device(device: str) -> str:
    """Validate ``auto | cpu | cuda | cuda:N`` (without asking torch); return it normalised."""
    text = str(device).strip().lower()
    if text in ('auto', 'cpu', 'cuda') or (text.startswith('cuda:') and text[5:].isdigit()):
        return text
    raise ValueError(f"invalid device '{device}': allowed {', '.join(DEVICE_CHOICES)}")


def parse_precision(precision: str) -> str:
    """Validate ``auto | fp32 | fp16 | bf16``; return it normalised."""
    text = str(precision).strip().lower()
    if text not in PRECISION_CHOICES:
        raise ValueError(
            f"invalid precision '{precision}': allowed {', '.join(PRECISION_CHOICES)}")
    return text


def parse_compile(mode: str) -> str:
    """Validate ``auto | off | default | reduce-overhead | max-autotune``; return it normalised."""
    text = str(mode).strip().lower()
    if text not in COMPILE_CHOICES:
        raise ValueError(f"invalid compile '{mode}': allowed {', '.join(COMPILE_CHOICES)}")
    return text


def parse_backend(backend: str) -> str:
    """Validate ``torch | onnxruntime``; return it normalised."""
    text = str(backend).strip().lower()
    if text not in BACKEND_CHOICES:
        raise ValueError(f"invalid backend '{backend}': allowed {', '.join(BACKEND_CHOICES)}")
    return text


def parse_providers(providers: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """
    Validate ONNX Runtime provider names (``tensorrt``, ``cuda``, ``cpu`` or full names).

    Returns full names in the given order; empty (or ``auto``) means the default order,
    TensorRT, CUDA, CPU.
    """
    names = []
    for item in providers:
        text = str(item).strip()
        if not text or text.lower() == 'auto':
            continue
        name = PROVIDER_ALIASES.get(text.lower(), text)
        if not name.endswith('ExecutionProvider'):
            raise ValueError(f"invalid ONNX Runtime provider '{item}': use "
                             f"{', '.join(PROVIDER_ALIASES)} or a full name such as "
                             "'CUDAExecutionProvider'")
        if name in names:
            raise ValueError(f"ONNX Runtime provider '{item}' is listed twice")
        names.append(name)
    return tuple(names) or DEFAULT_PROVIDERS


def parse_frame_size(value: str) -> tuple[int, int] | None:
    """Parse ``HxW`` (e.g. ``1024x2048``) into (height, width); '' gives None."""
    text = str(value).strip().lower()
    if not text:
        return None
    parts = text.split('x')
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"invalid frame size '{value}': write HEIGHTxWIDTH, e.g. 1024x2048")
    height, width = (int(p) for p in parts)
    if not (1 <= height <= 16384 and 1 <= width <= 16384):
        raise ValueError(f"invalid frame size '{value}': sides must be 1..16384 px")
    return height, width


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


def parse_task(task: str) -> str:
    """Validate ``auto | semantic | panoptic | instance``; return it normalised."""
    text = str(task).strip().lower()
    if text not in TASK_CHOICES:
        raise ValueError(f"invalid task '{task}': allowed {', '.join(TASK_CHOICES)}")
    return text


def parse_threshold(name: str, value: float) -> float:
    """Validate a threshold in [0, 1] (``name`` for the message); return it as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f'invalid {name} {value!r}: a number in [0, 1]')
    number = float(value)
    if not 0.0 <= number <= 1.0:  # also refuses NaN
        raise ValueError(f'invalid {name} {value!r}: must be in [0, 1]')
    return number


@dataclass(frozen=True)
class EngineSetting:
    """An engine setting as the node (a parameter) and segment_bag (an option) both offer it."""

    name: str
    default: Any
    choices: tuple[str, ...] = ()  # the allowed values, as messages and help texts list them
    parse: Callable[[Any], Any] | None = None  # normalises a value; ValueError if invalid


# The engine settings the node's parameters and segment_bag's options mirror, defined once:
# names, defaults, choices and parsers (each front end words its own help text).
ENGINE_SETTINGS: dict[str, EngineSetting] = {s.name: s for s in (
    EngineSetting('model', DEFAULT_MODEL),
    EngineSetting('device', 'auto', DEVICE_CHOICES, parse_device),
    EngineSetting('precision', 'auto', PRECISION_CHOICES, parse_precision),
    EngineSetting('input_size', 'checkpoint', INPUT_SIZE_CHOICES, parse_input_size),
    EngineSetting('backend', 'torch', BACKEND_CHOICES, parse_backend),
    EngineSetting('onnx_model', ''),
    EngineSetting('frame_size', '', (), parse_frame_size),
    EngineSetting('compile', 'auto', COMPILE_CHOICES, parse_compile),
    EngineSetting('task', 'auto', TASK_CHOICES, parse_task),
    *(EngineSetting(name, default, (), partial(parse_threshold, name)) for name, default in (
        ('score_threshold', DEFAULT_SCORE_THRESHOLD), ('mask_threshold', DEFAULT_MASK_THRESHOLD),
        ('overlap_threshold', DEFAULT_OVERLAP_THRESHOLD))),
    EngineSetting('allow_pickle', False),
)}


def _default(name: str) -> Any:
    return ENGINE_SETTINGS[name].default


class SettingError(ValueError):
    """An engine setting is invalid; ``name`` is the setting (node parameter, bag option)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


@dataclass
class EngineConfig:
    """
    Settings of a segmentation engine, validated and normalised once, when created.

    Creating one raises :class:`SettingError` for the first invalid setting. ``task``,
    ``backend``, ``device``, ``precision`` and ``compile`` become their normalised names,
    ``input_size`` 'checkpoint', 'native' or an int, the thresholds floats; ``frame_size`` and
    ``onnx_providers`` are checked and kept as given. The node's parameters of the same names
    say what each means.
    """

    model: str
    device: str = _default('device')
    precision: str = _default('precision')
    input_size: str | int = _default('input_size')
    allow_pickle: bool = _default('allow_pickle')
    with_confidence: bool = False
    backend: str = _default('backend')
    onnx_model: str = _default('onnx_model')  # exported file; '' = export into the cache
    onnx_providers: tuple[str, ...] = field(default_factory=tuple)  # (), ('auto',): best first
    frame_size: str = _default('frame_size')  # 'HxW' of the frames; to export on configure
    onnx_threads: int = 0  # ONNX Runtime intra-op threads; 0: one per core
    onnx_spinning: bool = True  # ONNX Runtime worker threads spin between operators
    task: str = _default('task')  # semantic, panoptic, instance, auto (from the checkpoint)
    score_threshold: float = _default('score_threshold')  # keep a query above this score
    mask_threshold: float = _default('mask_threshold')  # a query's mask: sigmoid >= this
    overlap_threshold: float = _default('overlap_threshold')  # keep > this share of a mask
    compile: str = _default('compile')  # noqa: A003 - torch backend: COMPILE_CHOICES

    def __post_init__(self) -> None:
        """Validate and normalise the settings (in the order segment_bag reports them)."""
        def kept(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
            return lambda value: (parse(value), value)[1]

        for name, parse in (('backend', parse_backend), ('device', parse_device),
                            ('precision', parse_precision), ('input_size', parse_input_size),
                            ('onnx_providers', kept(parse_providers)),
                            ('frame_size', kept(parse_frame_size)), ('compile', parse_compile),
                            ('task', parse_task),
                            *((n, partial(parse_threshold, n)) for n in
                              ('score_threshold', 'mask_threshold', 'overlap_threshold'))):
            try:
                setattr(self, name, parse(getattr(self, name)))
            except ValueError as exc:
                raise SettingError(name, str(exc)) from None
