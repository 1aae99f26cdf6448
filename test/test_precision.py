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

"""Reduced precision (fp16/bf16 autocast) keeps the labels; non-finite outputs fail the frame."""

import threading

from mask2former_ros.core.backends.torch_engine import SegmentationEngine
from mask2former_ros.core.engine_config import EngineConfig
from mask2former_ros.core.results import NON_FINITE, WrongThreadError
from mask2former_ros_fixtures.synthetic import make_scene
import numpy as np
import pytest
import torch

# One size below the network grid (the tiny model's 256x512), one not a multiple of 32, and a
# Cityscapes frame.
SIZES = [(120, 200), (333, 517), (1024, 2048)]


@pytest.fixture(scope='module')
def engines(tiny_model_dir):
    return {name: SegmentationEngine(EngineConfig(model=str(tiny_model_dir), precision=name))
            for name in ('fp32', 'bf16', 'fp16')}


def test_weights_stay_fp32_and_precision_is_the_autocast_dtype(engines):
    for name, dtype in (('fp32', torch.float32), ('bf16', torch.bfloat16),
                        ('fp16', torch.float16)):
        engine = engines[name]
        assert engine.dtype == dtype
        assert {p.dtype for p in engine.model.parameters()} == {torch.float32}


@pytest.mark.parametrize('height,width', SIZES)
@pytest.mark.parametrize('precision', ['bf16', 'fp16'])
def test_reduced_precision_agrees_with_fp32(engines, precision, height, width):
    rng = np.random.default_rng(height * 7 + width)
    images = [make_scene(rng, height, width)[0] for _ in range(2)]
    reference = engines['fp32'].segment_batch(images)
    reduced = engines[precision].segment_batch(images)
    for ref, red in zip(reference, reduced, strict=True):
        assert red.ok and red.labels.shape == (height, width)
        agreement = float((ref.labels == red.labels).mean())
        assert agreement >= 0.995, (precision, height, width, agreement)


def _nan_in_frame(index: int):
    def hook(_module, _args, output):
        logits = output.class_queries_logits
        logits[min(index, logits.shape[0] - 1)] = float('nan')
        return output
    return hook


def test_non_finite_logits_fail_only_that_frame(engines):
    engine = engines['fp32']
    rng = np.random.default_rng(3)
    images = [make_scene(rng, 240, 320)[0] for _ in range(3)]
    clean = engine.segment_batch(images)
    handle = engine.model.register_forward_hook(_nan_in_frame(1))
    try:
        results = engine.segment_batch(images)
        with pytest.raises(RuntimeError, match='NaN'):
            engine.segment(images[0])
    finally:
        handle.remove()
    assert results[1].labels is None and results[1].error == NON_FINITE and not results[1].ok
    for i in (0, 2):
        assert results[i].ok
        np.testing.assert_array_equal(results[i].labels, clean[i].labels)


def test_torch_work_off_the_loading_thread_is_refused(engines):
    errors = []

    def run():
        try:
            engines['fp32'].segment(np.zeros((32, 32, 3), np.uint8))
        except WrongThreadError as exc:
            errors.append(str(exc))
    thread = threading.Thread(target=run, name='not_the_torch_thread')
    thread.start()
    thread.join()
    assert errors and 'not_the_torch_thread' in errors[0] and 'MainThread' in errors[0]
