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

"""Panoptic and instance post-processing against transformers' on the same logits."""

from pathlib import Path

from mask2former_ros.core.backends.create import create_engine
from mask2former_ros.core.engine_config import EngineConfig, parse_task, parse_threshold
from mask2former_ros.core.evaluation.panoptic_quality import PanopticQuality
from mask2former_ros.core.postprocess.panoptic import (
    count_at_least, instance_inference, panoptic_inference, query_inference, segments_with_boxes,
    Thresholds)
from mask2former_ros.core.results import NO_SEGMENT
from mask2former_ros.core.segmentation_task import (
    CITYSCAPES_THING_IDS, declared_task, resolve_task, TaskMismatchError, thing_class_ids)
from mask2former_ros_fixtures.hf_reference import instance_maps, panoptic_maps
from mask2former_ros_fixtures.synthetic import make_panoptic_scene
import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812

SIZES = ((120, 200), (333, 517), (1024, 2048))
# transformers post-processes on a fixed 384x384 grid; compare on the same one.
HF_GRID = (384, 384)
NUM_CLASSES = 19


@pytest.fixture(scope='module')
def panoptic_model(tiny_panoptic_model_dir: Path):
    """Return the trained tiny panoptic model and its processor (transformers)."""
    from transformers import Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessor
    model = Mask2FormerForUniversalSegmentation.from_pretrained(tiny_panoptic_model_dir).eval()
    return model, Mask2FormerImageProcessor.from_pretrained(tiny_panoptic_model_dir)


def _outputs(panoptic_model, rgb: np.ndarray):
    model, processor = panoptic_model
    inputs = processor(images=rgb, return_tensors='pt')
    with torch.no_grad():
        return model(pixel_values=inputs['pixel_values'])


def _pq(ours_labels, ours_instances, ref_labels, ref_instances, things) -> dict:
    quality = PanopticQuality(NUM_CLASSES, things)
    quality.add(ours_labels, ours_instances, ref_labels, ref_instances)
    return quality.summary()


