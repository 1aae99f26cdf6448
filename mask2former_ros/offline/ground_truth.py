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
Ground-truth label images: a topic of the input bag or a directory of PNGs (no torch).

Panoptic ground truth adds a topic of instance ids (mono16, 0: no instance) beside the label
topic, matched by the same stamps.
"""

from pathlib import Path
import re
from typing import Any

import cv2
from mask2former_ros.core.cityscapes import labelids_to_trainids
from mask2former_ros.messages.image_conversion import stamp_ns
from mask2former_ros.offline.bag_io import IMAGE, iterate, open_reader, topic_list, typestore
from mask2former_ros.offline.errors import one_line, SegmentBagError
import numpy as np

_GT_ENCODINGS = {'mono8': 1, '8uc1': 1, 'mono16': 2, '16uc1': 2}
_STAMP_PAIR = re.compile(r'^(\d+)_(\d+)$')
_DIGITS = re.compile(r'^\d+$')


def label_array(msg: Any, what: str) -> np.ndarray:
    """Return the HxW uint8/uint16 label ids of a mono8/mono16 Image, or raise SegmentBagError."""
    encoding = str(msg.encoding)
    bpp = _GT_ENCODINGS.get(encoding.lower())
    if bpp is None:
        raise SegmentBagError(f"{what} has encoding '{encoding}'; ground truth must be label "
                              'ids in mono8 or mono16')
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    flat = np.frombuffer(msg.data, dtype=np.uint8)
    if height == 0 or width == 0 or step < width * bpp or flat.size < step * height:
        raise SegmentBagError(f'{what} is malformed ({width}x{height}, step {step}, '
                              f'{flat.size} bytes)')
    rows = np.ascontiguousarray(flat[:step * height].reshape(height, step)[:, :width * bpp])
    if bpp == 1:
        return rows
    return rows.view('>u2' if msg.is_bigendian else '<u2').astype(np.uint16)


class TopicGroundTruth:
    """Ground-truth label (or instance-id) images from a topic of the bag, matched by stamp."""

    def __init__(self, path: Path, topic: str, kind: str = 'ground-truth') -> None:
        """Index the topic's messages by header stamp (the pixels are read on demand)."""
        self.path = Path(path)
        self.topic = topic
        self.kind = kind
        self.description = f'topic {topic}'
        self.reader = open_reader(self.path)
        try:
            topics = self.reader.topics
            if topic not in topics:
                raise SegmentBagError(f"{kind} topic '{topic}' is not in '{self.path}'; "
                                      f'{topic_list(self.reader)}')
            info = topics[topic]
            if info.msgtype != IMAGE:
                types = ', '.join(sorted({c.msgtype for c in info.connections}))
                raise SegmentBagError(f"{kind} topic '{topic}' has type {types}; "
                                      f'expected {IMAGE} (mono8/mono16 ids)')
            self.connections = list(info.connections)
            self.log_times: dict[int, int] = {}
            for log_time, raw in iterate(self.reader, self.connections, self.path, topic):
                msg = self._deserialize(raw)
                label_array(msg, f"{kind} message on '{topic}'")  # validate once
                self.log_times.setdefault(stamp_ns(msg.header), log_time)
        except BaseException:
            self.close()
            raise

    def _deserialize(self, raw: bytes) -> Any:
        try:
            return typestore().deserialize_cdr(raw, IMAGE)
        except Exception as exc:  # noqa: BLE001
            raise SegmentBagError(f"corrupt {self.kind} message on '{self.topic}': "
                                  f'{one_line(exc)}') from None

    def lookup(self, index: int, stamp: int) -> np.ndarray | None:
        """Return the label ids of the message stamped ``stamp``, or None."""
        log_time = self.log_times.get(stamp)
        if log_time is None:
            return None
        for _, raw in iterate(self.reader, self.connections, self.path, self.topic,
                              start=log_time, stop=log_time + 1):
            msg = self._deserialize(raw)
            if stamp_ns(msg.header) == stamp:
                return label_array(msg, f"{self.kind} message on '{self.topic}'")
        return None

    def close(self) -> None:
        """Close the reader."""
        if self.reader.is_open:
            self.reader.close()


