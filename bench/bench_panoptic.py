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
Panoptic/instance post-processing against transformers', and the node's rate per task.

Part 1, on the same model outputs (trained tiny panoptic model, synthetic scenes): our
post-processing (:mod:`mask2former_ros.core.postprocess.panoptic`) against transformers'
``post_process_panoptic_segmentation`` / ``post_process_instance_segmentation`` at 512x1024 and
1024x2048: milliseconds (median), the ratio, and the panoptic quality of ours with transformers'
result as the ground truth. ``--queries`` adds rows where more queries pass the score threshold
(the score threshold lowered: what a 200-query Swin-L checkpoint keeps on a busy street).

Part 2: ``segmentation_node`` on 1024x2048 rgb8 frames at 30 Hz with ``task: panoptic`` and with
``task: semantic`` (same model, same run, alternating rounds): outputs/s and latency. With
``--node-compare backends``: ``task: panoptic`` on ``backend: onnxruntime`` (the graph exported
first) against ``backend: torch``.

    python bench/bench_panoptic.py                       # both parts
    python bench/bench_panoptic.py --skip-node --frames 3
    python bench/bench_panoptic.py --device cuda         # part 1 on a GPU
    python bench/bench_panoptic.py --skip-postprocess --node-compare backends
"""

import argparse
from functools import partial
import json
from pathlib import Path
import statistics
import sys
import time
from typing import Any, Callable

from mask2former_ros.core.evaluation.panoptic_quality import PanopticQuality
from mask2former_ros.core.postprocess.panoptic import (
    instance_inference, panoptic_inference, Thresholds)
from mask2former_ros.core.runtime.large_buffers import keep_large_buffers
from mask2former_ros.core.segmentation_task import CITYSCAPES_THING_IDS
from mask2former_ros_fixtures.hf_reference import instance_maps, panoptic_maps
from mask2former_ros_fixtures.synthetic import make_panoptic_scene
import numpy as np
import torch

HF_GRID = (384, 384)
NUM_CLASSES = 19


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize()


def _timed(run: Callable[[], Any], device: torch.device, repeats: int) -> tuple[float, Any]:
    """Return (median ms, last result) of ``repeats`` runs after one warm-up run."""
    result = run()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        result = run()
        _sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), result


def _host_result(run: Callable[[], Any]) -> tuple[np.ndarray, np.ndarray]:
    """Run our post-processing; return its labels and instance ids on the host."""
    maps = run()

    def host(array: Any) -> np.ndarray:
        return array if isinstance(array, np.ndarray) else array.cpu().numpy()
    return host(maps.labels), host(maps.instances).astype(np.uint16)


def _runners(task: str, processor: Any, out: Any, size: tuple[int, int],
             things: frozenset[int], score: float) -> tuple[Callable, Callable, Callable]:
    """
    Return callables: ours, transformers' own call (timed), transformers' result as maps.

    The timed transformers call is its post-processing as a user calls it (its segment-id map
    and segments); turning that into label and instance maps for the comparison is not timed.
    """
    logits, masks = out.class_queries_logits[0], out.masks_queries_logits[0]
    if logits.device.type == 'cpu':  # what the engines run on the CPU: the numpy flavour
        logits, masks = logits.numpy(), masks.numpy()
    thresholds = Thresholds(score=score)
    if task == 'panoptic':
        return (partial(panoptic_inference, logits, masks, *size, HF_GRID, things, thresholds),
                partial(processor.post_process_panoptic_segmentation, out, threshold=score,
                        label_ids_to_fuse=set(range(NUM_CLASSES)) - set(things),
                        target_sizes=[size]),
                partial(panoptic_maps, processor, out, size, things, NUM_CLASSES,
                        threshold=score))
    return (partial(instance_inference, logits, masks, *size, HF_GRID, thresholds),
            partial(processor.post_process_instance_segmentation, out, threshold=score,
                    target_sizes=[size]),
            partial(instance_maps, processor, out, size, threshold=score))


def postprocess_rows(model_dir: str, sizes: list[tuple[int, int]], frames: int, repeats: int,
                     device: torch.device, score_thresholds: list[float]) -> list[dict]:
    """Time ours and transformers' post-processing on the same outputs; PQ between them."""
    from transformers import Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessor
    model = Mask2FormerForUniversalSegmentation.from_pretrained(model_dir).eval().to(device)
    processor = Mask2FormerImageProcessor.from_pretrained(model_dir)
    rows = []
    for size in sizes:
        rng = np.random.default_rng(7)
        scenes = [make_panoptic_scene(rng, *size)[0] for _ in range(frames)]
        outputs = []
        for rgb in scenes:
            pixels = processor(images=rgb, return_tensors='pt')['pixel_values'].to(device)
            with torch.no_grad():
                outputs.append(model(pixel_values=pixels))
        for task in ('panoptic', 'instance'):
            for score in score_thresholds:
                things = CITYSCAPES_THING_IDS if task == 'panoptic' else frozenset(
                    range(NUM_CLASSES))
                quality = PanopticQuality(NUM_CLASSES, things)
                ours_ms, hf_ms, kept, equal = [], [], [], []
                for out in outputs:
                    ours_run, hf_run, hf_maps = _runners(task, processor, out, size, things,
                                                         score)
                    ms, ours = _timed(partial(_host_result, ours_run), device, repeats)
                    ours_ms.append(ms)
                    hf_ms.append(_timed(hf_run, device, repeats)[0])
                    ref = hf_maps()
                    quality.add(*ours, *ref)
                    equal.append(float((ours[0] == ref[0]).mean()))
                    probs = out.class_queries_logits[0].float().softmax(-1)
                    kept.append(int((probs[:, :-1].max(-1).values > score).sum()))
                summary = quality.summary()
                row = {'size': f'{size[0]}x{size[1]}', 'task': task, 'score_threshold': score,
                       'queries': int(outputs[0].class_queries_logits.shape[1]),
                       'kept_queries_mean': round(float(np.mean(kept)), 1),
                       'ours_ms': round(statistics.median(ours_ms), 2),
                       'transformers_ms': round(statistics.median(hf_ms), 2),
                       'pq_vs_transformers': round(summary['all']['pq'], 5),
                       'labels_equal': round(float(np.mean(equal)), 6)}
                row['speedup'] = round(row['transformers_ms'] / row['ours_ms'], 1)
                rows.append(row)
                print(f"{row['size']:>10} {task:9} score>{score:<4} kept "
                      f"{row['kept_queries_mean']:5}/{row['queries']:<3} ours "
                      f"{row['ours_ms']:8.2f} ms  transformers "
                      f"{row['transformers_ms']:9.2f} ms  x{row['speedup']:<6} PQ vs "
                      f"transformers {row['pq_vs_transformers']:.4f}  labels "
                      f"{100 * row['labels_equal']:.3f}% equal", flush=True)
    return rows


