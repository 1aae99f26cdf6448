"""
Mask2Former semantic segmentation engine: RGB frames in, label maps out (no ROS imports).

The engine loads any Mask2Former checkpoint through ``transformers``, preprocesses frames in torch
on the inference device, runs the model forward under ``torch.autocast`` in the requested
precision (weights stay fp32) and post-processes in fp32 on the device without materialising
full-resolution query masks (see :mod:`mask2former_ros.core.semantic_postprocess`).

All torch work of an engine happens on the thread that created it: OpenMP thread teams are per
calling thread, and a model run from another thread than the one that loaded it was measured
1.6x slower on a 2-core CPU. :meth:`SegmentationEngine.segment_batch` refuses other threads.
"""

from dataclasses import dataclass, field
import itertools
import math
import os
from pathlib import Path
import threading
import time
from typing import Any, Callable, Mapping, Sequence
import warnings

from mask2former_ros.core.palette import palette_for
from mask2former_ros.core.semantic_postprocess import class_probabilities, semantic_inference
import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

DEVICE_CHOICES = ('auto', 'cpu', 'cuda', 'cuda:N')
PRECISION_CHOICES = ('auto', 'fp32', 'fp16', 'bf16')
INPUT_SIZE_CHOICES = ('checkpoint', 'native', '<short side in pixels, e.g. 1024>')
_DTYPES = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}


class ModelLoadError(RuntimeError):
    """A checkpoint could not be found, read or trusted."""


class WrongThreadError(RuntimeError):
    """Torch work of an engine was asked for on another thread than the one that loaded it."""


class InferenceOutOfMemoryError(RuntimeError):
    """The device ran out of memory for a batch; the cache was freed and the engine goes on."""


NON_FINITE = 'non-finite model output (NaN/inf logits, e.g. fp16 overflow)'


@dataclass
class EngineConfig:
    """Settings of a :class:`SegmentationEngine`; see the README for their meaning."""

    model: str
    device: str = 'auto'
    precision: str = 'auto'
    input_size: str | int = 'checkpoint'
    allow_pickle: bool = False
    with_confidence: bool = False