class DirGroundTruth:
    """Ground-truth label PNGs in a directory, named by stamp or frame index (see the CLI)."""

    def __init__(self, directory: Path) -> None:
        """Index the PNG files of ``directory`` by stamp and by frame index."""
        self.directory = Path(directory)
        self.description = f'directory {self.directory}'
        if not self.directory.is_dir():
            raise SegmentBagError(f"ground-truth directory '{self.directory}' does not exist")
        self.by_stamp: dict[int, Path] = {}
        self.by_index: dict[int, Path] = {}
        for path in sorted(self.directory.iterdir()):
            if path.suffix.lower() != '.png' or not path.is_file():
                continue
            stem = path.stem
            pair = _STAMP_PAIR.match(stem)
            if pair and int(pair.group(2)) < 1_000_000_000:
                key = int(pair.group(1)) * 1_000_000_000 + int(pair.group(2))
                table = self.by_stamp
            elif _DIGITS.match(stem):
                key = int(stem)
                table = self.by_stamp if len(stem) >= 10 else self.by_index
            else:
                continue
            if key in table:
                raise SegmentBagError(f"ground-truth files '{table[key].name}' and "
                                      f"'{path.name}' name the same frame")
            table[key] = path
        if not self.by_stamp and not self.by_index:
            raise SegmentBagError(
                f"ground-truth directory '{self.directory}' has no PNG named <index>.png, "
                '<sec>_<nanosec>.png or <stamp_ns>.png')

    def lookup(self, index: int, stamp: int) -> np.ndarray | None:
        """Return the label ids of the frame (stamp match first, then index), or None."""
        path = self.by_stamp.get(stamp) or self.by_index.get(index)
        if path is None:
            return None
        labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if labels is None:
            raise SegmentBagError(f"cannot read ground-truth image '{path}'")
        if labels.ndim == 3:
            if labels.shape[2] == 3 and (labels == labels[:, :, :1]).all():
                labels = labels[:, :, 0]
            else:
                raise SegmentBagError(
                    f"ground-truth image '{path}' has {labels.shape[2]} colour channels; "
                    'expected single-channel label ids (e.g. *_labelTrainIds.png)')
        if labels.dtype not in (np.uint8, np.uint16):
            raise SegmentBagError(f"ground-truth image '{path}' has pixel type {labels.dtype}; "
                                  'expected 8 or 16 bit label ids')
        return labels

    def close(self) -> None:
        """Nothing to release."""


class GroundTruth:
    """Either source, looked up by (index, stamp), with labelIds mapped to train ids."""

    def __init__(self, source: TopicGroundTruth | DirGroundTruth, labelids: bool,
                 instances: TopicGroundTruth | None = None) -> None:
        """Wrap ``source`` and, for panoptic ground truth, its ``instances`` topic."""
        self.source = source
        self.labelids = labelids
        self.instances = instances
        self.description = source.description
        self.instances_description = None if instances is None else instances.description

    def lookup(self, index: int, stamp: int) -> np.ndarray | None:
        """Return the train ids of a frame, or None when it has no ground truth."""
        truth = self.source.lookup(index, stamp)
        if truth is not None and self.labelids:
            truth = labelids_to_trainids(truth)
        return truth

    def lookup_instances(self, index: int, stamp: int) -> np.ndarray | None:
        """Return the uint16 instance ids of a frame, or None (no instance topic or message)."""
        if self.instances is None:
            return None
        ids = self.instances.lookup(index, stamp)
        return None if ids is None else ids.astype(np.uint16, copy=False)

    def close(self) -> None:
        """Release the sources."""
        self.source.close()
        if self.instances is not None:
            self.instances.close()


def open_ground_truth(bag: Path, topic: str | None, directory: Path | None,
                      labelids: bool, instances_topic: str | None = None) -> GroundTruth | None:
    """Open the ground truth the options name (a topic of ``bag`` or a directory), or None."""
    if topic:
        labels = TopicGroundTruth(bag, topic)
        try:
            instances = None if not instances_topic else \
                TopicGroundTruth(bag, instances_topic, 'instance ground-truth')
        except BaseException:
            labels.close()
            raise
        return GroundTruth(labels, labelids, instances)
    if directory:
        return GroundTruth(DirGroundTruth(directory), labelids)
    return None