def node_rows(model_dir: str, seconds: float, rounds: int, rate: float,
              variants: dict[str, list[str]]) -> dict:
    """Run the node once per variant (its parameters) in alternating rounds; pool the results."""
    import bench_node
    from mask2former_ros_fixtures.image_encoding import make_image_msg
    bench_node.prepare_environment(profile=False, force_profile=True)
    rng = np.random.default_rng(0)
    frames = [make_image_msg(make_panoptic_scene(rng, 1024, 2048)[0], 'rgb8') for _ in range(4)]
    done: dict[str, list] = {name: [] for name in variants}
    with bench_node.driver_node('bench_panoptic_driver') as node:
        for i in range(rounds):
            order = list(variants) if i % 2 == 0 else list(variants)[::-1]
            for name in order:
                print(f'node {name} at {rate:g} Hz for {seconds:g} s (round {i + 1} of '
                      f'{rounds}) ...', flush=True)
                done[name].append(bench_node.run_one(
                    node, 'segmentation_node', model_dir, frames, seconds, rate,
                    variants[name]))
    pooled = {}
    for name, runs in done.items():
        latencies = [v for run in runs for v in run['latencies_ms']]
        pooled[name] = {
            'output_hz': round(float(np.mean([r['output_hz'] for r in runs])), 2),
            'round_output_hz': [r['output_hz'] for r in runs],
            'latency_ms': bench_node.latency_summary(np.array(latencies or [np.nan])),
            'stages_ms_p50': runs[-1].get('stages_ms_p50', {}),
            'cpu_percent_mean': round(float(np.mean([r['cpu_percent_mean'] or 0
                                                     for r in runs])), 1)}
    first, second = list(variants)
    ratio = pooled[first]['output_hz'] / max(pooled[second]['output_hz'], 1e-9)
    # Round i of each variant ran back to back: their ratio is free of the drift between rounds.
    paired = [a['output_hz'] / max(b['output_hz'], 1e-9)
              for a, b in zip(done[first], done[second], strict=True)]
    print(f'\nnode at {rate:g} Hz, 1024x2048 rgb8, {rounds} round(s) of {seconds:g} s:')
    for name, row in pooled.items():
        stages = row['stages_ms_p50']
        print(f"  {name:22} {row['output_hz']:6.2f} outputs/s (rounds "
              f"{row['round_output_hz']}), latency p50/p95 {row['latency_ms']['p50']}/"
              f"{row['latency_ms']['p95']} ms, p50 ms: preprocess {stages.get('preprocess')}, "
              f"model {stages.get('model')}, postprocess {stages.get('postprocess')}, publish "
              f"{stages.get('publish (convert + publish)')}")
    print(f'  {first} / {second} outputs/s: x{ratio:.2f} (paired rounds: median '
          f'x{statistics.median(paired):.2f}, range x{min(paired):.2f}-x{max(paired):.2f})')
    pooled['ratio'] = {'of': f'{first} / {second}', 'value': round(ratio, 3),
                       'paired_rounds': [round(r, 3) for r in paired]}
    return pooled


