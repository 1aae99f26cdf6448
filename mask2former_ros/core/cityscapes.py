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

"""Cityscapes classes: names, colours and the label id <-> train id mapping (cityscapesScripts)."""

from typing import Sequence

from mask2former_ros.core.results import IGNORE_LABEL
import numpy as np

# Cityscapes train ids 0..18 in their official colours (cityscapesScripts labels.py).
CITYSCAPES_CLASSES: tuple[str, ...] = (
    'road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light', 'traffic sign',
    'vegetation', 'terrain', 'sky', 'person', 'rider', 'car', 'truck', 'bus', 'train',
    'motorcycle', 'bicycle',
)
CITYSCAPES_COLORS: np.ndarray = np.array([
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
    (0, 80, 100), (0, 0, 230), (119, 11, 32),
], dtype=np.uint8)


def _normalise_name(name: str) -> str:
    return name.strip().lower().replace('_', ' ').replace('-', ' ')


def is_cityscapes(names: Sequence[str]) -> bool:
    """Return True when ``names`` are the 19 Cityscapes train classes in train-id order."""
    if len(names) != len(CITYSCAPES_CLASSES):
        return False
    return all(_normalise_name(a) == b for a, b in zip(names, CITYSCAPES_CLASSES, strict=True))


# Official mapping of the 19 evaluated classes; every other labelId (0..6, 9, 10, 14..16, 18,
# 29, 30 and the license plate's -1) is ignored (255).
CITYSCAPES_LABELID_TO_TRAINID: dict[int, int] = {
    7: 0,    # road
    8: 1,    # sidewalk
    11: 2,   # building
    12: 3,   # wall
    13: 4,   # fence
    17: 5,   # pole
    19: 6,   # traffic light
    20: 7,   # traffic sign
    21: 8,   # vegetation
    22: 9,   # terrain
    23: 10,  # sky
    24: 11,  # person
    25: 12,  # rider
    26: 13,  # car
    27: 14,  # truck
    28: 15,  # bus
    31: 16,  # train
    32: 17,  # motorcycle
    33: 18,  # bicycle
}
CITYSCAPES_TRAINID_TO_LABELID: dict[int, int] = {
    train: label for label, train in CITYSCAPES_LABELID_TO_TRAINID.items()}
NUM_LABEL_IDS = 34  # labelIds 0..33

_LABELID_LUT = np.full(NUM_LABEL_IDS, IGNORE_LABEL, dtype=np.uint8)
for _label, _train in CITYSCAPES_LABELID_TO_TRAINID.items():
    _LABELID_LUT[_label] = _train


def labelids_to_trainids(labels: np.ndarray) -> np.ndarray:
    """Map a Cityscapes labelId map (any integer dtype) to uint8 train ids, 255 = ignore."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in 'iu':
        raise ValueError(f'label ids must be integers, got {labels.dtype}')
    out = np.full(labels.shape, IGNORE_LABEL, dtype=np.uint8)
    valid = (labels >= 0) & (labels < NUM_LABEL_IDS)
    out[valid] = _LABELID_LUT[labels[valid]]
    return out


def trainids_to_labelids(train_ids: np.ndarray, unlabeled: int = 0) -> np.ndarray:
    """Map train ids (0..18) to Cityscapes labelIds; anything else becomes ``unlabeled``."""
    train_ids = np.asarray(train_ids)
    lut = np.full(256, unlabeled, dtype=np.uint8)
    for train, label in CITYSCAPES_TRAINID_TO_LABELID.items():
        lut[train] = label
    out = np.full(train_ids.shape, unlabeled, dtype=np.uint8)
    valid = (train_ids >= 0) & (train_ids < 256)
    out[valid] = lut[train_ids[valid]]
    return out
