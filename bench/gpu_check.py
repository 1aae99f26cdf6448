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
GPU check in one run: precision agreement, Swin-L speed per backend, peak GPU memory.

Prints one table (markdown) and, with ``--json FILE``, the same rows as JSON:

a) the trained tiny model, torch backend: fp16 and bf16 autocast vs fp32, share of equal
   labels on synthetic scenes (CUDA);
b) a Swin-L Mask2Former (the default checkpoint's architecture, random weights: speed only)
   at 1024x2048 frames: frames/s and ms per stage for torch eager fp32/fp16/bf16 (model input
   384x384 as the checkpoint's preprocessor, and native 1024x2048), ONNX Runtime with the CUDA
   provider and the TensorRT provider (fp16), where this onnxruntime build has them;
c) label agreement between backends on the tiny model (torch CUDA vs torch CPU vs ONNX Runtime)
   and the peak GPU memory of every row;
d) panoptic (with ``--panoptic DIR``, the trained tiny panoptic model): the engine with task
   semantic, panoptic and instance, and our panoptic/instance post-processing against
   transformers' on the same outputs (ms, panoptic quality between them), also on the Swin-L
   architecture's 100 queries with the score threshold at 0 (every query kept: the worst case);
e) the torch engine compiled (Inductor, CUDA graphs): Swin-L at native 1024x2048 and 384x384
   input eager fp32 / eager bf16 / compiled bf16 / compiled bf16 with CUDA graphs, cold and warm
   configure, the tiny model's labels per compile mode against eager fp32, the inference worker
   fed at 30 Hz against the engine alone, and the upload of a frame from pageable and pinned
   memory (see ``gpu_compile.py``). Sections a-d run eager (``compile off``).

The run keeps a time budget (``--budget``, default 450 s: the whole run fits in 8 minutes):
section e runs first, row by row in child processes; a row or section whose estimate does not
fit in the time left is skipped and says so. Without CUDA every CUDA row says ``skipped`` and
the CPU rows still run (this is tested):

    python bench/gpu_check.py                       # everything this machine can run
    python bench/gpu_check.py --quick               # fewer frames, no Swin-L (the test)
    python bench/gpu_check.py --tiny DIR --json out.json
    python bench/gpu_check.py --sections d --panoptic DIR
    python bench/gpu_check.py --sections e --budget 900   # only the compiled rows
"""

import argparse
import json
import os
from pathlib import Path
import statistics
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from frame_timing import segment_timed  # noqa: E402
import gpu_compile  # noqa: E402
from mask2former_ros.core.backends.torch_engine import SegmentationEngine  # noqa: E402
from mask2former_ros.core.engine_config import EngineConfig  # noqa: E402
from mask2former_ros_fixtures.synthetic import make_scene  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

FRAME = (1024, 2048)
Row = dict[str, Any]
# Seconds each eager section takes on the GPU machine (quick: about a third), for the budget.
SECTION_ESTIMATES = {'a': 40.0, 'c': 90.0, 'b': 150.0, 'd': 90.0}


def swin_large_checkpoint(folder: Path) -> Path:
    """Save a random-weight Mask2Former with the Cityscapes Swin-L checkpoint's architecture."""
    import transformers
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, SwinConfig
    processor = (getattr(transformers, 'Mask2FormerImageProcessorPil', None)
                 or transformers.Mask2FormerImageProcessor)
    from mask2former_ros.core.cityscapes import CITYSCAPES_CLASSES
    backbone = SwinConfig(embed_dim=192, depths=[2, 2, 18, 2], num_heads=[6, 12, 24, 48],
                          window_size=12, pretrain_image_size=384, drop_path_rate=0.0,
                          out_features=['stage1', 'stage2', 'stage3', 'stage4'])
    config = Mask2FormerConfig(
        backbone_config=backbone, use_pretrained_backbone=False, num_queries=100,
        num_labels=len(CITYSCAPES_CLASSES), id2label=dict(enumerate(CITYSCAPES_CLASSES)),
        label2id={n: i for i, n in enumerate(CITYSCAPES_CLASSES)})
    torch.manual_seed(0)
    with torch.device('cuda' if torch.cuda.is_available() else 'cpu'):
        model = Mask2FormerForUniversalSegmentation(config).eval()
    model.save_pretrained(folder)
    processor(size={'height': 384, 'width': 384}, size_divisor=32,
              ignore_index=255).save_pretrained(folder)
    return folder


