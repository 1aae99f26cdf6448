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

from mask2former_ros.core.cityscapes import CITYSCAPES_CLASSES
from mask2former_ros_fixtures import synthetic
from mask2former_ros_fixtures.synthetic import (
    make_panoptic_scene, make_scene, panoptic_scene_stream, scene_stream, THING_CLASSES,
    TINY_CLASSES)
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


# make_scene's output as the generator made it before instance ground truth was added
# (commit d96ded0): (seed, height, width) -> per scene, the sha256 of the labels and the mean
# RGB of four horizontal bands. Labels are exact integer geometry, so their hash is portable;
# the RGB goes through a float32 power whose last bit may differ between CPUs' SIMD paths, so
# it is compared as band means (a shifted random stream changes them by far more than 0.5).
MAKE_SCENE_FINGERPRINTS = {
    (0, 48, 80): [
        ('75fbbd9b6c2fa8dc', (142.442, 113.482, 105.63, 93.807)),
        ('ba903417fac1f654', (120.709, 103.63, 96.897, 75.927)),
        ('227ebf27b4d370fb', (130.09, 124.758, 132.037, 108.864))],
    (1, 120, 160): [
        ('2dc445cbe352bd06', (95.107, 92.487, 92.658, 82.745)),
        ('2b4f37abf5ef98e2', (165.293, 169.251, 138.316, 135.262)),
        ('f2ac7ead28afd9f3', (181.704, 156.749, 141.313, 118.706))],
    (2, 96, 192): [
        ('af8b68c5b45d8e73', (119.926, 111.89, 92.807, 72.949)),
        ('ae13bc3cfa33b8ab', (83.589, 68.66, 63.557, 59.171)),
        ('e77471fee3f1fa9b', (113.14, 92.468, 99.826, 75.044))],
}


@pytest.mark.parametrize('key', sorted(MAKE_SCENE_FINGERPRINTS))
def test_make_scene_is_unchanged_by_the_instance_ground_truth(key):
    """make_scene draws the scenes it drew before panoptic scenes existed (models rely on it)."""
    import hashlib

    seed, height, width = key
    rng = np.random.default_rng(seed)
    for label_hash, band_means in MAKE_SCENE_FINGERPRINTS[key]:
        rgb, labels = make_scene(rng, height, width)
        assert hashlib.sha256(labels.tobytes()).hexdigest()[:16] == label_hash
        bands = rgb.reshape(4, height // 4, width, 3).mean(axis=(1, 2, 3))
        np.testing.assert_allclose(bands, band_means, atol=0.5)


def _touching_pairs(labels: np.ndarray, instances: np.ndarray) -> set[tuple[int, int]]:
    """Return the pairs of instance ids of one class that are 4-neighbours somewhere."""
    pairs = set()
    for a, b, la, lb in ((instances[:, :-1], instances[:, 1:], labels[:, :-1], labels[:, 1:]),
                         (instances[:-1], instances[1:], labels[:-1], labels[1:])):
        edge = (a != b) & (a > 0) & (b > 0) & (la == lb)
        pairs.update(zip(np.minimum(a, b)[edge].tolist(), np.maximum(a, b)[edge].tolist(),
                         strict=True))
    return pairs


@pytest.mark.parametrize('size', [(1, 1), (7, 3), (64, 128), (120, 160), (480, 640)])
def test_panoptic_scene_instances_are_consistent(size):
    """Ids 1..N are all present (hidden objects get none), one thing class each; stuff is 0."""
    rng = np.random.default_rng(4)
    for _ in range(4):
        rgb, labels, instances = make_panoptic_scene(rng, *size)
        assert rgb.shape == (*size, 3) and rgb.dtype == np.uint8
        assert labels.shape == size and labels.dtype == np.uint8
        assert instances.shape == size and instances.dtype == np.uint16
        assert set(np.unique(labels).tolist()) <= set(TINY_CLASSES)
        ids = np.unique(instances)
        ids = ids[ids != 0]
        assert ids.tolist() == list(range(1, len(ids) + 1))
        assert len(ids) <= synthetic.MAX_INSTANCES
        for i in ids:
            classes = np.unique(labels[instances == i])
            assert len(classes) == 1 and int(classes[0]) in THING_CLASSES
        assert np.array_equal(np.isin(labels, list(THING_CLASSES)), instances > 0)


def test_panoptic_scenes_have_many_and_touching_instances():
    """Scenes hold several cars and persons, and often two of one class touch or overlap."""
    counts = []
    touching = 0
    scenes = list(panoptic_scene_stream(0, 40, 128, 256))
    for _, labels, instances in scenes:
        counts.append(int(instances.max()))
        touching += bool(_touching_pairs(labels, instances))
    classes = {int(labels[instances == 1][0]) for _, labels, instances in scenes
               if instances.max()}
    assert classes == set(THING_CLASSES)
    assert np.mean(counts) > 3 and max(counts) >= 8
    assert touching >= 0.4 * len(scenes)


def test_panoptic_scene_stream_is_deterministic():
    """The same seed gives identical panoptic scenes, another seed different ones."""
    a = list(panoptic_scene_stream(3, 3, 64, 96))
    b = list(panoptic_scene_stream(3, 3, 64, 96))
    c = list(panoptic_scene_stream(4, 3, 64, 96))
    assert len(a) == 3
    for x, y in zip(a, b, strict=True):
        for u, v in zip(x, y, strict=True):
            np.testing.assert_array_equal(u, v)
    assert any(not np.array_equal(x[2], y[2]) for x, y in zip(a, c, strict=True))


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
    """The default model is the shipped one; the environment names another directory."""
    from mask2former_ros_fixtures import tiny_model

    monkeypatch.delenv('MASK2FORMER_ROS_TINY_MODEL', raising=False)
    path = tiny_model.default_model_dir()
    assert path == tiny_model.MODELS_DIR / 'tiny_street' == tiny_model.shipped_model_dir()
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
                        lambda out_dir, seed=0, log=print, task='semantic':
                        seeds.append(seed) or {'miou': 0.5})
    with pytest.raises(RuntimeError, match='no tiny model reached'):
        tiny_model.train_checked(tmp_path, log=lambda m: None)
    assert seeds == list(tiny_model.QUALITY_SEEDS)


