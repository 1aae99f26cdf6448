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

"""Tests of the synthetic street-scene generator and of the tiny model's config round trip."""

import json
import os

from mask2former_ros.core.palette import CITYSCAPES_CLASSES
from mask2former_ros_fixtures import synthetic
from mask2former_ros_fixtures.synthetic import make_scene, scene_stream, TINY_CLASSES
import numpy as np
import pytest


def test_tiny_classes_are_cityscapes_train_ids():
    """Each synthetic class id names the same class in the Cityscapes train-id list."""
    assert sorted(TINY_CLASSES) == [0, 1, 2, 8, 10, 11, 13]
    for class_id, name in TINY_CLASSES.items():
        assert CITYSCAPES_CLASSES[class_id] == name


@pytest.mark.parametrize('size', [(64, 128), (120, 160), (96, 96), (480, 640), (200, 100)])
def test_shapes_and_dtypes(size):
    """Scenes have the requested size, uint8 RGB and uint8 labels from TINY_CLASSES."""
    rgb, labels = make_scene(np.random.default_rng(0), *size)
    assert rgb.shape == (*size, 3)
    assert labels.shape == size
    assert rgb.dtype == np.uint8
    assert labels.dtype == np.uint8
    assert set(np.unique(labels).tolist()) <= set(TINY_CLASSES)


def test_deterministic_for_a_seed():
    """The same seed gives identical scenes, another seed different ones."""
    a = list(scene_stream(7, 3, 96, 192))
    b = list(scene_stream(7, 3, 96, 192))
    c = list(scene_stream(8, 3, 96, 192))
    for (rgb_a, lab_a), (rgb_b, lab_b) in zip(a, b, strict=True):
        np.testing.assert_array_equal(rgb_a, rgb_b)
        np.testing.assert_array_equal(lab_a, lab_b)
    assert any(not np.array_equal(x[0], y[0]) for x, y in zip(a, c, strict=True))
    assert any(not np.array_equal(x[1], y[1]) for x, y in zip(a, c, strict=True))


def test_scene_stream_count_and_size():
    """scene_stream yields exactly n scenes of the requested size."""
    scenes = list(scene_stream(0, 4, 40, 72))
    assert len(scenes) == 4
    assert all(rgb.shape == (40, 72, 3) and lab.shape == (40, 72) for rgb, lab in scenes)


def test_all_classes_appear():
    """Every class of TINY_CLASSES occurs within a handful of scenes."""
    seen = set()
    for _, labels in scene_stream(0, 8, 128, 256):
        seen.update(np.unique(labels).tolist())
    assert seen == set(TINY_CLASSES)


def test_layout_sky_on_top_road_at_bottom():
    """Sky is in the upper part and road in the lower part, on average and in every scene."""
    sky_rows = []
    road_rows = []
    for _, labels in scene_stream(3, 10, 120, 240):
        rows = np.arange(labels.shape[0])[:, None] * np.ones_like(labels)
        assert (labels[0] != synthetic.ROAD).all()
        assert (labels[-1] != synthetic.SKY).all()
        sky_rows.append(rows[labels == synthetic.SKY].mean())
        road_rows.append(rows[labels == synthetic.ROAD].mean())
    assert np.mean(sky_rows) < 0.3 * 120
    assert np.mean(road_rows) > 0.7 * 120
    assert all(s < r for s, r in zip(sky_rows, road_rows, strict=True))


def test_colour_cues():
    """Sky pixels are strongly blue and vegetation green, so channel swaps are visible."""
    rgb_all, lab_all = zip(*scene_stream(5, 6, 96, 192), strict=True)
    rgb = np.concatenate([x.reshape(-1, 3) for x in rgb_all]).astype(np.float64)
    labels = np.concatenate([x.ravel() for x in lab_all])
    sky = rgb[labels == synthetic.SKY].mean(axis=0)
    veg = rgb[labels == synthetic.VEGETATION].mean(axis=0)
    building = rgb[labels == synthetic.BUILDING].mean(axis=0)
    assert sky[2] > sky[0] + 60
    assert veg[1] > veg[0] + 20 and veg[1] > veg[2] + 20
    assert building[0] >= building[2]