def scenes(count: int, size: tuple[int, int] = FRAME) -> list[np.ndarray]:
    """Return ``count`` synthetic street scenes of ``size``."""
    return [make_scene(np.random.default_rng(500 + i), *size)[0] for i in range(count)]


def timed(engine: Any, frames: list[np.ndarray], warmup: int = 2) -> Row:
    """Frames/s and ms per stage (medians) of ``engine`` over ``frames``; labels kept."""
    for frame in frames[:warmup]:
        engine.segment(frame)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    fps, stages, labels = segment_timed(engine, frames)
    row: Row = {'fps': fps,
                **{f'{k}_ms': statistics.median(v) for k, v in stages.items()}}
    if torch.cuda.is_available():
        row['peak_gpu_mb'] = torch.cuda.max_memory_allocated() / 2**20
    row['labels'] = labels
    return row


def agreement(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Return the share of equal pixels of two lists of label maps."""
    return sum(int((x == y).sum()) for x, y in zip(a, b, strict=True)) / sum(x.size for x in a)


def onnx_row(model: str, graph: Path, provider: str, frames: list[np.ndarray]) -> Row:
    """Time the onnxruntime backend with one provider; 'skipped' if this build lacks it."""
    from mask2former_ros.core.backends.create import create_engine
    import onnxruntime as ort
    if provider not in ort.get_available_providers():
        return {'skipped': f'{provider} not in this onnxruntime build '
                           f'({", ".join(ort.get_available_providers())})'}
    engine = create_engine(EngineConfig(model=model, backend='onnxruntime',
                                        onnx_model=str(graph), onnx_providers=(provider,)))
    if engine.device_name != provider:
        return {'skipped': f'{provider} did not initialise'}
    before = torch.cuda.mem_get_info()[0] if torch.cuda.is_available() else 0
    row = timed(engine, frames)
    if torch.cuda.is_available():  # ORT allocates outside torch: device-wide free memory
        row['peak_gpu_mb'] = (before - torch.cuda.mem_get_info()[0]) / 2**20
    return row


def main(argv: list[str] | None = None) -> int:
    """Run every row this machine can and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--tiny', help='trained tiny model (default: the shipped one)')
    parser.add_argument('--tiny-graph', type=Path,
                        help=f'the tiny model already exported for {FRAME[0]}x{FRAME[1]} '
                             'frames (mask2former_export; default: export it here)')
    parser.add_argument('--frames', type=int, default=20, help='timed frames per row')
    parser.add_argument('--quick', action='store_true', help='4 frames, no Swin-L rows')
    parser.add_argument('--json', type=Path, help='also write the rows as JSON')
    parser.add_argument('--panoptic', help='trained tiny panoptic model (section d)')
    parser.add_argument('--sections', default='eacbd', help='sections to run, e.g. "d"')
    parser.add_argument('--budget', type=float, default=450.0,
                        help='seconds for the whole run; rows that would not fit are skipped')
    parser.add_argument('--child', help=argparse.SUPPRESS)  # one row of section e
    parser.add_argument('--dry-run-cpu', action='store_true',  # section e's GPU path, on
                        help=argparse.SUPPRESS)                 # the CPU, tiny for Swin-L
    args = parser.parse_args(argv)
    if args.child:
        return gpu_compile.child_main(json.loads(args.child))
    budget = gpu_compile.Budget(args.budget)
    from mask2former_ros.core.backends.onnx_export import export_graph
    frames_n = 4 if args.quick else args.frames
    cuda = torch.cuda.is_available()
    gpu = torch.cuda.get_device_name() if cuda else 'none'
    if args.tiny:
        tiny = args.tiny
    else:
        from mask2former_ros_fixtures.tiny_model import ensure_tiny_model
        tiny = str(ensure_tiny_model())
    rows: list[tuple[str, Row]] = []
    no_cuda = {'skipped': 'no CUDA device'}
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix='gpu_check_'))

    def guarded(section: str, work_fn) -> None:
        """Run one section if it fits the budget; an error becomes a row, the others run."""
        estimate = SECTION_ESTIMATES.get(section[0], 0.0) / (3 if args.quick else 1)
        if estimate > budget.left():
            rows.append((f'{section} skipped', {'skipped': f'time budget: needs ~{estimate:.0f} '
                                                           f's, {budget.left():.0f} s left'}))
            return
        try:
            work_fn()
        except Exception as exc:  # noqa: BLE001 - reported in the table
            text = str(exc).strip().splitlines()
            rows.append((f'{section} failed', {'skipped': f'{type(exc).__name__}: '
                                                          f'{text[0] if text else ""}'[:300]}))

    post: list[Row] = []
    swin_dir: list[str] = []

    def swin() -> str:
        """Return the Swin-L checkpoint of this run, saved on first use."""
        if not swin_dir:
            swin_dir.append(str(swin_large_checkpoint(work / 'swin_l')))
            if cuda:
                torch.cuda.empty_cache()  # the child processes need the memory
        return swin_dir[0]
    if 'e' in args.sections:
        if cuda:
            rows.append(('e) upload 1024x2048 rgb8: pageable / pinned', upload_row()))
        frames_file = work / 'frames.npy'  # the timed frames, made once for every child
        np.save(frames_file, np.stack(scenes(frames_n)))
        guarded('e)', lambda: gpu_compile.section_e(
            rows, tiny, (lambda: tiny) if args.dry_run_cpu else swin, cuda or args.dry_run_cpu,
            args.quick, frames_file, budget, Path(__file__), work / 'compile_cache',
            'cuda' if cuda else 'cpu'))
    if 'a' in args.sections:
        guarded('a)', lambda: section_a(rows, tiny, cuda, no_cuda))
    if 'c' in args.sections:
        guarded('c)', lambda: section_c(rows, tiny, cuda, no_cuda, frames_n,
                                        args.tiny_graph or work / 'tiny.onnx', export_graph))
    if 'b' in args.sections:
        guarded('b)', lambda: section_b(rows, args.quick, cuda, frames_n, work, export_graph,
                                        swin))
    if 'd' in args.sections and args.panoptic:
        guarded('d)', lambda: section_d(rows, post, args.panoptic, args.quick, cuda, frames_n,
                                        work))
    print_table([r for r in rows if not r[0].startswith('e)')], gpu, frames_n, started)
    gpu_compile.print_compile_table(rows)
    print_postprocess_table(post)
    if args.json:
        args.json.write_text(json.dumps(
            [{'row': name, **{k: v for k, v in row.items() if k != 'labels'}}
             for name, row in rows] + post, indent=1))
    return 0