@dataclass
class SegmentationResult:
    """Output of one frame: label map at the input resolution and optional confidence."""

    labels: np.ndarray | None
    confidence: np.ndarray | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    error: str | None = None  # set (and labels None) when this frame failed, e.g. NaN logits

    @property
    def ok(self) -> bool:
        """Return True when the frame has labels."""
        return self.error is None


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
    from transformers import Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessorPil
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
            f"cannot load Mask2Former checkpoint '{model}' ({hint}): {_first_line(exc)}. "
            'Pass a local directory holding config.json, model.safetensors and '
            'preprocessor_config.json (e.g. made with `hf download '
            f'{model} --local-dir DIR` on a machine with network), as model:=DIR') from exc
    except Exception as exc:  # corrupt weights surface as many error types
        raise ModelLoadError(f"cannot load Mask2Former checkpoint '{model}': "
                             f'{type(exc).__name__}: {_first_line(exc)}') from exc
    return net, processor


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class SegmentationEngine:
    """
    Mask2Former semantic segmentation of RGB uint8 frames on one device.

    Thread-safe: several threads may run :meth:`segment_batch` at once on the one shared model
    (read-only under ``torch.inference_mode``); :meth:`close` lets calls in flight finish.
    """

    def __init__(self, config: EngineConfig, log: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        self.dtype = resolve_precision(config.precision, self.device)
        self.input_size = parse_input_size(config.input_size)
        self._log = log or (lambda _msg: None)
        started = time.perf_counter()
        self._owner = threading.current_thread()
        model, processor = load_checkpoint(config.model, config.allow_pickle)
        self.preprocessing = Preprocessing.from_processor(processor)
        # Weights stay fp32: reduced precision is autocast around the forward only (a whole-model
        # cast agreed with fp32 on only 30-55 % of pixels of a trained model).
        self.model = model.to(device=self.device, dtype=torch.float32).eval()
        id2label = {int(k): str(v) for k, v in model.config.id2label.items()}
        self.class_names: list[str] = [id2label[i] for i in sorted(id2label)]
        self.palette = palette_for(id2label)
        self.label_dtype = np.uint8 if len(self.class_names) <= 256 else np.uint16
        p = self.preprocessing
        rescale = p.rescale_factor if p.do_rescale else 1.0
        mean = torch.tensor(p.mean if p.do_normalize else (0.0, 0.0, 0.0))
        std = torch.tensor(p.std if p.do_normalize else (1.0, 1.0, 1.0))
        # x_norm = (x * rescale - mean) / std = x * scale + bias, per channel.
        self._scale = (rescale / std).view(1, 3, 1, 1).to(self.device)
        self._bias = (-mean / std).view(1, 3, 1, 1).to(self.device)
        self._lock = threading.Lock()
        self.load_seconds = time.perf_counter() - started
        self._log(f"loaded '{config.model}' ({len(self.class_names)} classes) on {self.device} "
                  f'as {dtype_name(self.dtype)} in {self.load_seconds:.1f} s')
        if self.dtype == torch.float16 and self.device.type == 'cpu':
            self._log('precision fp16 on the CPU: correct but slower than fp32 (meant for '
                      'checking the GPU numerics)')

    @property
    def num_classes(self) -> int:
        """Return the number of semantic classes of the checkpoint."""
        return len(self.class_names)

    @property
    def owner_thread(self) -> threading.Thread:
        """Return the thread that loaded the model: the only one allowed to run it."""
        return self._owner

    def check_thread(self) -> None:
        """Raise :class:`WrongThreadError` unless called on the thread that loaded the model."""
        current = threading.current_thread()
        if current is not self._owner:
            raise WrongThreadError(
                f"torch work on thread '{current.name}', but the engine was loaded on "
                f"'{self._owner.name}': all torch work must run on that one thread")

    def close(self) -> None:
        """Release the model and any cached GPU memory."""
        with self._lock:
            self.model = None
            if self.device.type == 'cuda':
                torch.cuda.empty_cache()

    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Turn same-target-size RGB uint8 HxWx3 frames into the normalised model input batch."""
        tensors = []
        for image in images:
            h, w = image.shape[:2]
            target = self.preprocessing.target_size(h, w, self.input_size)
            with warnings.catch_warnings():  # read-only views of message buffers are fine
                warnings.simplefilter('ignore', UserWarning)
                x = torch.as_tensor(image).permute(2, 0, 1)[None]  # channels-last view
            if target[0] <= h and target[1] <= w and (h, w) != target:
                # Shrink where the frame is (host memory, from ROS) with the uint8 antialiased
                # kernel, which rounds like PIL; only the small image goes to the device.
                x = F.interpolate(x, size=target, mode='bilinear', align_corners=False,
                                  antialias=True)
            x = x.to(self.device, non_blocking=True).float()
            if tuple(x.shape[-2:]) != target:
                x = F.interpolate(x, size=target, mode='bilinear', align_corners=False,
                                  antialias=target[0] < h or target[1] < w)
            tensors.append(x)
        batch = torch.cat(tensors) if len(tensors) > 1 else tensors[0]
        return batch * self._scale + self._bias  # fp32: autocast casts inside the forward

    def _check(self, image: np.ndarray) -> None:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f'expected an HxWx3 uint8 RGB image, got {image.dtype} '
                             f'{tuple(image.shape)}')
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f'empty image {tuple(image.shape)}')

    def segment(self, image: np.ndarray) -> SegmentationResult:
        """Segment one RGB uint8 HxWx3 frame; raise RuntimeError if it failed (e.g. NaN)."""
        result = self.segment_batch([image])[0]
        if result.error is not None:
            raise RuntimeError(result.error)
        return result

    def segment_batch(self, images: Sequence[np.ndarray]) -> list[SegmentationResult]:
        """
        Segment frames in as few forward passes as their model input sizes allow.

        A frame whose model output is not finite gets ``labels=None`` and ``error`` set, never
        labels made of NaN comparisons; the other frames of the batch are unaffected. Raises
        :class:`InferenceOutOfMemoryError` (after freeing the cache) when the device runs out
        of memory, and :class:`WrongThreadError` off the loading thread.
        """
        self.check_thread()
        for image in images:
            self._check(image)
        groups: dict[tuple[int, int], list[int]] = {}
        for index, image in enumerate(images):
            key = self.preprocessing.target_size(*image.shape[:2], self.input_size)
            groups.setdefault(key, []).append(index)
        results: list[SegmentationResult | None] = [None] * len(images)
        with self._lock:
            model = self.model
        if model is None:
            raise RuntimeError('engine is closed')
        try:
            with torch.inference_mode():
                for indices in groups.values():
                    outs = self._run(model, [images[i] for i in indices])
                    for i, out in zip(indices, outs, strict=True):
                        results[i] = out
        except torch.OutOfMemoryError as exc:
            del model
            if self.device.type == 'cuda':
                torch.cuda.empty_cache()
            raise InferenceOutOfMemoryError(
                f'{self.device} out of memory for {len(images)} frame(s) '
                f'{[tuple(i.shape[:2]) for i in images]}: {_first_line(exc)}') from None
        return results  # type: ignore[return-value]

    def forward(self, model: torch.nn.Module, pixel_values: torch.Tensor):
        """Run the model forward under autocast in the engine's precision (fp32: plain)."""
        with torch.autocast(self.device.type, dtype=self.dtype,
                            enabled=self.dtype != torch.float32):
            return model(pixel_values=pixel_values)

    def _run(self, model: torch.nn.Module,
             images: Sequence[np.ndarray]) -> list[SegmentationResult]:
        clock = _StageClock(self.device)
        pixel_values = self.preprocess(images)
        clock.mark('preprocess')
        outputs = self.forward(model, pixel_values)
        clock.mark('model')
        # Post-processing in fp32, outside autocast (index_put under autocast mixes dtypes).
        class_logits = outputs.class_queries_logits.float()
        masks = outputs.masks_queries_logits.float()
        finite = (torch.isfinite(class_logits).flatten(1).all(1)
                  & torch.isfinite(masks).flatten(1).all(1)).tolist()
        probs = class_probabilities(class_logits)
        device_labels, confidences = [], []
        for index, image in enumerate(images):
            if not finite[index]:
                device_labels.append(None)
                confidences.append(None)
                continue
            labels, confidence = semantic_inference(
                probs[index], masks[index], image.shape[0], image.shape[1],
                score_grid=tuple(pixel_values.shape[-2:]),
                with_confidence=self.config.with_confidence)
            device_labels.append(labels)
            confidences.append(confidence)
        host_labels = _to_host(device_labels)
        clock.mark('postprocess')
        results = []
        for labels, confidence in zip(host_labels, confidences, strict=True):
            if labels is None:
                results.append(SegmentationResult(None, error=NON_FINITE))
                continue
            conf_array = None if confidence is None else confidence.cpu().numpy()
            results.append(SegmentationResult(labels.astype(self.label_dtype, copy=False),
                                              conf_array))
        n = len(images)
        timings = {stage: ms / n for stage, ms in clock.elapsed_ms().items()}
        timings['batch_size'] = float(n)
        for result in results:
            result.timings_ms = dict(timings)
        return results


class _StageClock:
    """
    Stage durations of one batch without a device-wide synchronize per stage.

    On CUDA each mark records an event on the current stream and the durations are read once,
    after the labels' copy to the host has completed; on the CPU marks read the wall clock.
    """

    def __init__(self, device: torch.device) -> None:
        self._cuda = device.type == 'cuda'
        self._marks: list[tuple[str, Any]] = [('start', self._now())]

    def _now(self) -> Any:
        if self._cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def mark(self, stage: str) -> None:
        """End ``stage`` now."""
        self._marks.append((stage, self._now()))

    def elapsed_ms(self) -> dict[str, float]:
        """Return milliseconds per stage (waits for the last CUDA event only)."""
        pairs = itertools.pairwise(self._marks)
        if self._cuda:
            self._marks[-1][1].synchronize()
            return {stage: start.elapsed_time(end) for (_, start), (stage, end) in pairs}
        return {stage: (end - start) * 1e3 for (_, start), (stage, end) in pairs}


def _to_host(labels: Sequence[torch.Tensor | None]) -> list[np.ndarray | None]:
    """
    Copy each frame's integer label map to the host once.

    On CUDA the copies go into pinned buffers without blocking and one stream synchronisation
    waits for all of them; on the CPU the tensors are already host memory (no copy).
    """
    if not any(t is not None and t.device.type == 'cuda' for t in labels):
        return [None if t is None else t.numpy() for t in labels]
    pinned = [None if t is None else torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
              for t in labels]
    for host, device_tensor in zip(pinned, labels, strict=True):
        if host is not None:
            host.copy_(device_tensor, non_blocking=True)
    torch.cuda.current_stream().synchronize()
    return [None if h is None else h.numpy() for h in pinned]