def node_variants(compare: str, model_dir: str) -> dict[str, list[str]]:
    """
    Return the node parameters of the two variants to compare.

    ``tasks``: task panoptic against semantic (torch). ``backends``: task panoptic on
    onnxruntime (the graph exported first, not timed) against torch.
    """
    if compare == 'tasks':
        return {'panoptic': ['-p', 'task:=panoptic'], 'semantic': ['-p', 'task:=semantic']}
    import tempfile
    from mask2former_ros.core.backends.onnx_export import export_graph
    graph = Path(tempfile.mkdtemp(prefix='bench_panoptic_')) / 'panoptic_1024x2048.onnx'
    print(f'exporting {model_dir} (task panoptic) for 1024x2048 frames ...', flush=True)
    export_graph(model_dir, (1024, 2048), graph, log=lambda _text: None, task='panoptic')
    return {'panoptic onnxruntime': ['-p', 'task:=panoptic', '-p', 'backend:=onnxruntime',
                                     '-p', f'onnx_model:={graph}'],
            'panoptic torch': ['-p', 'task:=panoptic']}


def _pq_ours(pred: tuple[np.ndarray, np.ndarray], truth: tuple[np.ndarray, np.ndarray]) -> None:
    PanopticQuality(NUM_CLASSES, CITYSCAPES_THING_IDS).add(*pred, *truth)


def _pq_torchmetrics(pred: tuple[np.ndarray, np.ndarray], truth: tuple[np.ndarray, np.ndarray],
                     stuff: set[int]) -> None:
    from torchmetrics.detection import PanopticQuality as TorchmetricsPQ
    metric = TorchmetricsPQ(things=set(CITYSCAPES_THING_IDS), stuffs=stuff,
                            allow_unknown_preds_category=True)
    metric.update(*(torch.from_numpy(np.stack(pair, -1)[None].astype(np.int64))
                    for pair in (pred, truth)))
    metric.compute()