@pytest.mark.parametrize('size', [(1, 1), (1, 7), (5, 1), (2, 3), (8, 16), (16, 8)])
def test_tiny_sizes_do_not_crash(size):
    """Degenerate sizes still give valid scenes."""
    rng = np.random.default_rng(1)
    for _ in range(5):
        rgb, labels = make_scene(rng, *size)
        assert rgb.shape == (*size, 3) and labels.shape == size
        assert set(np.unique(labels).tolist()) <= set(TINY_CLASSES)


def test_invalid_size_raises():
    """Zero or negative sizes are rejected."""
    with pytest.raises(ValueError):
        make_scene(np.random.default_rng(0), 0, 10)


def test_objects_scale_with_the_image():
    """Class proportions are similar at different resolutions of the same kind of scene."""
    def fractions(height, width):
        """Return the pixel fraction of every label over a few scenes."""
        counts = np.zeros(256)
        for _, labels in scene_stream(11, 12, height, width):
            counts += np.bincount(labels.ravel(), minlength=256)
        return counts / counts.sum()

    small = fractions(60, 120)
    large = fractions(240, 480)
    for class_id in TINY_CLASSES:
        assert abs(small[class_id] - large[class_id]) < 0.06, CITYSCAPES_CLASSES[class_id]


def test_large_frame_is_fast_enough():
    """A Cityscapes-sized frame is generated quickly (generous bound for loaded CI)."""
    import time

    rng = np.random.default_rng(0)
    make_scene(rng, 1024, 2048)
    start = time.perf_counter()
    for _ in range(3):
        make_scene(rng, 1024, 2048)
    assert (time.perf_counter() - start) / 3 < 0.5


def test_tiny_model_config_round_trip(tmp_path):
    """The tiny model builds, saves (safetensors) and reloads through from_pretrained."""
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    pytest.importorskip('torch')
    pytest.importorskip('transformers')
    import torch
    from transformers import (AutoImageProcessor, Mask2FormerForUniversalSegmentation,
                              Mask2FormerImageProcessorPil)

    from mask2former_ros_fixtures import tiny_model

    model = tiny_model.build_tiny_model(seed=0).eval()
    config = model.config
    assert config.num_labels == 19
    assert [config.id2label[i] for i in range(19)] == list(CITYSCAPES_CLASSES)
    assert config.backbone_config.model_type == 'swin'
    model.save_pretrained(str(tmp_path))
    tiny_model.tiny_image_processor().save_pretrained(str(tmp_path))
    assert (tmp_path / 'model.safetensors').is_file()
    size_mb = (tmp_path / 'model.safetensors').stat().st_size / 1e6
    assert size_mb < 20

    loaded = Mask2FormerForUniversalSegmentation.from_pretrained(str(tmp_path)).eval()
    assert loaded.config.id2label == config.id2label
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor, msg=name)

    processor = Mask2FormerImageProcessorPil.from_pretrained(str(tmp_path))
    saved = json.loads((tmp_path / 'preprocessor_config.json').read_text())
    assert saved['size'] == {'height': tiny_model.TRAIN_HEIGHT, 'width': tiny_model.TRAIN_WIDTH}
    auto = AutoImageProcessor.from_pretrained(str(tmp_path))
    assert 'Mask2Former' in type(auto).__name__

    rgb, _ = make_scene(np.random.default_rng(0), 90, 160)
    inputs = processor(images=[rgb], return_tensors='pt')
    assert tuple(inputs['pixel_values'].shape) == (
        1, 3, tiny_model.TRAIN_HEIGHT, tiny_model.TRAIN_WIDTH)
    with torch.no_grad():
        outputs = loaded(pixel_values=inputs['pixel_values'])
    seg = processor.post_process_semantic_segmentation(outputs, target_sizes=[(90, 160)])[0]
    assert tuple(seg.shape) == (90, 160)


