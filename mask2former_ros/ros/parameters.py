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

"""The node's parameters: names, defaults, descriptions and validation (no ROS imports)."""

from dataclasses import dataclass
from typing import Any, Callable

from mask2former_ros.core.engine_config import (
    DEVICE_CHOICES, ENGINE_SETTINGS, EngineConfig, INPUT_SIZE_CHOICES, parse_device,
    parse_frame_size, parse_input_size, parse_providers, PRECISION_CHOICES, PROVIDER_ALIASES)
from mask2former_ros.core.postprocess.instance_tracking import DEFAULT_MAX_AGE


def _choice(*allowed: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value in allowed else f"must be one of {', '.join(allowed)}"
    return check


def _parsed_choice(parse: Callable[[Any], str], choices: tuple[str, ...],
                   exact: bool = True) -> Callable[[Any], str | None]:
    """Check with the engine's parser; ``exact``: the value must already be normalised."""
    def check(value: Any) -> str | None:
        try:
            if parse(value) == value or not exact:
                return None
        except ValueError:
            pass
        return f"must be one of {', '.join(choices)}"
    return check


def _input_size(value: Any) -> str | None:
    try:
        parse_input_size(value)
    except ValueError:
        return f"must be one of {', '.join(INPUT_SIZE_CHOICES)} (short side 32..8192)"
    return None


def _parsed(parse: Callable[[Any], Any]) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        try:
            parse(value)
        except ValueError as exc:
            return f'is invalid: {exc}'
        return None
    return check


def _range(low: float, high: float) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if low <= value <= high else f'must be within [{low}, {high}]'
    return check


def _non_empty(value: Any) -> str | None:
    return None if str(value).strip() else 'must not be empty'


def _camera_names(value: Any) -> str | None:
    names = list(value)
    if not names:
        return "must list at least one camera ('' for the node's own namespace)"
    if len(set(names)) != len(names):
        return 'must not repeat a camera'
    for name in names:
        if name.startswith('/'):
            return f"'{name}' must be a relative name (no leading '/')"
        if name and not all(part and (part[0].isalpha() or part[0] == '_') and
                            all(c.isalnum() or c == '_' for c in part)
                            for part in name.strip('/').split('/')):
            return f"'{name}' is not a valid relative ROS name"
    return None


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter: default, description, validator and whether it applies live."""

    name: str
    default: Any
    description: str
    check: Callable[[Any], str | None] | None = None
    live: bool = False  # True: takes effect at once; False: on the next configure


def _engine(name: str, description: str,
            check: Callable[[Any], str | None] | None = None) -> ParameterSpec:
    """Return the parameter of an engine setting: default and choices from ENGINE_SETTINGS."""
    setting = ENGINE_SETTINGS[name]
    if check is None and setting.choices:
        check = _parsed_choice(setting.parse, setting.choices)
    return ParameterSpec(name, setting.default, description, check)


PARAMETERS: tuple[ParameterSpec, ...] = (
    _engine('model',
            'Mask2Former checkpoint: Hugging Face hub id or local directory', _non_empty),
    _engine('device', f"inference device: {', '.join(DEVICE_CHOICES)}",
            _parsed_choice(parse_device, DEVICE_CHOICES, exact=False)),
    _engine('precision',
            f"{', '.join(PRECISION_CHOICES)} (autocast of the model forward; weights "
            'and post-processing stay fp32); auto = fp16 on CUDA, fp32 on CPU'),
    _engine('input_size',
            "model input: 'checkpoint' (preprocessor config, e.g. 384x384 squash), "
            "'native' (frame size rounded to 32) or a short side in px keeping aspect",
            _input_size),
    _engine('backend',
            'torch: eager PyTorch (transformers); onnxruntime: an exported ONNX graph '
            '(onnx_model), served without torch'),
    _engine('onnx_model',
            'backend onnxruntime: graph written by mask2former_export; empty: export '
            'model for frame_size into the user cache on configure (once) and reuse it'),
    ParameterSpec('onnx_providers', ['auto'],
                  'backend onnxruntime: execution providers in order of preference, e.g. '
                  f"[{', '.join(PROVIDER_ALIASES)}]; ['auto'] = the best available of "
                  'TensorRT (fp16), CUDA, CPU; one that fails falls back to the next',
                  _parsed(parse_providers)),
    ParameterSpec('onnx_threads', 0,
                  'backend onnxruntime: intra-op threads of ONNX Runtime (0: one per core)',
                  _range(0, 256)),
    ParameterSpec('onnx_spinning', False,
                  'backend onnxruntime: worker threads spin between operators (faster alone; '
                  "false leaves the cores to the node's other threads between operators)"),
    _engine('frame_size',
            "camera frame size HxW, e.g. '1024x2048'; backend onnxruntime: the size the "
            'graph is exported for (needed when onnx_model is empty), checked against '
            'onnx_model', _parsed(parse_frame_size)),
    _engine('compile',
            'backend torch: torch.compile mode of the model forward, compiled at '
            "configure for frame_size (or the checkpoint's fixed input): off, default, "
            'reduce-overhead (CUDA graphs), max-autotune; auto = off on the CPU, '
            'reduce-overhead on CUDA. A failure leaves the model eager'),
    _engine('task',
            'semantic, panoptic or instance; auto = what the checkpoint was trained for '
            '(its config or name; semantic where it does not say; with onnx_model: the '
            "graph's task). panoptic and instance "
            'add segmentation/instances and segmentation/detections'),
    _engine('score_threshold',
            'panoptic/instance: keep a query whose class score is above this, 0..1',
            _range(0.0, 1.0)),
    _engine('mask_threshold',
            "panoptic/instance: a pixel belongs to a query's mask where its sigmoid is "
            'at least this, 0..1', _range(0.0, 1.0)),
    _engine('overlap_threshold',
            'panoptic/instance: keep a segment only if it keeps more than this share of '
            'its mask after overlaps are resolved, 0..1', _range(0.0, 1.0)),
    ParameterSpec('tracking', True,
                  'panoptic/instance: instance ids are track ids, the same object keeping its id '
                  'across frames (per camera); false: ids per frame'),
    ParameterSpec('track_max_age', DEFAULT_MAX_AGE,
                  'tracking: a track ends after this many processed frames without its object '
                  '(frames dropped for newer ones do not count), or when unseen for longer than '
                  'this many + 1 of the camera frame intervals', _range(0, 100000)),
    _engine('allow_pickle',
            'allow pickle (*.bin) weights; they can run code when loaded'),
    ParameterSpec('cameras', [''],
                  "camera namespaces served by one model, e.g. ['front', 'left']; [''] = "
                  'subscribe image, publish segmentation/* in the node namespace', _camera_names),
    ParameterSpec('max_batch_size', 0,
                  'most frames segmented in one batch (0: the pending frame of every camera); '
                  'cameras are served in turn', _range(0, 64)),
    ParameterSpec('image_transport', 'raw',
                  'raw: subscribe <camera>/image; compressed: <camera>/image/compressed',
                  _choice('raw', 'compressed')),
    ParameterSpec('qos_reliability', 'best_effort',
                  'input QoS: best_effort matches every camera driver (reliable or not); '
                  'reliable only matches reliable publishers', _choice('best_effort', 'reliable')),
    ParameterSpec('qos_depth', 1, 'input queue depth (1: newest frame only)', _range(1, 100)),
    ParameterSpec('output_qos_reliability', 'reliable',
                  'output QoS; reliable outputs are received by both kinds of subscriber',
                  _choice('best_effort', 'reliable')),
    ParameterSpec('publish_labels', True, 'publish segmentation/labels (mono8/mono16)',
                  live=True),
    ParameterSpec('publish_color', True,
                  'publish segmentation/color while it has subscribers', live=True),
    ParameterSpec('publish_overlay', True,
                  'publish segmentation/overlay while it has subscribers', live=True),
    ParameterSpec('overlay_alpha', 0.5, 'weight of the class colours in the overlay, 0..1',
                  _range(0.0, 1.0), live=True),
    ParameterSpec('diagnostics_period', 1.0, 'seconds between /diagnostics messages',
                  _range(0.05, 60.0)),
    ParameterSpec('warning_throttle', 5.0,
                  'seconds between repeated warnings about bad input on one topic',
                  _range(0.0, 3600.0), live=True),
    ParameterSpec('autostart', True,
                  'configure and activate on start-up (false: wait for lifecycle transitions)'),
)

SPECS: dict[str, ParameterSpec] = {spec.name: spec for spec in PARAMETERS}


def validate(name: str, value: Any) -> str | None:
    """Return None if ``value`` is allowed for parameter ``name``, else the reason."""
    spec = SPECS.get(name)
    if spec is None:
        return None
    expected = type(spec.default)
    if expected is list:
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
    else:
        ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if not ok:
        hint = f' (write {value}.0)' if expected is float and isinstance(value, int) else ''
        return f'{name} must be of type {expected.__name__}, got {value!r}{hint}'
    problem = spec.check(value) if spec.check else None
    return None if problem is None else f'{name}={value!r} refused: {name} {problem}'


@dataclass(frozen=True)
class Settings:
    """Parameters read at configure; they apply until the next configure."""

    engine: EngineConfig
    cameras: tuple[str, ...]
    max_batch_size: int
    compressed: bool
    qos_reliable: bool
    qos_depth: int
    output_reliable: bool
    diagnostics_period: float
    tracking: bool = True
    track_max_age: int = DEFAULT_MAX_AGE

    @classmethod
    def read(cls, p: Callable[[str], Any]) -> 'Settings':
        """Read the configure-time parameters through ``p(name) -> value``."""
        return cls(engine=EngineConfig(model=p('model'), device=p('device'),
                                       precision=p('precision'), input_size=p('input_size'),
                                       allow_pickle=p('allow_pickle'), backend=p('backend'),
                                       onnx_model=p('onnx_model'),
                                       onnx_providers=tuple(p('onnx_providers')),
                                       frame_size=p('frame_size'),
                                       onnx_threads=p('onnx_threads'),
                                       onnx_spinning=p('onnx_spinning'), task=p('task'),
                                       score_threshold=p('score_threshold'),
                                       mask_threshold=p('mask_threshold'),
                                       overlap_threshold=p('overlap_threshold'),
                                       compile=p('compile')),
                   cameras=tuple(p('cameras')), max_batch_size=p('max_batch_size'),
                   compressed=p('image_transport') == 'compressed',
                   qos_reliable=p('qos_reliability') == 'reliable', qos_depth=p('qos_depth'),
                   output_reliable=p('output_qos_reliability') == 'reliable',
                   diagnostics_period=p('diagnostics_period'), tracking=p('tracking'),
                   track_max_age=p('track_max_age'))
