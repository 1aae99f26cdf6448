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
Engine vs reference pipeline: ms per stage on the same checkpoint and frames, in one run.

Reference: ``Mask2FormerImageProcessorPil`` preprocessing, the model, and
``post_process_semantic_segmentation`` with the frame size as target (the documented HF recipe).
Engine: :class:`mask2former_ros.core.backends.torch_engine.SegmentationEngine`.

    python bench/bench_engine.py                      # tiny + swin-tiny random, trained tiny
    python bench/bench_engine.py --models swin-tiny --frames 5 --size 1024x2048
"""

import argparse
import json
import os
from pathlib import Path
import statistics
import sys
import tempfile
import time

from mask2former_ros.core.backends.torch_engine import SegmentationEngine
from mask2former_ros.core.engine_config import EngineConfig
from mask2former_ros_fixtures.model_factory import BACKBONES, save_random_checkpoint
from mask2former_ros_fixtures.synthetic import make_scene
import numpy as np
import torch

STAGES = ('preprocess', 'model', 'postprocess')


def reference_pipeline(model_dir: str):
    """Return a callable frame -> (labels, timings) running the documented HF recipe."""
    from transformers import Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessorPil
    processor = Mask2FormerImageProcessorPil.from_pretrained(model_dir)
    model = Mask2FormerForUniversalSegmentation.from_pretrained(model_dir).eval()

    def run(frame: np.ndarray):
        t0 = time.perf_counter()
        inputs = processor(images=frame, return_tensors='pt')
        t1 = time.perf_counter()
        with torch.inference_mode():
            outputs = model(pixel_values=inputs['pixel_values'])
        t2 = time.perf_counter()
        labels = processor.post_process_semantic_segmentation(
            outputs, target_sizes=[frame.shape[:2]])[0].numpy().astype(np.uint8)
        t3 = time.perf_counter()
        return labels, {'preprocess': (t1 - t0) * 1e3, 'model': (t2 - t1) * 1e3,
                        'postprocess': (t3 - t2) * 1e3}
    return run


def engine_pipeline(model_dir: str):
    """Return a callable frame -> (labels, timings) running the engine."""
    engine = SegmentationEngine(EngineConfig(model=model_dir))

    def run(frame: np.ndarray):
        result = engine.segment(frame)
        return result.labels, result.timings_ms
    return run


def bench_model(name: str, model_dir: str, frames: list[np.ndarray]) -> dict:
    """Run both pipelines alternately on the same frames; return median ms and agreement."""
    pipelines = {'reference': reference_pipeline(model_dir), 'engine': engine_pipeline(model_dir)}
    for run in pipelines.values():  # warm-up
        run(frames[0])
    times = {key: {s: [] for s in STAGES} for key in pipelines}
    agree = []
    for frame in frames:
        labels = {}
        for key, run in pipelines.items():
            labels[key], timing = run(frame)
            for stage in STAGES:
                times[key][stage].append(timing[stage])
        agree.append(float((labels['reference'] == labels['engine']).mean()))
    out = {'model': name, 'frames': len(frames), 'size': list(frames[0].shape[:2]),
           'label_agreement': round(min(agree), 6)}
    for key in pipelines:
        med = {s: statistics.median(v) for s, v in times[key].items()}
        med['pre+post'] = med['preprocess'] + med['postprocess']
        med['total'] = med['pre+post'] + med['model']
        out[key] = {k: round(v, 1) for k, v in med.items()}
    out['ratio_pre+post'] = round(out['reference']['pre+post'] / out['engine']['pre+post'], 1)
    out['ratio_total'] = round(out['reference']['total'] / out['engine']['total'], 2)
    return out


def print_table(result: dict) -> None:
    """Print one model's result as a small table."""
    print(f"\n== {result['model']}: {result['frames']} frames of "
          f"{result['size'][0]}x{result['size'][1]}, torch threads {torch.get_num_threads()}")
    print(f"{'ms (median)':<14}" + ''.join(f'{s:>12}' for s in STAGES + ('pre+post', 'total')))
    for key in ('reference', 'engine'):
        print(f'{key:<14}' + ''.join(f'{result[key][s]:>12.1f}'
                                     for s in STAGES + ('pre+post', 'total')))
    print(f"speed-up pre+post x{result['ratio_pre+post']}, total x{result['ratio_total']}; "
          f"labels identical on >= {100 * result['label_agreement']:.3f} % of pixels")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', default='tiny,swin-tiny,trained-tiny',
                        help=f"comma list of {', '.join(BACKBONES)}, trained-tiny, or a dir")
    parser.add_argument('--frames', type=int, default=5)
    parser.add_argument('--size', default='1024x2048', help='HxW of the frames')
    parser.add_argument('--json', help='also write the results to this JSON file')
    args = parser.parse_args(argv)
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    height, width = (int(v) for v in args.size.lower().split('x'))
    rng = np.random.default_rng(0)
    frames = [make_scene(rng, height, width)[0] for _ in range(args.frames)]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(','):
            if name in BACKBONES:
                model_dir = str(save_random_checkpoint(Path(tmp) / name, preset=name))
                label = f'{name} (random weights)'
            elif name == 'trained-tiny':
                from mask2former_ros_fixtures.tiny_model import ensure_tiny_model
                model_dir, label = str(ensure_tiny_model()), 'tiny trained on synthetic scenes'
            else:
                model_dir, label = name, name
            result = bench_model(label, model_dir, frames)
            print_table(result)
            results.append(result)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