def test_default_model_dir_follows_env(monkeypatch, tmp_path):
    """The cache location honours the environment and includes the recipe hash."""
    from mask2former_ros_fixtures import tiny_model

    monkeypatch.delenv('MASK2FORMER_ROS_TINY_MODEL', raising=False)
    monkeypatch.setenv('MASK2FORMER_ROS_CACHE', str(tmp_path))
    path = tiny_model.default_model_dir()
    assert path.parent == tmp_path
    assert path.name == f'tiny_street_{tiny_model.recipe_hash()}'
    monkeypatch.setenv('MASK2FORMER_ROS_TINY_MODEL', str(tmp_path / 'explicit'))
    assert tiny_model.default_model_dir() == tmp_path / 'explicit'


def test_miou_confusion_helpers():
    """The private confusion-matrix mIoU ignores 255 and averages the present classes."""
    from mask2former_ros_fixtures import tiny_model

    target = np.array([[0, 0, 10, 255]], dtype=np.uint8)
    pred = np.array([[0, 10, 10, 0]], dtype=np.int64)
    conf = tiny_model._confusion(pred, target, 19)
    assert conf.sum() == 3
    summary = tiny_model._iou_summary(conf, [0, 10, 13])
    assert summary['per_class_iou']['road'] == pytest.approx(0.5)
    assert summary['per_class_iou']['sky'] == pytest.approx(0.5)
    assert np.isnan(summary['per_class_iou']['car'])
    assert summary['miou'] == pytest.approx(0.5)


def test_ensure_tiny_model_trains_once_under_concurrency(monkeypatch, tmp_path):
    """Concurrent ensure_tiny_model calls train once, into place, via a temp dir (fake trainer)."""
    import threading
    import time

    from mask2former_ros_fixtures import tiny_model

    calls = []

    def fake_train(out_dir, log=print, **kwargs):
        """Write the files of a finished model without training."""
        calls.append(out_dir)
        time.sleep(0.2)
        for name in tiny_model._REQUIRED_FILES:
            (out_dir / name).write_text('{}')
        return {'miou': 1.0}

    monkeypatch.setattr(tiny_model, 'train_tiny_model', fake_train)
    target = tmp_path / 'cache' / 'tiny'
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        tiny_model.ensure_tiny_model(target, log=lambda message: None))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [target] * 3
    assert len(calls) == 1
    assert calls[0] != target
    assert tiny_model._is_complete(target)
    leftovers = [p.name for p in target.parent.iterdir() if p.is_dir() and p != target]
    assert leftovers == []
    assert tiny_model.ensure_tiny_model(target) == target
    assert len(calls) == 1


def test_tiny_model_below_the_quality_bar_is_retrained_with_the_next_seed(monkeypatch, tmp_path):
    """A cold cache that lands on weak weights must not hand them to the label tests."""
    from mask2former_ros_fixtures import tiny_model

    seeds = []

    def fake_train(out_dir, seed=0, log=print, **kwargs):
        seeds.append(seed)
        return {'miou': tiny_model.MIN_MIOU - 0.1 if seed == 0 else tiny_model.MIN_MIOU}

    monkeypatch.setattr(tiny_model, 'train_tiny_model', fake_train)
    assert tiny_model.train_checked(tmp_path, log=lambda m: None)['miou'] == tiny_model.MIN_MIOU
    assert seeds == [0, 1]
    seeds.clear()
    monkeypatch.setattr(tiny_model, 'train_tiny_model',
                        lambda out_dir, seed=0, log=print: seeds.append(seed) or {'miou': 0.5})
    with pytest.raises(RuntimeError, match='no tiny model reached'):
        tiny_model.train_checked(tmp_path, log=lambda m: None)
    assert seeds == list(tiny_model.QUALITY_SEEDS)
