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
Mask2Former semantic segmentation engine: RGB frames in, label maps out (no ROS imports).

The engine loads any Mask2Former checkpoint through ``transformers``, preprocesses frames in torch
on the inference device, runs the model forward under ``torch.autocast`` in the requested
precision (weights stay fp32), eager or compiled at construction by ``torch.compile``
(:mod:`mask2former_ros.core.backends.torch_compile`), and post-processes in fp32 on the device
without materialising full-resolution query masks (see
:mod:`mask2former_ros.core.postprocess.semantic`).

All torch work of an engine happens on the thread that created it: OpenMP thread teams are per
calling thread, and a model run from another thread than the one that loaded it was measured
1.6x slower on a 2-core CPU. :meth:`SegmentationEngine.segment_batch` refuses other threads.
"""

import itertools
import threading
import time
from typing import Any, Callable, Sequence
import warnings

from mask2former_ros.core.backends.torch_compile import (
    compile_cache_dir, ModelForward, resolve_compile)
from mask2former_ros.core.backends.torch_device import (
    dtype_name, resolve_device, resolve_precision)
from mask2former_ros.core.checkpoint import (
    first_line, load_checkpoint, Preprocessing)
from mask2former_ros.core.engine_config import (
    EngineConfig, parse_frame_size, parse_input_size)
from mask2former_ros.core.postprocess.panoptic import (
    InstanceMaps, query_inference, thresholds_of, to_result)
from mask2former_ros.core.postprocess.semantic import class_probabilities, semantic_inference
from mask2former_ros.core.render.palette import palette_for
from mask2former_ros.core.results import (
    check_rgb, InferenceOutOfMemoryError, NON_FINITE, only_result, OwnerThread,
    SegmentationResult)
from mask2former_ros.core.segmentation_task import resolve_task, thing_class_ids
import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812


class SegmentationEngine:
    """
    Mask2Former semantic, panoptic or instance segmentation of RGB uint8 frames on one device.

    All torch work runs on the thread that loaded the model (a torch call from any other thread
    raises :class:`WrongThreadError`): OpenMP thread teams are per calling thread, and a second
    thread ran the model 1.6x slower here. :meth:`close` may be called from any thread.
    """

    def __init__(self, config: EngineConfig, log: Callable[[str], None] | None = None,
                 warn: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        self.dtype = resolve_precision(config.precision, self.device)
        self.input_size = parse_input_size(config.input_size)
        self.frame_size = parse_frame_size(config.frame_size)
        compile_mode = resolve_compile(config.compile, self.device)
        if compile_mode != 'off':  # before transformers imports torch._dynamo
            compile_cache_dir()
        self._log = log or (lambda _msg: None)
        self.thresholds = thresholds_of(config)
        started = time.perf_counter()
        self._owner = OwnerThread('torch')
        model, processor = load_checkpoint(config.model, config.allow_pickle)
        self.task = resolve_task(config.task, config.model, model.config, self._log)
        self.preprocessing = Preprocessing.from_processor(processor)
        # Weights stay fp32: reduced precision is autocast around the forward only (a whole-model
        # cast agreed with fp32 on only 30-55 % of pixels of a trained model).
        self.model = model.to(device=self.device, dtype=torch.float32).eval()
        id2label = {int(k): str(v) for k, v in model.config.id2label.items()}
        self.class_names: list[str] = [id2label[i] for i in sorted(id2label)]
        self.palette = palette_for(id2label)
        self.label_dtype = np.uint8 if len(self.class_names) <= 256 else np.uint16
        self.thing_ids = thing_class_ids(self.class_names, self.task)
        scale, bias = self.preprocessing.normalisation()
        self._scale = torch.tensor(scale).view(1, 3, 1, 1).to(self.device)
        self._bias = torch.tensor(bias).view(1, 3, 1, 1).to(self.device)
        self._lock = threading.Lock()
        self.load_seconds = time.perf_counter() - started
        self._log(f"loaded '{config.model}' ({len(self.class_names)} classes, task {self.task}) "
                  f'on {self.device} as {dtype_name(self.dtype)} in {self.load_seconds:.1f} s')
        if self.dtype == torch.float16 and self.device.type == 'cpu':
            self._log('precision fp16 on the CPU: correct but slower than fp32 (meant for '
                      'checking the GPU numerics)')
        self._forward: ModelForward | None = ModelForward(
            self.model, self.device, self.dtype, compile_mode, self._log, warn)
        self._compile_at_configure(warn or self._log)

    def _compile_at_configure(self, warn: Callable[[str], None]) -> None:
        """Compile for the model input of ``frame_size`` (or the fixed one) now, at configure."""
        if self._forward is None or not self._forward.active:
            return
        size = self._warmup_frame_size()
        if size is None:
            warn(f'compile={self._forward.mode}: the model input depends on the frame size and '
                 'frame_size is not set, so the first frame of each size compiles (minutes); '
                 'set frame_size (e.g. 1024x2048) to compile at configure')
            return
        self._forward.prepare((1, 3, *self.preprocessing.target_size(*size, self.input_size)))

    def _warmup_frame_size(self) -> tuple[int, int] | None:
        """Return frame_size, else a small frame where any frame gives the same model input."""
        if self.frame_size is not None:
            return self.frame_size
        target = self.preprocessing.target_size
        fixed = target(480, 640, self.input_size) == target(1024, 2048, self.input_size)
        return (64, 64) if fixed else None

    @property
    def compile_status(self) -> str:
        """Return ``off``, the torch.compile mode in use, or ``off (failed: <reason>)``."""
        forward = self._forward
        return 'off' if forward is None else forward.status

    @property
    def compile_seconds(self) -> float:
        """Return the seconds spent compiling and warming up compiled shapes so far."""
        forward = self._forward
        return 0.0 if forward is None else forward.compile_seconds

    @property
    def num_classes(self) -> int:
        """Return the number of semantic classes of the checkpoint."""
        return len(self.class_names)

    backend = 'torch'

    @property
    def device_name(self) -> str:
        """Return the torch device, e.g. 'cpu' or 'cuda:0'."""
        return str(self.device)

    @property
    def precision_name(self) -> str:
        """Return the autocast precision of the forward: fp32, fp16 or bf16."""
        return dtype_name(self.dtype)

    @property
    def owner_thread(self) -> threading.Thread:
        """Return the thread that loaded the model: the only one allowed to run it."""
        return self._owner.thread

    def check_thread(self) -> None:
        """Raise :class:`WrongThreadError` unless called on the thread that loaded the model."""
        self._owner.check()

    def warmup(self) -> None:
        """Run one frame of frame_size (else 64x64) off the data path, never compiling for it."""
        size = self._warmup_frame_size() or (64, 64)
        forward = self._forward
        if forward is not None and not forward.covers(
                (1, 3, *self.preprocessing.target_size(*size, self.input_size))):
            return
        self.segment_batch([np.zeros((*size, 3), np.uint8)])

    def close(self) -> None:
        """Release the model and any cached GPU memory."""
        with self._lock:
            self.model = self._forward = None
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

    def segment(self, image: np.ndarray) -> SegmentationResult:
        """Segment one RGB uint8 HxWx3 frame; raise RuntimeError if it failed (e.g. NaN)."""
        return only_result(self.segment_batch([image]))

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
            check_rgb(image)
        groups: dict[tuple[int, int], list[int]] = {}
        for index, image in enumerate(images):
            key = self.preprocessing.target_size(*image.shape[:2], self.input_size)
            groups.setdefault(key, []).append(index)
        results: list[SegmentationResult | None] = [None] * len(images)
        with self._lock:
            forward = self._forward
        if forward is None:
            raise RuntimeError('engine is closed')
        try:
            with torch.inference_mode():
                for indices in groups.values():
                    outs = self._run(forward, [images[i] for i in indices])
                    for i, out in zip(indices, outs, strict=True):
                        results[i] = out
        except torch.OutOfMemoryError as exc:
            del forward
            if self.device.type == 'cuda':
                torch.cuda.empty_cache()
            raise InferenceOutOfMemoryError(
                f'{self.device} out of memory for {len(images)} frame(s) '
                f'{[tuple(i.shape[:2]) for i in images]}: {first_line(exc)}') from None
        return results  # type: ignore[return-value]

    def _semantic(self, class_logits: torch.Tensor, masks: torch.Tensor, finite: list[bool],
                  images: Sequence[np.ndarray],
                  grid: tuple[int, int]) -> list[SegmentationResult]:
        """Semantic label maps (and confidences) of a batch, on the host."""
        probs = class_probabilities(class_logits)
        device_labels, confidences = [], []
        for index, image in enumerate(images):
            if not finite[index]:
                device_labels.append(None)
                confidences.append(None)
                continue
            labels, confidence = semantic_inference(
                probs[index], masks[index], image.shape[0], image.shape[1], score_grid=grid,
                with_confidence=self.config.with_confidence)
            device_labels.append(labels)
            confidences.append(confidence)
        host_labels = _to_host(device_labels)
        results = []
        for labels, confidence in zip(host_labels, confidences, strict=True):
            if labels is None:
                results.append(SegmentationResult(None, error=NON_FINITE))
                continue
            conf_array = None if confidence is None else confidence.cpu().numpy()
            results.append(SegmentationResult(labels.astype(self.label_dtype, copy=False),
                                              conf_array))
        return results

    def _instances(self, class_logits: torch.Tensor, masks: torch.Tensor, finite: list[bool],
                   images: Sequence[np.ndarray],
                   grid: tuple[int, int]) -> list[SegmentationResult]:
        """
        Panoptic or instance results of a batch: labels, instance ids and segments.

        On the CPU the post-processing runs on numpy views of the outputs: the same code and
        arrays as the onnxruntime backend; on a GPU the same code runs on the device.
        """
        if self.device.type == 'cpu':
            class_logits, masks = class_logits.numpy(), masks.numpy()
        maps: list[InstanceMaps | None] = []
        for index, image in enumerate(images):
            maps.append(query_inference(self.task, class_logits[index], masks[index],
                                        *image.shape[:2], grid, self.thing_ids, self.thresholds)
                        if finite[index] else None)
        host = _to_host([t for m in maps for t in ((None, None) if m is None
                                                   else (m.labels, m.instances))])
        results = []
        for index, item in enumerate(maps):
            labels, instances = host[2 * index], host[2 * index + 1]
            if item is None or labels is None or instances is None:
                results.append(SegmentationResult(None, error=NON_FINITE))
                continue
            results.append(to_result(labels, instances, item.records, self.label_dtype))
        return results

    def _run(self, forward: ModelForward,
             images: Sequence[np.ndarray]) -> list[SegmentationResult]:
        clock = _StageClock(self.device)
        pixel_values = self.preprocess(images)
        clock.mark('preprocess')
        class_logits, masks = forward(pixel_values)
        clock.mark('model')
        # Post-processing in fp32, outside autocast (index_put under autocast mixes dtypes).
        class_logits, masks = class_logits.float(), masks.float()
        finite = (torch.isfinite(class_logits).flatten(1).all(1)
                  & torch.isfinite(masks).flatten(1).all(1)).tolist()
        if self.task == 'semantic':
            results = self._semantic(class_logits, masks, finite, images,
                                     tuple(pixel_values.shape[-2:]))
        else:
            results = self._instances(class_logits, masks, finite, images,
                                      tuple(pixel_values.shape[-2:]))
        clock.mark('postprocess')
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


def _to_host(labels: Sequence[torch.Tensor | np.ndarray | None]) -> list[np.ndarray | None]:
    """
    Copy each frame's integer label map to the host once.

    On CUDA the copies go into pinned buffers without blocking and one stream synchronisation
    waits for all of them; on the CPU the tensors are already host memory (no copy).
    """
    if not any(isinstance(t, torch.Tensor) and t.device.type == 'cuda' for t in labels):
        return [None if t is None else np.asarray(t) for t in labels]
    pinned = [None if t is None else torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
              for t in labels]
    for host, device_tensor in zip(pinned, labels, strict=True):
        if host is not None:
            host.copy_(device_tensor, non_blocking=True)
    torch.cuda.current_stream().synchronize()
    return [None if h is None else h.numpy() for h in pinned]