def section_a(rows: list, tiny: str, cuda: bool, no_cuda: Row) -> None:
    """Measure a) fp16/bf16 vs fp32 label agreement of the tiny model on CUDA at three sizes."""
    sizes = ((120, 200), (333, 517), FRAME)
    for precision in ('fp32', 'fp16', 'bf16'):
        if not cuda:
            rows.append((f'a) tiny torch cuda {precision} vs fp32', dict(no_cuda)))
            continue
        engine = SegmentationEngine(EngineConfig(model=tiny, device='cuda',
                                                 precision=precision, compile='off'))
        labels = [engine.segment(f).labels for s in sizes for f in scenes(3, s)]
        if precision == 'fp32':
            reference = labels
        rows.append((f'a) tiny torch cuda {precision} vs fp32',
                     {'agreement': agreement(reference, labels)}))
        engine.close()


def section_c(rows: list, tiny: str, cuda: bool, no_cuda: Row, frames_n: int,
              tiny_graph: Path, export_graph: Any) -> None:
    """Measure c) backends on the tiny model at 1024x2048: torch cpu, torch cuda, onnxruntime."""
    tiny_frames = scenes(frames_n)
    cpu_engine = SegmentationEngine(EngineConfig(model=tiny, device='cpu', compile='off'))
    cpu_row = timed(cpu_engine, tiny_frames)
    rows.append(('c) tiny torch cpu fp32 (reference)', cpu_row))
    if cuda:
        cuda_row = timed(SegmentationEngine(EngineConfig(
            model=tiny, device='cuda', precision='fp32', compile='off')), tiny_frames)
        cuda_row['agreement'] = agreement(cpu_row['labels'], cuda_row['labels'])
        rows.append(('c) tiny torch cuda fp32', cuda_row))
    else:
        rows.append(('c) tiny torch cuda fp32', dict(no_cuda)))
    if not tiny_graph.is_file():
        export_graph(tiny, FRAME, tiny_graph, log=lambda _t: None)
    for provider in ('CPUExecutionProvider', 'CUDAExecutionProvider',
                     'TensorrtExecutionProvider'):
        row = onnx_row(tiny, tiny_graph, provider, tiny_frames)
        if 'labels' in row:
            row['agreement'] = agreement(cpu_row['labels'], row['labels'])
        rows.append((f'c) tiny onnxruntime {provider.replace("ExecutionProvider", "")}', row))


