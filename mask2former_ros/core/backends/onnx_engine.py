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
ONNX Runtime segmentation engine: RGB frames in, label maps out (numpy and onnxruntime only).

Serves a graph written by ``mask2former_export``
(:mod:`mask2former_ros.core.backends.onnx_export`): the frame's uint8 RGB bytes go in. A semantic
graph returns one label byte per pixel, with
preprocessing, model and post-processing inside the graph; a panoptic or instance graph
returns the query outputs, and the post-processing of
:mod:`mask2former_ros.core.postprocess.panoptic` (numpy and OpenCV, the code the torch engine
runs on the CPU) makes labels, instance ids and segments. The graph's metadata names its task.
Nothing here imports torch or transformers.

Execution providers are tried in the configured order (default TensorRT, CUDA, CPU): one that
is not in this onnxruntime build or fails to initialise gives one warning (or, when it was only
a default, one info line) and the next is tried; :attr:`OnnxSegmentationEngine.device_name`
names the one that runs. TensorRT runs fp16 with its engine cache in the user cache.
"""

import json
from pathlib import Path
import time
from typing import Any, Callable, Sequence

from mask2former_ros.core.backends.onnx_cache import cache_root, cached_graph, METADATA_PREFIX
from mask2former_ros.core.checkpoint import ModelLoadError
from mask2former_ros.core.engine_config import (
    EngineConfig, parse_device, parse_frame_size, parse_providers, parse_task)
from mask2former_ros.core.postprocess.panoptic import query_inference, thresholds_of, to_result
from mask2former_ros.core.results import (
    check_rgb, InferenceOutOfMemoryError, NON_FINITE, only_result, OwnerThread,
    SegmentationResult)
from mask2former_ros.core.segmentation_task import (
    checkpoint_task, graph_task, thing_class_ids)
import numpy as np
import onnxruntime as ort

# Errors of the file itself (not of a provider): no other provider is tried.
_FILE_ERRORS = ('InvalidProtobuf', 'InvalidGraph', 'NoSuchFile', 'NoModel', 'ModelLoaded')


class OnnxSegmentationEngine:
    """Mask2Former semantic, panoptic or instance segmentation through an exported ONNX graph."""

    backend = 'onnxruntime'
    compile_status = 'off'  # torch.compile is the torch backend's
    compile_seconds = 0.0

    def __init__(self, config: EngineConfig, log: Callable[[str], None] | None = None,
                 warn: Callable[[str], None] | None = None) -> None:
        """
        Open the graph (exporting it into the cache if ``config.onnx_model`` is empty).

        Raises :class:`ModelLoadError` for a graph that cannot be served and
        :class:`~mask2former_ros.core.segmentation_task.TaskMismatchError` for a task the
        graph (or the checkpoint to export) does not serve.
        """
        parse_task(config.task)
        self.config = config
        self.thresholds = thresholds_of(config)
        self._log = log or (lambda _msg: None)
        self._warn = warn or self._log
        started = time.perf_counter()
        self._owner = OwnerThread('onnxruntime')
        wanted = parse_frame_size(config.frame_size)
        path = self._graph_path(config, wanted)
        self.session, self.device_name = self._open(path, config)
        meta = {k[len(METADATA_PREFIX):]: v
                for k, v in self.session.get_modelmeta().custom_metadata_map.items()
                if k.startswith(METADATA_PREFIX)}
        if 'class_names' not in meta or 'frame_size' not in meta:
            raise ModelLoadError(f"'{path}' is not a graph written by mask2former_export (no "
                                 f'{METADATA_PREFIX}* metadata); export one with '
                                 'mask2former_export --model M --size HxW --output FILE.onnx')
        self.metadata = meta
        self.path = path
        self.task = graph_task(config.task, meta.get('task'), str(path))
        self.frame_size = parse_frame_size(meta['frame_size'])
        self.grid = parse_frame_size(meta.get('model_input_size', meta['frame_size']))
        self._check_io(path)
        if wanted is not None and wanted != self.frame_size:
            raise ModelLoadError(
                f"'{path}' takes {meta['frame_size']} frames, but frame_size is "
                f'{wanted[0]}x{wanted[1]}: export a graph for that size')
        self.class_names: list[str] = json.loads(meta['class_names'])
        self.thing_ids = thing_class_ids(self.class_names, self.task)
        self._check_checkpoint_classes(config.model, path)
        self.palette = np.asarray(json.loads(meta['palette']), np.uint8)
        self.label_dtype = np.uint8 if len(self.class_names) <= 256 else np.uint16
        self.input_size = meta.get('input_size', 'checkpoint')
        graph_precision = meta.get('precision', 'fp32')
        self.precision_name = ('fp16' if self.device_name == 'TensorrtExecutionProvider'
                               else graph_precision)
        self._input_name = self.session.get_inputs()[0].name
        self.load_seconds = time.perf_counter() - started
        self._log(f"loaded ONNX graph '{path}' ({len(self.class_names)} classes, task "
                  f"{self.task}, {meta['frame_size']} frames) on {self.device_name} in "
                  f'{self.load_seconds:.1f} s')

    # --- loading --------------------------------------------------------------------------

    def _graph_path(self, config: EngineConfig, wanted: tuple[int, int] | None) -> Path:
        if config.onnx_model:
            path = Path(config.onnx_model).expanduser()
            if not path.is_file():
                raise ModelLoadError(f"onnx_model '{config.onnx_model}' does not exist")
            return path
        if wanted is None:
            raise ModelLoadError(
                'backend onnxruntime without onnx_model exports a graph for one frame size: '
                'set frame_size (e.g. 1024x2048), or export one with mask2former_export and '
                'set onnx_model')
        return cached_graph(config.model, wanted, config.input_size,
                            allow_pickle=config.allow_pickle, log=self._log,
                            task=checkpoint_task(config.task, config.model, self._log))

    def _open(self, path: Path, config: EngineConfig) -> tuple[Any, str]:
        """Create the session with the first provider that initialises; return it and its name."""
        explicit = any(str(p).strip().lower() not in ('', 'auto')
                       for p in config.onnx_providers)
        providers = parse_providers(config.onnx_providers)
        available = ort.get_available_providers()
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only; provider problems are reported here
        options.intra_op_num_threads = max(int(config.onnx_threads), 0)
        options.add_session_config_entry('session.intra_op.allow_spinning',
                                         '1' if config.onnx_spinning else '0')
        skipped = []
        for name in providers:
            if name not in available:
                skipped.append(name)
                if explicit:
                    self._warn(f'ONNX Runtime provider {name} is not in this onnxruntime build '
                               f"(available: {', '.join(available)}); trying the next")
                continue
            chain = [(name, self._provider_options(name, config))]
            if name != 'CPUExecutionProvider':
                chain.append(('CPUExecutionProvider', {}))
            try:
                session = ort.InferenceSession(str(path), options, providers=chain)
            except Exception as exc:  # noqa: BLE001 - a provider or the file failed
                if type(exc).__name__ in _FILE_ERRORS or 'Protobuf parsing' in str(exc):
                    raise ModelLoadError(f"cannot load ONNX graph '{path}': {_first(exc)}") \
                        from None
                self._warn(f'ONNX Runtime provider {name} failed to initialise '
                           f'({_first(exc)}); trying the next')
                continue
            if session.get_providers()[0] != name:
                self._warn(f'ONNX Runtime provider {name} did not take the graph; trying the '
                           'next')
                continue
            if skipped and not explicit:
                self._log(f"ONNX Runtime providers {', '.join(skipped)} are not in this "
                          f'onnxruntime build; using {name}')
            return session, name
        raise ModelLoadError(f"no ONNX Runtime provider could run '{path}' (tried "
                             f"{', '.join(providers)}; available: {', '.join(available)})")

    @staticmethod
    def _provider_options(name: str, config: EngineConfig) -> dict[str, Any]:
        device = parse_device(config.device)
        device_id = int(device[5:]) if device.startswith('cuda:') else 0
        if name == 'TensorrtExecutionProvider':
            engines = cache_root() / 'tensorrt'
            engines.mkdir(parents=True, exist_ok=True)
            return {'device_id': device_id, 'trt_fp16_enable': True,
                    'trt_engine_cache_enable': True, 'trt_engine_cache_path': str(engines),
                    'trt_timing_cache_enable': True, 'trt_timing_cache_path': str(engines)}
        if name == 'CUDAExecutionProvider':
            return {'device_id': device_id}
        return {}

    def _check_io(self, path: Path) -> None:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape = list(inputs[0].shape) if len(inputs) == 1 else []
        expected = [1, *self.frame_size, 3]
        names = ('labels', 'finite') if self.task == 'semantic' else (
            'class_logits', 'mask_logits', 'finite')
        if shape != expected or inputs[0].type != 'tensor(uint8)' or \
                len(outputs) != len(names):
            raise ModelLoadError(
                f"'{path}' does not have the inputs and outputs of its metadata (input {shape} "
                f'{inputs[0].type if inputs else "none"}, expected {expected} uint8, and '
                f"outputs {', '.join(names)} for task {self.task})")

    def _check_checkpoint_classes(self, model: str, path: Path) -> None:
        """Compare the graph's classes with the ``model`` checkpoint's, when it is at hand."""
        config_file = Path(model).expanduser() / 'config.json'
        if not config_file.is_file():
            self._log(f"classes from the ONNX graph's metadata ('{model}' is not a local "
                      'checkpoint directory to compare them with)')
            return
        id2label = json.loads(config_file.read_text()).get('id2label', {})
        names = [str(id2label[k]) for k in sorted(id2label, key=int)]
        if names != self.class_names:
            raise ModelLoadError(
                f"'{path}' was exported from a checkpoint with {len(self.class_names)} classes "
                f"({self.metadata.get('checkpoint', '?')}), but model '{model}' has "
                f'{len(names)}{"" if len(names) != len(self.class_names) else " other ones"}: '
                're-export it, or set model to the checkpoint it came from')

    # --- the engine interface -------------------------------------------------------------

    @property
    def num_classes(self) -> int:
        """Return the number of semantic classes of the graph."""
        return len(self.class_names)

    @property
    def owner_thread(self) -> Any:
        """Return the thread that opened the graph: the only one that runs it."""
        return self._owner.thread

    def check_thread(self) -> None:
        """Raise :class:`WrongThreadError` unless called on the thread that opened the graph."""
        self._owner.check()

    def warmup(self) -> None:
        """Run one frame of the graph's size (provider set-up, TensorRT engine build)."""
        self.segment_batch([np.zeros((*self.frame_size, 3), np.uint8)])

    def close(self) -> None:
        """Release the session."""
        self.session = None

    def segment(self, image: np.ndarray) -> SegmentationResult:
        """Segment one RGB uint8 HxWx3 frame; raise RuntimeError if it failed."""
        return only_result(self.segment_batch([image]))

    def segment_batch(self, images: Sequence[np.ndarray]) -> list[SegmentationResult]:
        """
        Segment frames one graph run each (the graph's batch is 1).

        A frame of another size than the graph's, or with non-finite model output, gets
        ``labels=None`` and ``error`` set; the other frames are unaffected.
        """
        self.check_thread()
        for image in images:
            check_rgb(image)
        session = self.session
        if session is None:
            raise RuntimeError('engine is closed')
        results = []
        for image in images:
            if image.shape[:2] != self.frame_size:
                h, w = image.shape[:2]
                results.append(SegmentationResult(None, error=(
                    f'frame {h}x{w}, but the ONNX graph takes {self.frame_size[0]}x'
                    f'{self.frame_size[1]} frames: export one for this size '
                    f'(mask2former_export --size {h}x{w})')))
                continue
            started = time.perf_counter()
            feed = np.ascontiguousarray(image)[None]
            prepared = time.perf_counter()
            try:
                outputs = session.run(None, {self._input_name: feed})
            except Exception as exc:
                if 'allocate' in str(exc).lower() or 'out of memory' in str(exc).lower():
                    raise InferenceOutOfMemoryError(
                        f'{self.device_name} out of memory for a {image.shape[0]}x'
                        f'{image.shape[1]} frame: {_first(exc)}') from None
                raise
            ran = time.perf_counter()
            if not bool(outputs[-1][0]):
                result = SegmentationResult(None, error=NON_FINITE)
            elif self.task == 'semantic':
                result = SegmentationResult(outputs[0][0].astype(self.label_dtype, copy=False))
            else:
                maps = query_inference(self.task, outputs[0][0], outputs[1][0], *self.frame_size,
                                       self.grid, self.thing_ids, self.thresholds)
                result = to_result(maps.labels, maps.instances, maps.records, self.label_dtype)
            result.timings_ms = {'preprocess': (prepared - started) * 1e3,
                                 'model': (ran - prepared) * 1e3,
                                 'postprocess': (time.perf_counter() - ran) * 1e3,
                                 'batch_size': float(len(images))}
            results.append(result)
        return results


def _first(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
