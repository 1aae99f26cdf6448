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

"""Engine tests: loading, settings, and fidelity against the HF and original pipelines."""

from pathlib import Path
from types import SimpleNamespace

from mask2former_ros.core.backends.torch_engine import SegmentationEngine
from mask2former_ros.core.checkpoint import ModelLoadError
from mask2former_ros.core.cityscapes import CITYSCAPES_CLASSES, CITYSCAPES_COLORS
from mask2former_ros.core.engine_config import EngineConfig
from mask2former_ros.core.evaluation.metrics import ConfusionMatrix
from mask2former_ros.core.postprocess.semantic import (
    class_probabilities, semantic_inference, upsampled_argmax)
from mask2former_ros_fixtures.model_factory import save_random_checkpoint
from mask2former_ros_fixtures.synthetic import make_scene
import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from transformers import Mask2FormerImageProcessorPil

SIZES = [(1024, 2048), (1080, 1920), (480, 640)]


@pytest.fixture(scope='module')
def random_engine(random_checkpoint):
    return SegmentationEngine(EngineConfig(model=str(random_checkpoint)))


@pytest.fixture(scope='module')
def tiny_engine(tiny_model_dir):
    return SegmentationEngine(EngineConfig(model=str(tiny_model_dir), with_confidence=True))


# --- loading and settings -------------------------------------------------------------------

def test_loads_labels_palette_and_preprocessing(random_engine):
    assert random_engine.class_names == list(CITYSCAPES_CLASSES)
    np.testing.assert_array_equal(random_engine.palette, CITYSCAPES_COLORS)
    p = random_engine.preprocessing
    assert p.size == {'height': 384, 'width': 384}
    assert p.mean == pytest.approx((0.485, 0.456, 0.406))
    assert p.std == pytest.approx((0.229, 0.224, 0.225))
    assert str(random_engine.device) == 'cpu' and random_engine.dtype == torch.float32


def test_missing_directory_is_one_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match='does not exist'):
        SegmentationEngine(EngineConfig(model=str(tmp_path / 'nope')))


def test_offline_hub_id_names_checkpoint_and_remedy():
    name = 'facebook/mask2former-swin-large-cityscapes-semantic'
    with pytest.raises(ModelLoadError) as info:
        SegmentationEngine(EngineConfig(model=name))
    text = str(info.value)
    assert name in text and 'local directory' in text and 'model:=DIR' in text


def test_corrupt_weights_are_one_clear_error(tmp_path, random_checkpoint):
    bad = tmp_path / 'corrupt'
    bad.mkdir()
    for f in random_checkpoint.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    (bad / 'model.safetensors').write_bytes(b'\x00garbage' * 100)
    with pytest.raises(ModelLoadError, match='cannot load Mask2Former checkpoint'):
        SegmentationEngine(EngineConfig(model=str(bad)))


def test_pickle_weights_refused_unless_allowed(tmp_path):
    ckpt = save_random_checkpoint(tmp_path / 'pickled', safe_serialization=False)
    assert list(ckpt.glob('*.bin')) and not list(ckpt.glob('*.safetensors'))
    with pytest.raises(ModelLoadError, match='pickle'):
        SegmentationEngine(EngineConfig(model=str(ckpt)))
    engine = SegmentationEngine(EngineConfig(model=str(ckpt), allow_pickle=True))
    assert engine.segment(np.zeros((32, 48, 3), np.uint8)).labels.shape == (32, 48)


@pytest.mark.parametrize('field,value,allowed', [
    ('device', 'tpu', 'auto, cpu, cuda'),
    ('device', 'cuda:0', 'CUDA is not available'),
    ('precision', 'int8', 'fp32, fp16, bf16'),
    ('input_size', 'huge', 'checkpoint, native'),
    ('input_size', 8, '32..8192'),
])
def test_bad_settings_say_what_is_allowed(random_checkpoint, field, value, allowed):
    if value == 'cuda:0' and torch.cuda.is_available():
        pytest.skip('a GPU is present')
    with pytest.raises(ValueError, match=allowed):
        SegmentationEngine(EngineConfig(model=str(random_checkpoint), **{field: value}))


@pytest.mark.parametrize('image', [
    np.zeros((0, 10, 3), np.uint8), np.zeros((10, 10), np.uint8),
    np.zeros((10, 10, 3), np.float32), np.zeros((10, 10, 4), np.uint8)])
def test_bad_image_arrays_raise_value_error(random_engine, image):
    with pytest.raises(ValueError):
        random_engine.segment(image)