def _smooth_planes(count: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.randn(count, 12, 12, generator=generator) * 3
    up = F.interpolate(coarse[None], size=(96, 96), mode='bicubic', align_corners=False)[0]
    return F.interpolate(up[None], size=HF_GRID, mode='bilinear', align_corners=False)[0].sigmoid()


@pytest.mark.parametrize('size', [*SIZES, (1000, 1001), (384, 384)])
def test_thresholded_pixel_counts_equal_the_dense_upsampling(size):
    planes = _smooth_planes(12, seed=size[0])
    dense = F.interpolate(planes[None], size=size, mode='bilinear', align_corners=False)[0]
    for threshold in (0.3, 0.5, 0.8):
        expected = (dense >= threshold).sum((1, 2))
        counted = count_at_least(planes, threshold, *size)
        # Equal up to pixels within float rounding of the threshold.
        assert (counted - expected).abs().max() <= 2, (size, threshold, counted, expected)
        on_host = count_at_least(planes.numpy(), threshold, *size)  # the numpy flavour
        assert np.abs(on_host - expected.numpy()).max() <= 2, (size, threshold, on_host)
        assert int(expected.sum()) > 0


def _query_logits(seed: int, queries: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """Return class logits peaked on one class per query and masks on a coarse partition."""
    generator = torch.Generator().manual_seed(seed)
    owner = torch.randint(0, queries, (6, 12), generator=generator)
    coarse = torch.where(owner[None] == torch.arange(queries)[:, None, None], 8.0, -8.0)
    coarse = coarse + torch.randn(queries, 6, 12, generator=generator)
    masks = F.interpolate(coarse[None], size=(64, 128), mode='bicubic', align_corners=False)[0]
    classes = torch.randn(queries, NUM_CLASSES + 1, generator=generator)
    picked = torch.randint(0, NUM_CLASSES, (queries,), generator=generator)
    classes[torch.arange(queries), picked] += 8
    return classes, masks


@pytest.mark.parametrize('size', SIZES, ids=[f'{h}x{w}' for h, w in SIZES])
def test_numpy_and_torch_run_the_same_post_processing(size):
    """One implementation, two array libraries: the CPU backends' numpy and a GPU's torch."""
    class_logits, mask_logits = _query_logits(size[0])
    for task in ('panoptic', 'instance'):
        on_torch = query_inference(task, class_logits, mask_logits, *size, (256, 512),
                                   CITYSCAPES_THING_IDS)
        on_numpy = query_inference(task, class_logits.numpy(), mask_logits.numpy(), *size,
                                   (256, 512), CITYSCAPES_THING_IDS)
        assert isinstance(on_numpy.labels, np.ndarray) and on_numpy.labels.dtype == np.uint8
        assert isinstance(on_numpy.instances, np.ndarray)
        assert len(on_numpy.records) >= 5, (task, on_numpy.records)
        assert [(r.instance_id, r.class_id, r.area) for r in on_numpy.records] == \
            [(r.instance_id, r.class_id, r.area) for r in on_torch.records]
        assert np.allclose([r.score for r in on_numpy.records],
                           [r.score for r in on_torch.records], atol=2e-6)
        # Equal up to float rounding in near-ties of the upsampled argmax.
        assert float((on_numpy.labels == on_torch.labels.numpy()).mean()) >= 0.99999
        assert float((on_numpy.instances == on_torch.instances.numpy()).mean()) >= 0.99999


@pytest.mark.parametrize('size', SIZES, ids=[f'{h}x{w}' for h, w in SIZES])
def test_panoptic_agrees_with_transformers(panoptic_model, size):
    rng = np.random.default_rng(2200 + size[0])
    frames = 3 if size[0] < 1000 else 2
    total_segments = 0
    for frame in range(frames):
        rgb, _, _ = make_panoptic_scene(rng, *size)
        out = _outputs(panoptic_model, rgb)
        ref_labels, ref_instances = panoptic_maps(panoptic_model[1], out, size,
                                                  CITYSCAPES_THING_IDS, NUM_CLASSES)
        ours = panoptic_inference(out.class_queries_logits[0], out.masks_queries_logits[0],
                                  *size, HF_GRID, CITYSCAPES_THING_IDS)
        labels, instances = ours.labels.numpy(), ours.instances.numpy().astype(np.uint16)
        summary = _pq(labels, instances, ref_labels, ref_instances, CITYSCAPES_THING_IDS)
        equal = float((labels == ref_labels).mean())
        print(f"{size[0]}x{size[1]} frame {frame}: PQ {summary['all']['pq']:.4f} against "
              f'transformers, labels {100 * equal:.4f}% equal, {len(ours.records)} instances '
              f'(transformers {int(ref_instances.max())})')
        assert summary['all']['pq'] >= 0.99
        assert equal >= 0.999
        total_segments += len(ours.records)
    assert total_segments > 0, 'the scenes should hold instances'


@pytest.mark.parametrize('size', SIZES, ids=[f'{h}x{w}' for h, w in SIZES])
def test_instance_agrees_with_transformers(panoptic_model, size):
    rng = np.random.default_rng(2300 + size[0])
    rgb, _, _ = make_panoptic_scene(rng, *size)
    out = _outputs(panoptic_model, rgb)
    ref_labels, ref_instances = instance_maps(panoptic_model[1], out, size)
    ours = instance_inference(out.class_queries_logits[0], out.masks_queries_logits[0], *size,
                              HF_GRID)
    labels, instances = ours.labels.numpy(), ours.instances.numpy().astype(np.uint16)
    every_class = frozenset(range(NUM_CLASSES))
    summary = _pq(labels, instances, ref_labels, ref_instances, every_class)
    # transformers as it is: an overlap goes to the later mask of an unsorted top-k.
    as_is = _pq(labels, instances, *instance_maps(panoptic_model[1], out, size,
                                                  score_order=False), every_class)
    print(f"{size[0]}x{size[1]}: instance PQ {summary['all']['pq']:.4f} against transformers "
          f"with overlaps by score ({as_is['all']['pq']:.4f} with its own overlap order), "
          f'{len(ours.records)} instances (transformers {int(ref_instances.max())})')
    assert len(ours.records) > 0
    assert summary['all']['pq'] >= 0.99


def test_no_query_above_the_score_threshold_gives_an_empty_result(panoptic_model):
    rgb, _, _ = make_panoptic_scene(np.random.default_rng(1), 64, 96)
    out = _outputs(panoptic_model, rgb)
    for ours in (panoptic_inference(out.class_queries_logits[0], out.masks_queries_logits[0],
                                    64, 96, HF_GRID, CITYSCAPES_THING_IDS, Thresholds(score=1.0)),
                 instance_inference(out.class_queries_logits[0], out.masks_queries_logits[0],
                                    64, 96, HF_GRID, Thresholds(score=1.0))):
        assert ours.records == ()
        assert bool((ours.labels == NO_SEGMENT).all()) and int(ours.instances.max()) == 0


@pytest.fixture(scope='module')
def panoptic_engine(tiny_panoptic_model_dir: Path):
    engine = create_engine(EngineConfig(model=str(tiny_panoptic_model_dir), device='cpu'))
    yield engine
    engine.close()


@pytest.mark.parametrize('size', [(240, 320), (512, 1024)])
def test_segments_describe_the_instance_image(panoptic_engine, size):
    assert panoptic_engine.task == 'panoptic'  # from the checkpoint's config
    rng = np.random.default_rng(size[1])
    seen = 0
    for _ in range(3):
        rgb, _, _ = make_panoptic_scene(rng, *size)
        result = panoptic_engine.segment(rgb)
        assert result.instances.dtype == np.uint16 and result.instances.shape == size
        ids = [s.instance_id for s in result.segments]
        assert ids == list(range(1, len(ids) + 1))
        assert sorted(np.unique(result.instances)[1:].tolist()) == ids
        scores = [s.score for s in result.segments]
        assert scores == sorted(scores, reverse=True)
        for segment in result.segments:
            ys, xs = np.nonzero(result.instances == segment.instance_id)
            assert segment.box == (xs.min(), ys.min(), xs.max(), ys.max())
            assert segment.area == ys.size
            assert segment.class_id in CITYSCAPES_THING_IDS
            # One instance, one class: its pixels all carry its label.
            assert set(np.unique(result.labels[ys, xs]).tolist()) == {segment.class_id}
        assert not np.any(result.instances[np.isin(result.labels,
                                                   list(CITYSCAPES_THING_IDS), invert=True)])
        seen += len(ids)
    assert seen > 0


def test_segments_with_boxes_reads_bounds_from_the_image():
    from mask2former_ros.core.postprocess.panoptic import SegmentRecord
    instances = np.zeros((6, 8), np.uint16)
    instances[1:3, 2:5] = 1
    instances[4, 7] = 2
    segments = segments_with_boxes(instances, (SegmentRecord(1, 13, 0.9, 6),
                                               SegmentRecord(2, 11, 0.8, 1)))
    assert [s.box for s in segments] == [(2, 1, 4, 2), (7, 4, 7, 4)]
    with pytest.raises(RuntimeError, match='instance 3 has no pixels'):
        segments_with_boxes(instances, (SegmentRecord(1, 13, 0.9, 6), SegmentRecord(2, 11, 0.8, 1),
                                        SegmentRecord(3, 11, 0.7, 1)))


def test_semantic_checkpoint_with_task_panoptic_fails_at_load(tiny_model_dir: Path, tmp_path):
    with pytest.raises(TaskMismatchError) as info:
        create_engine(EngineConfig(model=str(tiny_model_dir), device='cpu', task='panoptic'))
    message = str(info.value)
    assert "task 'panoptic' needs a panoptic or instance checkpoint" in message
    assert 'semantic' in message and '\n' not in message
    # The name alone says so too (a Hub checkpoint has no mask2former_ros_task key).
    named = tmp_path / 'mask2former-tiny-cityscapes-semantic'
    named.symlink_to(tiny_model_dir)
    config = type('Config', (), {})()
    assert declared_task(str(named), config) == ('semantic', 'its name '
                                                 "('mask2former-tiny-cityscapes-semantic')")
    with pytest.raises(TaskMismatchError):
        resolve_task('instance', str(named), config)


def test_task_is_read_from_checkpoint_names_and_configs():
    empty = type('Config', (), {})()
    for name, task in (('facebook/mask2former-swin-large-cityscapes-semantic', 'semantic'),
                       ('facebook/mask2former-swin-large-cityscapes-panoptic', 'panoptic'),
                       ('facebook/mask2former-swin-small-coco-instance', 'instance'),
                       ('/models/my_panoptic_run/checkpoint-500', 'panoptic')):
        assert resolve_task('auto', name, empty) == task
    said = []
    assert resolve_task('auto', '/models/street', empty, said.append) == 'semantic'
    assert len(said) == 1 and 'serving semantic' in said[0]
    declared = type('Config', (), {'mask2former_ros_task': 'instance'})()
    assert resolve_task('auto', '/x/semantic-looking-name', declared) == 'instance'
    assert resolve_task('semantic', 'facebook/mask2former-swin-large-cityscapes-panoptic',
                        empty) == 'semantic'  # a panoptic model's semantic view is fine
    with pytest.raises(ValueError, match="invalid task 'stuff'"):
        parse_task('stuff')
    for bad in (-0.1, 1.5, float('nan'), 'high', True):
        with pytest.raises(ValueError, match='invalid score_threshold'):
            parse_threshold('score_threshold', bad)
    assert parse_threshold('mask_threshold', 1) == 1.0


def test_thing_classes():
    from mask2former_ros.core.cityscapes import CITYSCAPES_CLASSES
    assert thing_class_ids(CITYSCAPES_CLASSES, 'panoptic') == frozenset(range(11, 19))
    assert thing_class_ids(CITYSCAPES_CLASSES, 'instance') == frozenset(range(19))
    assert thing_class_ids(CITYSCAPES_CLASSES, 'semantic') == frozenset()
    assert thing_class_ids([str(i) for i in range(133)], 'panoptic') == frozenset(range(80))


def test_onnx_backend_refuses_panoptic_of_a_semantic_checkpoint_before_exporting(
        tiny_model_dir: Path, tmp_path, monkeypatch):
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
    with pytest.raises(TaskMismatchError, match="task 'panoptic' needs a panoptic or instance"):
        create_engine(EngineConfig(model=str(tiny_model_dir), backend='onnxruntime',
                                   task='panoptic', frame_size='64x64'))
    # Refused before any export (onnxruntime's first import may leave its device id under
    # Microsoft/DeveloperTools there: not ours).
    assert not (tmp_path / 'cache' / 'mask2former_ros').exists()