def section_b(rows: list, quick: bool, cuda: bool, frames_n: int, work: Path,
              export_graph: Any, swin_checkpoint: Any) -> None:
    """Measure b) Swin-L (random weights) at 1024x2048 per backend and precision."""
    if quick or not cuda:
        reason = 'quick run' if quick else 'no CUDA device'
        for name in ('torch fp32 input 384x384', 'torch fp16 input 384x384',
                     'torch fp32 native', 'torch fp16 native', 'torch bf16 native',
                     'onnxruntime CUDA', 'onnxruntime TensorRT fp16'):
            rows.append((f'b) Swin-L {name}', {'skipped': reason}))
    else:
        swin = swin_checkpoint()
        swin_frames = scenes(frames_n)
        reference = None
        for input_size, precision in (('checkpoint', 'fp32'), ('checkpoint', 'fp16'),
                                      ('native', 'fp32'), ('native', 'fp16'),
                                      ('native', 'bf16')):
            engine = SegmentationEngine(EngineConfig(model=swin, device='cuda',
                                                     precision=precision,
                                                     input_size=input_size, compile='off'))
            row = timed(engine, swin_frames)
            if input_size == 'checkpoint':
                if precision == 'fp32':
                    reference = row['labels']
                row['agreement'] = agreement(reference, row['labels'])
            engine.close()
            del engine
            torch.cuda.empty_cache()
            label = 'input 384x384' if input_size == 'checkpoint' else 'native'
            rows.append((f'b) Swin-L torch {precision} {label}', row))
        import onnxruntime as ort
        if {'CUDAExecutionProvider', 'TensorrtExecutionProvider'} & set(
                ort.get_available_providers()):
            swin_graph = work / 'swin_l.onnx'
            export_graph(swin, FRAME, swin_graph, log=lambda _t: None)
            for provider, name in (('CUDAExecutionProvider', 'onnxruntime CUDA'),
                                   ('TensorrtExecutionProvider', 'onnxruntime TensorRT fp16')):
                row = onnx_row(swin, swin_graph, provider, swin_frames)
                if 'labels' in row:
                    row['agreement'] = agreement(reference, row['labels'])
                rows.append((f'b) Swin-L {name}', row))
        else:
            why = {'skipped': 'onnxruntime build has neither CUDA nor TensorRT provider '
                              f'({", ".join(ort.get_available_providers())})'}
            rows.append(('b) Swin-L onnxruntime CUDA', dict(why)))
            rows.append(('b) Swin-L onnxruntime TensorRT fp16', dict(why)))