def test_more_than_256_classes_give_uint16_labels(tmp_path):
    names = tuple(f'class {i}' for i in range(300))
    ckpt = save_random_checkpoint(tmp_path / 'many', class_names=names)
    engine = SegmentationEngine(EngineConfig(model=str(ckpt)))
    assert engine.segment(np.zeros((40, 60, 3), np.uint8)).labels.dtype == np.uint16
    assert len(engine.palette) == 300 and len({tuple(c) for c in engine.palette}) > 250


# --- fidelity (a): preprocessing ------------------------------------------------------------

# PIL resizes in uint8 (rounding) while the engine keeps floats: half a grey level, /std.
PREPROCESS_TOLERANCE = 0.05  # in normalised units; one grey level is 1/255/0.224 = 0.0175


@pytest.mark.parametrize('height,width', SIZES + [(97, 131)])
@pytest.mark.parametrize('setting', ['checkpoint', 512])
def test_preprocessing_matches_hf_processor(random_engine, height, width, setting):
    rng = np.random.default_rng(height)
    image, _ = make_scene(rng, height, width)
    if setting == 'checkpoint':
        processor = Mask2FormerImageProcessorPil(size={'height': 384, 'width': 384})
    else:
        processor = Mask2FormerImageProcessorPil(
            size={'shortest_edge': setting, 'longest_edge': 100000})
    expected = processor(images=image, return_tensors='pt')['pixel_values']
    random_engine.input_size = setting
    try:
        got = random_engine.preprocess([image])
    finally:
        random_engine.input_size = 'checkpoint'
    assert got.shape == expected.shape
    diff = (got - expected).abs()
    assert float(diff.max()) <= PREPROCESS_TOLERANCE, float(diff.max())
    assert float(diff.mean()) <= 0.0075  # uint8 rounding alone averages ~0.0044


# --- fidelity (b): post-processing ----------------------------------------------------------

def structured_outputs(seed: int, queries: int = 40, classes: int = 19, grid: int = 96):
    """Return outputs with distinct query classes and blob masks (many classes per map)."""
    g = torch.Generator().manual_seed(seed)
    class_logits = torch.randn(1, queries, classes + 1, generator=g)
    class_logits[0, torch.arange(queries), torch.arange(queries) % classes] += 8.0
    yy, xx = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing='ij')
    masks = torch.empty(1, queries, grid, grid)
    for q in range(queries):
        cy, cx = torch.rand(2, generator=g) * grid
        sy, sx = 4 + torch.rand(2, generator=g) * grid / 4
        blob = torch.exp(-((yy - cy) / sy) ** 2 - ((xx - cx) / sx) ** 2)
        masks[0, q] = 12 * blob - 6 + 0.3 * torch.randn(grid, grid, generator=g)
    return SimpleNamespace(class_queries_logits=class_logits, masks_queries_logits=masks)


def engine_labels(outputs, height, width):
    probs = class_probabilities(outputs.class_queries_logits)[0]
    return semantic_inference(probs, outputs.masks_queries_logits[0], height, width,
                              score_grid=(384, 384))[0]


def original_mask2former_labels(outputs, height, width, input_size=384):
    """Mask2Former's semantic_inference: logits upsampled to input, then to output size."""
    classes = outputs.class_queries_logits[0].softmax(-1)[:, :-1]
    scores = torch.zeros(classes.shape[1], height, width)
    for q in range(classes.shape[0]):
        logit = outputs.masks_queries_logits[:, q:q + 1]
        logit = F.interpolate(logit, size=(input_size, input_size), mode='bilinear',
                              align_corners=False)
        logit = F.interpolate(logit, size=(height, width), mode='bilinear',
                              align_corners=False)[0, 0]
        scores += classes[q, :, None, None] * logit.sigmoid()[None]
    return scores.argmax(0)


# Output sizes for post-processing parity: above, below and not a multiple of the 384 grid.
PARITY_SIZES = SIZES + [(333, 517), (200, 300), (97, 131)]


@pytest.mark.parametrize('height,width', PARITY_SIZES)
def test_postprocessing_matches_hf_and_original(height, width):
    outputs = structured_outputs(seed=height)
    processor = Mask2FormerImageProcessorPil()
    hf = processor.post_process_semantic_segmentation(outputs, target_sizes=[(height, width)])[0]
    ours = engine_labels(outputs, height, width)
    original = original_mask2former_labels(outputs, height, width)
    assert ours.shape == hf.shape == (height, width)
    assert len(torch.unique(hf)) >= 10, 'the test outputs must produce many classes'
    agree_hf = float((ours == hf).float().mean())
    agree_original = float((ours == original).float().mean())
    agree_hf_original = float((hf == original).float().mean())
    print(f'{height}x{width}: engine=HF {agree_hf:.5f}, engine=original {agree_original:.5f}, '
          f'HF=original {agree_hf_original:.5f}')
    assert agree_hf >= 0.995
    assert agree_original >= 0.995