def test_tiny_models_declare_their_task(tmp_path):
    """Both configs carry mask2former_ros_task, which task auto and the mismatch check read."""
    pytest.importorskip('transformers')
    from transformers import Mask2FormerConfig

    from mask2former_ros.core.segmentation_task import (
        resolve_task, TASK_CONFIG_KEY, TaskMismatchError)
    from mask2former_ros_fixtures import tiny_model

    configs = {}
    for task in ('semantic', 'panoptic'):
        tiny_model.tiny_config(task).save_pretrained(str(tmp_path / task))
        saved = json.loads((tmp_path / task / 'config.json').read_text())
        assert saved[TASK_CONFIG_KEY] == task
        configs[task] = Mask2FormerConfig.from_pretrained(str(tmp_path / task))
        assert resolve_task('auto', 'tiny_street_0123', configs[task]) == task
    assert configs['semantic'].num_queries == tiny_model.HEAD_KWARGS['num_queries']
    assert configs['panoptic'].num_queries == tiny_model.PANOPTIC_NUM_QUERIES
    assert (synthetic.MAX_INSTANCES + len(TINY_CLASSES) - len(THING_CLASSES)
            <= tiny_model.PANOPTIC_NUM_QUERIES)
    with pytest.raises(TaskMismatchError):
        resolve_task('panoptic', 'tiny_street_0123', configs['semantic'])
    with pytest.raises(ValueError, match='task must be one of'):
        tiny_model.tiny_config('instance')


def test_panoptic_training_targets_are_one_mask_per_stuff_class_and_per_instance():
    """Panoptic targets split cars and persons by instance; semantic ones stay per class."""
    pytest.importorskip('torch')
    from mask2former_ros_fixtures import tiny_model

    rng = np.random.default_rng(0)
    seen_several = False
    for _ in range(6):
        _, labels, instances = tiny_model._training_sample(rng, 64, 128, panoptic=True)
        masks, classes = tiny_model._target_masks(labels, instances)
        # The masks tile the frame exactly once and agree with the resized labels.
        np.testing.assert_array_equal(masks.sum(axis=0), np.ones(labels.shape))
        np.testing.assert_array_equal(classes[np.argmax(masks, axis=0)], labels)
        things = np.isin(classes, list(THING_CLASSES))
        stuff = classes[~things]
        assert len(set(stuff.tolist())) == len(stuff)
        ids = np.unique(instances)
        assert things.sum() == len(ids[ids != 0])
        seen_several |= bool((classes[things] == synthetic.CAR).sum() > 1)
        semantic_masks, semantic_classes = tiny_model._target_masks(labels, None)
        assert semantic_classes.tolist() == np.unique(labels).tolist()
        assert len(semantic_masks) == len(semantic_classes)
    assert seen_several