def section_d(rows: list, post: list, panoptic: str, quick: bool, cuda: bool, frames_n: int,
              work: Path) -> None:
    """Measure d) tasks on the tiny panoptic model; post-processing against transformers'."""
    import bench_panoptic
    device = 'cuda' if cuda else 'cpu'
    frames = [bench_panoptic.make_panoptic_scene(np.random.default_rng(600 + i), *FRAME)[0]
              for i in range(frames_n)]
    for task in ('semantic', 'panoptic', 'instance'):
        engine = SegmentationEngine(EngineConfig(model=panoptic, device=device, task=task,
                                                 compile='off'))
        rows.append((f'd) tiny panoptic model torch {device} task {task}',
                     timed(engine, frames)))
        engine.close()
    count = 2 if quick else 4
    post.extend(bench_panoptic.postprocess_rows(panoptic, [FRAME], count, 3,
                                                torch.device(device), [0.5]))
    if cuda and not quick:
        swin = work / 'swin_l'
        if not (swin / 'config.json').exists():
            swin_large_checkpoint(swin)
        for row in bench_panoptic.postprocess_rows(str(swin), [FRAME], 2, 3,
                                                   torch.device(device), [0.0]):
            post.append({**row, 'model': 'Swin-L architecture, random weights'})


def upload_row(repeats: int = 20) -> Row:
    """Milliseconds to copy one 1024x2048 rgb8 frame to the GPU from pageable / pinned memory."""
    frame = torch.from_numpy(scenes(1)[0])
    pinned = frame.pin_memory()
    times = {}
    for name, source in (('pageable', frame), ('pinned', pinned)):
        samples = []
        for _ in range(repeats):
            torch.cuda.synchronize()
            started = time.perf_counter()
            source.to('cuda', non_blocking=True)
            torch.cuda.synchronize()
            samples.append((time.perf_counter() - started) * 1e3)
        times[name] = statistics.median(samples)
    return {'upload_pageable_ms': times['pageable'], 'upload_pinned_ms': times['pinned'],
            'note': f"upload ms: pageable {times['pageable']:.2f}, pinned "
                    f"{times['pinned']:.2f}"}


def print_postprocess_table(post: list[Row]) -> None:
    """Print d)'s post-processing rows: ours against transformers' on the same outputs."""
    if not post:
        return
    print('\n| d) post-processing at 1024x2048 | score > | kept queries | ours ms | '
          'transformers ms | speed-up | PQ vs transformers | labels equal |')
    print('|---|---|---|---|---|---|---|---|')
    for row in post:
        name = f"{row.get('model', 'tiny panoptic')} {row['task']}"
        print(f"| {name} | {row['score_threshold']} | {row['kept_queries_mean']}/"
              f"{row['queries']} | {row['ours_ms']:.2f} | {row['transformers_ms']:.2f} | "
              f"x{row['speedup']} | {row['pq_vs_transformers']:.4f} | "
              f"{100 * row['labels_equal']:.3f}% |")


def print_table(rows: list, gpu: str, frames_n: int, started: float) -> None:
    """Print the rows as one markdown table."""
    print(f'GPU: {gpu} | torch {torch.__version__} | frames {FRAME[0]}x{FRAME[1]} | '
          f'{frames_n} timed frames per row | {time.perf_counter() - started:.0f} s')
    print('| row | frames/s | preprocess ms | model ms | postprocess ms | peak GPU MB | '
          'labels equal | note |')
    print('|---|---|---|---|---|---|---|---|')
    for name, row in rows:
        cells = [format(row[key], fmt) if key in row else '' for key, fmt in (
            ('fps', '.2f'), ('preprocess_ms', '.2f'), ('model_ms', '.2f'),
            ('postprocess_ms', '.2f'), ('peak_gpu_mb', '.0f'), ('agreement', '.4%'))]
        print(f"| {name} | {' | '.join(cells)} | {row.get('skipped', '')} |")


if __name__ == '__main__':
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    sys.exit(main())
