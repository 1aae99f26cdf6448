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
Export a Mask2Former checkpoint as one ONNX graph: uint8 frame in, labels out (torch; CLI).

``mask2former_export --model DIR --size 1024x2048 --output front.onnx`` writes a graph of
:class:`~mask2former_ros.core.backends.serving_graph.ServingGraph` (resize, normalisation, model,
semantic post-processing; for ``--task panoptic|instance`` the query outputs, post-processed
after the graph) with torch's ``torch.export``-based ONNX exporter, opset 18 by default, then
validates it: ``onnx.checker``, and the onnxruntime backend against the torch engine on a
sample frame. The graph carries its metadata (:data:`METADATA_PREFIX` keys): the task, the
checkpoint and its content hash, frame and model input size, class names, palette, precision
(fp32: TensorRT builds its fp16 engines from it; an autocast-traced fp16 graph failed ONNX
Runtime's type check, LayerNormalization bound to float16 and float),
opset and the versions that made it. Only export needs torch and transformers; serving the
file needs numpy and onnxruntime (:mod:`mask2former_ros.core.backends.onnx_engine`).
"""

import argparse
import contextlib
import dataclasses
import json
import logging
import os
from pathlib import Path
import sys
import tempfile
import time
from typing import Any, Callable
import warnings

from mask2former_ros.core.backends.onnx_cache import (
    checkpoint_digest, FORMAT_VERSION, METADATA_PREFIX, package_versions)
from mask2former_ros.core.checkpoint import first_line, ModelLoadError
from mask2former_ros.core.engine_config import (
    EngineConfig, parse_frame_size, parse_input_size)
import numpy as np

DEFAULT_OPSET = 18
MIN_AGREEMENT = 0.995  # share of the sample's pixels on which the graph must equal the engine


class ExportError(RuntimeError):
    """A graph could not be exported or did not pass validation."""


def sample_frame(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Return a deterministic RGB frame with smooth regions and edges (validation input)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frame = np.empty((height, width, 3), np.float32)
    for c in range(3):
        fy, fx, phase = rng.uniform(1, 6), rng.uniform(1, 6), rng.uniform(0, 6.3)
        frame[..., c] = 127 + 100 * np.sin(fy * y / height * 6.3 + fx * x / width * 6.3 + phase)
    frame[height // 2:, : width // 3] = (128, 64, 128)  # a flat 'road'-coloured block
    return np.clip(frame + rng.normal(0, 4, frame.shape), 0, 255).astype(np.uint8)


def export_graph(model: str, frame_size: str | tuple[int, int], output: str | Path,
                 input_size: str | int = 'checkpoint', opset: int = DEFAULT_OPSET,
                 allow_pickle: bool = False, log: Callable[[str], Any] = print,
                 task: str = 'auto') -> dict[str, str]:
    """
    Export, validate and atomically write the graph; return its metadata.

    ``task`` ``auto`` is the task the checkpoint declares, else semantic. Raises
    :class:`ModelLoadError` for a checkpoint that cannot be loaded,
    :class:`~mask2former_ros.core.segmentation_task.TaskMismatchError` for panoptic or
    instance on a semantic checkpoint and :class:`ExportError` when export or validation fails.
    """
    from mask2former_ros.core.backends.serving_graph import INPUT_NAME, output_names, ServingGraph
    from mask2former_ros.core.backends.torch_engine import SegmentationEngine
    import onnx
    import torch

    size = frame_size if isinstance(frame_size, tuple) else parse_frame_size(frame_size)
    if size is None:
        raise ExportError('a frame size is needed (HEIGHTxWIDTH, e.g. 1024x2048)')
    input_size = parse_input_size(input_size)
    output = Path(output)
    started = time.perf_counter()
    engine = SegmentationEngine(EngineConfig(model=model, device='cpu', precision='fp32',
                                             input_size=input_size, allow_pickle=allow_pickle,
                                             task=task, compile='off'), log=log)
    net = engine.model
    # The fused SDPA attention of the Swin backbone does not decompose for export.
    net.set_attn_implementation('eager')
    sample = sample_frame(*size)
    graph = ServingGraph(net, engine.preprocessing, size, input_size, engine.task).eval()
    example = torch.from_numpy(sample[None].copy())
    log(f"exporting '{model}' (task {engine.task}) for {size[0]}x{size[1]} frames (model input "
        f'{graph.input_hw[0]}x{graph.input_hw[1]}, opset {opset})')
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=f'.{output.name}.') as tmp:
        raw_path = Path(tmp) / 'graph.onnx'
        try:
            with torch.no_grad(), _quiet_exporter():
                torch.onnx.export(graph, (example,), str(raw_path), dynamo=True,
                                  opset_version=opset, input_names=[INPUT_NAME],
                                  output_names=list(output_names(engine.task)),
                                  external_data=False,
                                  verbose=False)
        except Exception as exc:
            raise ExportError(f'torch.onnx.export failed: {type(exc).__name__}: '
                              f'{first_line(exc)}') from exc
        proto = onnx.load(str(raw_path))
        metadata = {
            'format': str(FORMAT_VERSION), 'task': engine.task, 'checkpoint': str(model),
            'checkpoint_sha256': checkpoint_digest(model),
            'frame_size': f'{size[0]}x{size[1]}',
            'model_input_size': f'{graph.input_hw[0]}x{graph.input_hw[1]}',
            'input_size': str(input_size), 'precision': 'fp32', 'opset': str(opset),
            'class_names': json.dumps(engine.class_names),
            'palette': json.dumps(np.asarray(engine.palette).tolist()),
            'versions': json.dumps(package_versions()),
        }
        for key, value in metadata.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = METADATA_PREFIX + key, value
        try:
            onnx.checker.check_model(proto)
        except Exception as exc:
            raise ExportError(f'onnx.checker refused the graph: {first_line(exc)}') from exc
        onnx.save(proto, str(raw_path))
        agreement = _validate(raw_path, engine, sample)
        log(f'validated: labels {agreement:.3%} equal to the torch engine on a sample frame')
        os.replace(raw_path, output)
    engine.close()
    log(f'wrote {output} ({output.stat().st_size / 1e6:.1f} MB) in '
        f'{time.perf_counter() - started:.1f} s')
    return metadata


@contextlib.contextmanager
def _quiet_exporter():
    """Keep the exporter's progress and optimiser notes off the console (errors still raise)."""
    names = ('onnxscript', 'onnx_ir', 'torch.onnx', 'torch._dynamo', 'torch.export')
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    with open(os.devnull, 'w') as sink, contextlib.redirect_stdout(sink):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def _validate(path: Path, engine: Any, sample: np.ndarray) -> float:
    """Serve the graph with the onnxruntime backend on the CPU; compare with the torch engine."""
    from mask2former_ros.core.backends.onnx_engine import OnnxSegmentationEngine

    expected = engine.segment(sample)
    try:
        served = OnnxSegmentationEngine(dataclasses.replace(
            engine.config, backend='onnxruntime', onnx_model=str(path), onnx_providers=('cpu',),
            task=engine.task))
        result = served.segment_batch([sample])[0]
    except Exception as exc:  # noqa: BLE001 - any refusal of ONNX Runtime is the graph's
        raise ExportError(f'validation: ONNX Runtime cannot run the graph: '
                          f'{first_line(exc)}') from exc
    if not result.ok:
        raise ExportError(f'validation: {result.error} on the sample frame')
    agreement = float((result.labels == expected.labels).mean())
    if agreement < MIN_AGREEMENT:
        raise ExportError(f'validation: labels {agreement:.3%} equal to the torch engine on '
                          f'the sample frame (need {MIN_AGREEMENT:.1%})')
    return agreement


def main(argv: list[str] | None = None) -> int:
    """Command line: ``mask2former_export --model M --size HxW --output FILE.onnx``."""
    parser = argparse.ArgumentParser(
        prog='mask2former_export',
        description='Export a Mask2Former checkpoint as one ONNX graph (uint8 RGB frame in, '
                    'per-pixel class labels or the query outputs of panoptic and instance '
                    'segmentation out) for the onnxruntime backend.')
    parser.add_argument('--model', required=True, help='checkpoint: local directory or hub id')
    parser.add_argument('--size', required=True,
                        help='frame size HEIGHTxWIDTH the graph takes, e.g. 1024x2048')
    parser.add_argument('--output', required=True, type=Path, help='the .onnx file to write')
    parser.add_argument('--task', default='auto',
                        choices=('auto', 'semantic', 'panoptic', 'instance'),
                        help='post-processing the graph serves: semantic (labels inside the '
                             'graph), panoptic or instance (query outputs; the segments are '
                             'made after the graph); auto (default): what the checkpoint '
                             'declares, else semantic')
    parser.add_argument('--input-size', default='checkpoint',
                        help="model input: 'checkpoint', 'native' or a short side (as the node)")
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET, help='ONNX opset (>= 18)')
    parser.add_argument('--allow-pickle', action='store_true',
                        help='allow pickle (*.bin) weights; they can run code when loaded')
    args = parser.parse_args(argv)
    os.environ.setdefault('TORCHDYNAMO_VERBOSE', '0')

    def log(text: str) -> None:
        print(f'mask2former_export: {text}', file=sys.stderr, flush=True)
    try:
        if args.opset < 18:
            raise ExportError('--opset must be 18 or later (antialiased Resize)')
        export_graph(args.model, args.size, args.output, args.input_size,
                     args.opset, args.allow_pickle, log=log, task=args.task)
    except ModelLoadError as exc:
        log(f'error: {exc}')
        return 1
    except (ExportError, ValueError) as exc:
        log(f'error: {exc}')
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
