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
transformers' own panoptic and instance post-processing, as label and instance-id maps.

The reference that :mod:`mask2former_ros.core.postprocess.panoptic` is checked and benchmarked
against: the same model outputs through ``post_process_panoptic_segmentation`` /
``post_process_instance_segmentation``, converted to the engine's representation (semantic
labels with 255 where no segment, uint16 instance ids of the thing segments, 0 = none).
"""

from typing import Any, Iterable

import numpy as np

NO_SEGMENT = 255


def _maps(segmentation: Any, segments_info: list[dict], thing_ids: Iterable[int]
          ) -> tuple[np.ndarray, np.ndarray]:
    """Turn a segment-id map and its segments into (labels uint8, instance ids uint16)."""
    seg = np.asarray(segmentation.cpu().numpy() if hasattr(segmentation, 'cpu')
                     else segmentation).astype(np.int64)
    things = set(thing_ids)
    label_lut = np.full(int(max(seg.max(initial=0), 0)) + 2, NO_SEGMENT, dtype=np.uint8)
    instance_lut = np.zeros(label_lut.shape, dtype=np.uint16)
    next_id = 1
    for info in segments_info:
        label_lut[info['id'] + 1] = info['label_id']
        if info['label_id'] in things and not info.get('was_fused', False):
            instance_lut[info['id'] + 1] = next_id
            next_id += 1
    index = np.clip(seg + 1, 0, None)  # -1 (no segment) -> 0
    return label_lut[index], instance_lut[index]


def panoptic_maps(processor: Any, outputs: Any, size: tuple[int, int],
                  thing_ids: Iterable[int], num_classes: int, threshold: float = 0.5,
                  mask_threshold: float = 0.5, overlap: float = 0.8
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Return transformers' panoptic result of one frame, stuff classes fused."""
    things = set(thing_ids)
    result = processor.post_process_panoptic_segmentation(
        outputs, threshold=threshold, mask_threshold=mask_threshold,
        overlap_mask_area_threshold=overlap,
        label_ids_to_fuse=set(range(num_classes)) - things, target_sizes=[size])[0]
    segmentation = result['segmentation']
    if not result['segments_info']:
        segmentation = np.full(size, -1)
    else:
        # Panoptic ids start at 1 and 0 means no segment; shift to the instance convention.
        segmentation = segmentation.cpu().numpy().astype(np.int64) - 1
        for info in result['segments_info']:
            info['id'] -= 1
    return _maps(segmentation, result['segments_info'], things)


def instance_maps(processor: Any, outputs: Any, size: tuple[int, int], threshold: float = 0.5,
                  score_order: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """
    Return transformers' instance result of one frame (every class a thing).

    transformers paints its instance masks in the order of an unsorted top-k, so which of two
    overlapping masks owns a pixel is arbitrary there. With ``score_order`` its binary masks
    are painted in rising score order (the engine's rule: the higher score wins), everything
    else is transformers' own; without, its own segmentation map is returned as it is.
    """
    result = processor.post_process_instance_segmentation(
        outputs, threshold=threshold, target_sizes=[size], return_binary_maps=score_order)[0]
    infos = result['segments_info']
    if not score_order:
        return _maps(result['segmentation'], infos, {info['label_id'] for info in infos})
    labels = np.full(size, NO_SEGMENT, dtype=np.uint8)
    instances = np.zeros(size, dtype=np.uint16)
    if not infos:
        return labels, instances
    masks = result['segmentation'].cpu().numpy().astype(bool)
    order = sorted(range(len(infos)), key=lambda n: -infos[n]['score'])
    for rank in reversed(range(len(order))):
        n = order[rank]
        labels[masks[n]] = infos[n]['label_id']
        instances[masks[n]] = rank + 1
    return labels, _renumber(instances)


def _renumber(instances: np.ndarray) -> np.ndarray:
    """Return ids renumbered 1..N in their order, dropping ids hidden by others."""
    present = np.unique(instances)
    present = present[present > 0]
    lut = np.zeros(int(instances.max()) + 1, dtype=np.uint16)
    lut[present] = np.arange(1, present.size + 1, dtype=np.uint16)
    return lut[instances]