def evaluation_rows(model_dir: str, sizes: list[tuple[int, int]], frames: int,
                    repeats: int) -> list[dict]:
    """Time PQ of the engine's panoptic result against the scene's truth: ours, torchmetrics."""
    from mask2former_ros.core.backends.torch_engine import SegmentationEngine
    from mask2former_ros.core.engine_config import EngineConfig

    engine = SegmentationEngine(EngineConfig(model=model_dir, task='panoptic'))
    stuff = set(range(NUM_CLASSES)) - set(CITYSCAPES_THING_IDS)
    cpu = torch.device('cpu')
    rows = []
    for size in sizes:
        rng = np.random.default_rng(11)
        ours_ms, theirs_ms = [], []
        for frame in range(frames):
            rgb, gt_labels, gt_ids = make_panoptic_scene(rng, *size)
            result = engine.segment(rgb)
            # torchmetrics knows no unlabelled prediction: those pixels become road for both.
            pred = (np.where(result.labels == 255, 0, result.labels), result.instances)
            truth = (gt_labels, gt_ids)
            ours_ms.append(_timed(partial(_pq_ours, pred, truth), cpu, repeats)[0])
            if frame < 2:  # seconds per call at 1024x2048: two frames, one timed run each
                theirs_ms.append(_timed(partial(_pq_torchmetrics, pred, truth, stuff), cpu,
                                        1)[0])
        row = {'size': f'{size[0]}x{size[1]}', 'ours_ms': round(statistics.median(ours_ms), 2),
               'torchmetrics_ms': round(statistics.median(theirs_ms), 2)}
        row['speedup'] = round(row['torchmetrics_ms'] / row['ours_ms'], 1)
        rows.append(row)
        print(f"{row['size']:>10} PQ of one frame against its truth: ours {row['ours_ms']:8.2f} "
              f"ms  torchmetrics {row['torchmetrics_ms']:8.2f} ms  x{row['speedup']}",
              flush=True)
    engine.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--model', help='panoptic checkpoint (default: the trained tiny one)')
    parser.add_argument('--sizes', nargs='+', default=['512x1024', '1024x2048'])
    parser.add_argument('--frames', type=int, default=4)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--score-thresholds', type=float, nargs='+', default=[0.5],
                        help='transformers default 0.5; lower ones keep more queries')
    parser.add_argument('--skip-node', action='store_true')
    parser.add_argument('--skip-postprocess', action='store_true',
                        help='skip parts 1 and 3 (post-processing and PQ timings)')
    parser.add_argument('--node-compare', choices=('tasks', 'backends'), default='tasks',
                        help='part 2: panoptic against semantic (torch), or panoptic on '
                             'onnxruntime against torch')
    parser.add_argument('--seconds', type=float, default=20.0)
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--rate', type=float, default=30.0)
    parser.add_argument('--json', help='also write results to this file')
    args = parser.parse_args(argv)
    keep_large_buffers()  # as the node and segment_bag do: frame-sized buffers are reused
    model = args.model
    if model is None:
        from mask2former_ros_fixtures.tiny_model import ensure_tiny_panoptic_model
        model = str(ensure_tiny_panoptic_model())
    sizes = [tuple(int(v) for v in s.split('x')) for s in args.sizes]
    device = torch.device(args.device)
    print(f'model {model}, device {device}, torch threads {torch.get_num_threads()}')
    results: dict[str, Any] = {'model': model}
    if not args.skip_postprocess:
        results['postprocess'] = postprocess_rows(model, sizes, args.frames, args.repeats,
                                                  device, args.score_thresholds)
        results['evaluation'] = evaluation_rows(model, sizes, args.frames, args.repeats)
    if not args.skip_node:
        results['node'] = node_rows(model, args.seconds, args.rounds, args.rate,
                                    node_variants(args.node_compare, model))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