@pytest.mark.parametrize('out_h,out_w,in_h,in_w', [
    (1024, 2048, 96, 96), (480, 640, 120, 160), (37, 53, 96, 96), (50, 50, 100, 100)])
def test_sparse_upsampled_argmax_equals_dense(out_h, out_w, in_h, in_w):
    g = torch.Generator().manual_seed(out_h)
    scores = F.interpolate(torch.rand(1, 19, in_h // 8 + 1, in_w // 8 + 1, generator=g),
                           size=(in_h, in_w), mode='bicubic')[0]
    dense = F.interpolate(scores[None], size=(out_h, out_w), mode='bilinear',
                          align_corners=False)[0].argmax(0)
    sparse = upsampled_argmax(scores, out_h, out_w)
    # Exact up to float rounding in near-ties.
    assert float((sparse == dense).float().mean()) >= 0.9999
    # The same code on numpy arrays (the onnxruntime backend's and the CPU's post-processing).
    on_host = upsampled_argmax(scores.numpy(), out_h, out_w)
    assert isinstance(on_host, np.ndarray) and on_host.dtype == np.uint8
    assert float((on_host == dense.numpy()).mean()) >= 0.9999


# --- fidelity (c): end to end with the trained tiny model -----------------------------------

@pytest.mark.parametrize('height,width', [(256, 512), (480, 640), (1024, 2048)])
def test_trained_tiny_model_segments_fresh_scenes(tiny_engine, height, width):
    rng = np.random.default_rng(1000 + height)
    cm = ConfusionMatrix(tiny_engine.num_classes)
    for _ in range(4):
        image, truth = make_scene(rng, height, width)
        result = tiny_engine.segment(image)
        assert result.labels.shape == (height, width)
        assert result.confidence.shape == (height, width)
        assert 0.0 <= float(result.confidence.min()) <= float(result.confidence.max()) <= 1.0
        cm.update(truth, result.labels)
    assert cm.miou() >= 0.9, cm.summary(tiny_engine.class_names)


def test_channel_swap_and_flip_are_caught(tiny_engine):
    rng = np.random.default_rng(7)
    image, truth = make_scene(rng, 480, 640)
    good = ConfusionMatrix(19)
    good.update(truth, tiny_engine.segment(image).labels)
    swapped = ConfusionMatrix(19)
    swapped.update(truth, tiny_engine.segment(np.ascontiguousarray(image[..., ::-1])).labels)
    flipped = ConfusionMatrix(19)
    flipped.update(truth, tiny_engine.segment(np.ascontiguousarray(image[::-1])).labels[::-1])
    assert good.miou() >= 0.9
    assert swapped.miou() < good.miou() - 0.1
    assert flipped.miou() < good.miou() - 0.1


def test_batch_of_mixed_sizes_equals_single_frames(tiny_engine):
    rng = np.random.default_rng(3)
    images = [make_scene(rng, h, w)[0] for h, w in [(240, 320), (480, 640), (200, 500)]]
    batch = tiny_engine.segment_batch(images)
    for image, result in zip(images, batch, strict=True):
        single = tiny_engine.segment(image)
        assert result.labels.shape == image.shape[:2]
        assert float((result.labels == single.labels).mean()) >= 0.999


def test_native_and_short_side_input_sizes(tiny_model_dir):
    rng = np.random.default_rng(5)
    image, truth = make_scene(rng, 240, 480)
    for setting in ('native', 256):
        engine = SegmentationEngine(EngineConfig(model=str(tiny_model_dir), input_size=setting))
        assert engine.segment(image).labels.shape == (240, 480)
    assert engine.preprocessing.target_size(240, 480, 256) == (256, 512)
    assert engine.preprocessing.target_size(1000, 1000, 'native') == (1024, 1024)


def test_close_releases_model(random_checkpoint):
    engine = SegmentationEngine(EngineConfig(model=str(Path(random_checkpoint))))
    engine.close()
    with pytest.raises(RuntimeError, match='closed'):
        engine.segment(np.zeros((8, 8, 3), np.uint8))
