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
Where an exported panoptic graph spends its time on ONNX Runtime (CPU), and its input resize.

Part 1: the trained tiny panoptic model exported for one frame size (not timed), run on
synthetic scenes with ONNX Runtime's profiler: kernel milliseconds per run by operator type,
the largest nodes by name.

Part 2: the frame's antialiased bilinear shrink to the model input alone, the graph's first
step: a one-node ONNX ``Resize`` (uint8 as the graph does it, and float) against the torch
engine's ``F.interpolate(antialias=True)`` on the same uint8 frame, in alternating rounds.

    python bench/bench_onnx_graph.py
    python bench/bench_onnx_graph.py --size 512x1024 --runs 30
"""

import argparse
from collections import Counter
import json
from pathlib import Path
import statistics
import sys
import tempfile
import time
from typing import Callable

from mask2former_ros.core.backends.onnx_export import export_graph
from mask2former_ros.core.runtime.large_buffers import keep_large_buffers
from mask2former_ros_fixtures.synthetic import make_panoptic_scene
import numpy as np
from onnx import helper, TensorProto
import onnxruntime as ort
import torch
import torch.nn.functional as F  # noqa: N812


def _session(model: str | bytes, profile_prefix: str | None = None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(model, options, providers=['CPUExecutionProvider'])


def graph_profile(graph: Path, frames: list[np.ndarray], runs: int, folder: Path) -> dict:
    """Run the graph ``runs`` times under the profiler; return kernel ms per run by op type."""
    session = _session(str(graph), str(folder / 'ort_profile'))
    name = session.get_inputs()[0].name
    for i in range(runs):
        session.run(None, {name: frames[i % len(frames)][None]})
    events = json.loads(Path(session.end_profiling()).read_text())
    by_type, by_node, shapes = Counter(), Counter(), {}
    calls = sum(1 for e in events if e.get('name') == 'model_run')
    for event in events:
        if event.get('cat') == 'Node' and event['name'].endswith('_kernel_time'):
            by_type[event['args']['op_name']] += event['dur']
            by_node[event['name'][:-len('_kernel_time')]] += event['dur']
            shapes[event['name'][:-len('_kernel_time')]] = event['args'].get('input_type_shape')
    per_run = {k: v / calls / 1e3 for k, v in by_type.items()}
    return {'runs': calls, 'kernel_ms': round(sum(per_run.values()), 2),
            'by_type_ms': {k: round(v, 2) for k, v in Counter(per_run).most_common(12)},
            'largest_nodes_ms': {k: {'ms': round(v / calls / 1e3, 2), 'inputs': shapes[k]}
                                 for k, v in by_node.most_common(5)}}


def _resize_model(elem_type: int, frame: tuple[int, int], target: tuple[int, int]) -> bytes:
    """One antialiased bilinear ``Resize`` of an NHWC image, as the exported graph has it."""
    out_shape = [1, *target, 3]
    sizes = helper.make_tensor('sizes', TensorProto.INT64, [4], out_shape)
    node = helper.make_node('Resize', ['x', '', '', 'sizes'], ['y'], mode='linear',
                            coordinate_transformation_mode='half_pixel', antialias=1)
    graph = helper.make_graph([node], 'resize',
                              [helper.make_tensor_value_info('x', elem_type, [1, *frame, 3])],
                              [helper.make_tensor_value_info('y', elem_type, out_shape)],
                              [sizes])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid('', 18)]) \
        .SerializeToString()


def resize_rows(frame: np.ndarray, target: tuple[int, int], runs: int,
                rounds: int) -> dict[str, float]:
    """Median ms of each way to shrink ``frame`` to ``target``, in alternating rounds."""
    size = frame.shape[:2]
    uint8_session = _session(_resize_model(TensorProto.UINT8, size, target))
    float_session = _session(_resize_model(TensorProto.FLOAT, size, target))
    batch, batch_float = frame[None], frame[None].astype(np.float32)
    chw = torch.from_numpy(frame[None]).permute(0, 3, 1, 2)
    ways: dict[str, Callable[[], object]] = {
        'onnx Resize uint8 (in the graph)': lambda: uint8_session.run(None, {'x': batch}),
        'onnx Resize float (input already float)':
            lambda: float_session.run(None, {'x': batch_float}),
        'torch interpolate uint8 (torch engine)': lambda: F.interpolate(
            chw, size=target, mode='bilinear', align_corners=False, antialias=True),
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    for i in range(rounds):
        for name in (list(ways) if i % 2 == 0 else list(ways)[::-1]):
            ways[name]()
            for _ in range(runs):
                start = time.perf_counter()
                ways[name]()
                times[name].append((time.perf_counter() - start) * 1e3)
    return {name: round(statistics.median(values), 2) for name, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--model', help='panoptic checkpoint (default: the trained tiny one)')
    parser.add_argument('--size', default='1024x2048', help='frame size HxW')
    parser.add_argument('--runs', type=int, default=20)
    parser.add_argument('--rounds', type=int, default=4)
    parser.add_argument('--json', help='also write results to this file')
    args = parser.parse_args(argv)
    keep_large_buffers()
    model = args.model
    if model is None:
        from mask2former_ros_fixtures.tiny_model import ensure_tiny_panoptic_model
        model = str(ensure_tiny_panoptic_model())
    size = tuple(int(v) for v in args.size.split('x'))
    rng = np.random.default_rng(0)
    frames = [make_panoptic_scene(rng, *size)[0] for _ in range(4)]
    with tempfile.TemporaryDirectory(prefix='bench_onnx_graph_') as tmp:
        folder = Path(tmp)
        graph = folder / 'panoptic.onnx'
        metadata = export_graph(model, size, graph, log=lambda _text: None, task='panoptic')
        input_hw = tuple(int(v) for v in metadata['model_input_size'].split('x'))
        profile = graph_profile(graph, frames, args.runs, folder)
    print(f'model {model}, frames {size[0]}x{size[1]}, model input {input_hw[0]}x{input_hw[1]}')
    print(f"\ngraph, ONNX Runtime profiler ({profile['runs']} runs): kernels "
          f"{profile['kernel_ms']} ms per run")
    for op, ms in profile['by_type_ms'].items():
        print(f'  {op:28} {ms:7.2f} ms')
    print('  largest nodes:')
    for node, row in profile['largest_nodes_ms'].items():
        print(f"    {node[:44]:44} {row['ms']:7.2f} ms  inputs {row['inputs']}")
    resize = resize_rows(frames[0], input_hw, args.runs, args.rounds)
    reference = resize['torch interpolate uint8 (torch engine)']
    print(f'\nthe frame shrunk to {input_hw[0]}x{input_hw[1]} alone (median of {args.rounds} '
          f'rounds x {args.runs}):')
    for name, ms in resize.items():
        print(f'  {name:42} {ms:7.2f} ms  x{ms / reference:.1f} of torch')
    if args.json:
        Path(args.json).write_text(json.dumps({'graph': profile, 'resize_ms': resize}, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