def test_panoptic_maps_from_hf_segments():
    """HF segment ids become labels (255 where unassigned) and instance ids only for things."""
    from mask2former_ros_fixtures.tiny_model import panoptic_maps

    segmentation = np.array([[1, 1, 2, 2, 0],
                             [1, 3, 3, 4, -1]])
    info = [{'id': 1, 'label_id': 0}, {'id': 2, 'label_id': 13},
            {'id': 3, 'label_id': 13}, {'id': 1, 'label_id': 0}, {'id': 4, 'label_id': 11}]
    labels, instances = panoptic_maps(segmentation, info)
    assert labels.dtype == np.uint8 and instances.dtype == np.uint16
    np.testing.assert_array_equal(labels, [[0, 0, 13, 13, 255], [0, 13, 13, 11, 255]])
    np.testing.assert_array_equal(instances, [[0, 0, 1, 1, 0], [0, 2, 2, 3, 0]])
    labels, instances = panoptic_maps(np.full((2, 3), -1), [])
    assert (labels == 255).all() and not instances.any()


def test_default_panoptic_model_dir_follows_env(monkeypatch, tmp_path):
    """The panoptic model has its own shipped directory, recipe hash and environment variable."""
    from mask2former_ros_fixtures import tiny_model

    monkeypatch.delenv('MASK2FORMER_ROS_TINY_PANOPTIC_MODEL', raising=False)
    monkeypatch.setenv('MASK2FORMER_ROS_TINY_MODEL', str(tmp_path / 'semantic'))
    path = tiny_model.default_model_dir('panoptic')
    assert path == tiny_model.MODELS_DIR / 'tiny_street_panoptic'
    assert tiny_model.recipe_hash('panoptic') != tiny_model.recipe_hash()
    monkeypatch.setenv('MASK2FORMER_ROS_TINY_PANOPTIC_MODEL', str(tmp_path / 'explicit'))
    assert tiny_model.default_model_dir('panoptic') == tmp_path / 'explicit'
    assert tiny_model.default_model_dir() == tmp_path / 'semantic'


def test_panoptic_model_below_the_pq_bar_is_retrained(monkeypatch, tmp_path):
    """The panoptic gate checks PQ on things and overall, and retries with the next seed."""
    from mask2former_ros_fixtures import tiny_model

    calls = []
    results = {0: (tiny_model.MIN_PQ_THINGS - 0.05, 0.99), 1: (0.99, tiny_model.MIN_PQ - 0.05),
               2: (tiny_model.MIN_PQ_THINGS, tiny_model.MIN_PQ)}

    def fake_train(out_dir, seed=0, log=print, task='semantic', **kwargs):
        calls.append((seed, task))
        return dict(zip(('pq_things', 'pq'), results[seed], strict=True))

    monkeypatch.setattr(tiny_model, 'train_tiny_model', fake_train)
    info = tiny_model.train_checked(tmp_path, log=lambda m: None, task='panoptic')
    assert info['pq_things'] == tiny_model.MIN_PQ_THINGS
    assert calls == [(0, 'panoptic'), (1, 'panoptic'), (2, 'panoptic')]
    with pytest.raises(RuntimeError, match='PQ things'):
        tiny_model.train_checked(tmp_path, log=lambda m: None, seeds=(0, 1), task='panoptic')


def test_tiny_panoptic_model_separates_instances(tiny_panoptic_model_dir):
    """The trained panoptic model, through HF's panoptic post-processing, finds the instances."""
    from mask2former_ros.core.segmentation_task import TASK_CONFIG_KEY
    from mask2former_ros_fixtures import tiny_model

    config = json.loads((tiny_panoptic_model_dir / 'config.json').read_text())
    assert config[TASK_CONFIG_KEY] == 'panoptic'
    # Scenes the quality gate never saw (another seed, another size).
    ev = tiny_model.evaluate_pq(tiny_panoptic_model_dir, seed=4242, n=12, height=240, width=320)
    assert ev['pq_things'] >= tiny_model.MIN_PQ_THINGS - 0.1, ev
    assert ev['pq'] >= tiny_model.MIN_PQ - 0.1, ev
