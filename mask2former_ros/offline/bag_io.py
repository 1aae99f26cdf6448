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

"""rosbag2 reading and writing with ``rosbags``: input topic, output bag, message builders."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
from mask2former_ros.core.render.instance_render import colorize_instances
from mask2former_ros.core.render.palette import overlay
from mask2former_ros.messages.image_conversion import compressed_to_rgb, image_to_rgb
from mask2former_ros.messages.serialized_image import (
    COMPRESSED_IMAGE, IMAGE, read_image, typestore)
from mask2former_ros.offline.errors import one_line, OUTPUT_KINDS, SegmentBagError
import numpy as np
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)
STORAGES = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
BAG_SUFFIXES = ('.mcap', '.db3')
JPEG_FORMAT = 'rgb8; jpeg compressed bgr8'  # image_transport's format field for rgb8 as JPEG
PNG_LEVEL = 1  # zlib level of PNG label images: label maps compress well at the fastest level


def output_topic(prefix: str, kind: str, compressed: bool = False) -> str:
    """Return ``<prefix>/<kind>``, or ``<prefix>/<kind>/compressed`` (image_transport's name)."""
    return f'{prefix}/{kind}/compressed' if compressed else f'{prefix}/{kind}'


def storage_plugin(storage: str) -> StoragePlugin:
    """Return the rosbags storage plugin for ``'mcap'`` or ``'sqlite3'``."""
    try:
        return STORAGES[storage]
    except KeyError:
        raise ValueError(f"unknown storage {storage!r}: use 'mcap' or 'sqlite3'") from None


def open_writer(path: Path, storage: str = 'mcap') -> Writer:
    """Open a new rosbag2 (format version 9) directory bag for writing."""
    writer = Writer(Path(path), version=Writer.VERSION_LATEST,
                    storage_plugin=storage_plugin(storage))
    writer.open()
    return writer


def image_message(header: Any, height: int, width: int, encoding: str, step: int,
                  data: np.ndarray | bytes, big_endian: bool = False) -> Any:
    """Return a rosbags ``sensor_msgs/msg/Image``."""
    flat = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data
    return typestore().types[IMAGE](
        header=header, height=height, width=width, encoding=encoding,
        is_bigendian=int(big_endian), step=step, data=np.ascontiguousarray(flat).reshape(-1))


def labels_message(labels: np.ndarray, header: Any) -> Any:
    """Return a mono8 (uint8) or mono16 (little endian) label ``Image``, as labels_to_image."""
    if labels.ndim != 2 or labels.dtype.kind != 'u' or labels.dtype.itemsize > 2:
        raise ValueError(f'expected an HxW uint8 or uint16 label map, got {labels.dtype} '
                         f'{labels.shape}')
    height, width = labels.shape
    if labels.dtype.itemsize == 1:
        return image_message(header, height, width, 'mono8', width, labels.reshape(-1))
    wide = np.ascontiguousarray(labels, dtype='<u2').view(np.uint8)
    return image_message(header, height, width, 'mono16', width * 2, wide.reshape(-1))


def rgb_message(rgb: np.ndarray, header: Any) -> Any:
    """Return an rgb8 ``Image`` of an HxWx3 uint8 array."""
    height, width = rgb.shape[:2]
    return image_message(header, height, width, 'rgb8', width * 3,
                         np.ascontiguousarray(rgb).reshape(-1))


def _compressed(header: Any, fmt: str, ext: str, image: np.ndarray, params: list[int]) -> Any:
    ok, data = cv2.imencode(ext, image, params)
    if not ok:
        raise ValueError(f'OpenCV failed to encode a {image.shape} {image.dtype} image as {ext}')
    return typestore().types[COMPRESSED_IMAGE](header=header, format=fmt, data=data.reshape(-1))


def jpeg_message(rgb: np.ndarray, header: Any, quality: int = 90) -> Any:
    """Return a ``CompressedImage`` of an HxWx3 uint8 RGB array as JPEG (as image_transport)."""
    return _compressed(header, JPEG_FORMAT, '.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                       [cv2.IMWRITE_JPEG_QUALITY, int(quality)])


def png_labels_message(labels: np.ndarray, header: Any) -> Any:
    """Return a label map as lossless PNG ``CompressedImage`` (``mono8; png compressed mono8``)."""
    if labels.ndim != 2 or labels.dtype not in (np.uint8, np.uint16):
        raise ValueError(f'expected an HxW uint8 or uint16 label map, got {labels.dtype} '
                         f'{labels.shape}')
    encoding = 'mono8' if labels.dtype == np.uint8 else 'mono16'
    return _compressed(header, f'{encoding}; png compressed {encoding}', '.png', labels,
                       [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL])


def _image_topics(reader: Reader) -> list[str]:
    return sorted(name for name, info in reader.topics.items() if info.msgtype in IMAGE_TYPES)


def topic_list(reader: Reader) -> str:
    """Describe the image topics of a bag for an error message."""
    topics = _image_topics(reader)
    return f"image topics in the bag: {', '.join(topics)}" if topics else \
        'the bag has no sensor_msgs/msg/Image or CompressedImage topic'


def open_reader(path: Path) -> Reader:
    """Open a rosbag2 bag (directory, .mcap or .db3) or raise SegmentBagError."""
    path = Path(path)
    if not path.exists():
        raise SegmentBagError(f"input bag '{path}' does not exist")
    try:
        reader = Reader(path)
        reader.open()
    except FileNotFoundError:
        raise SegmentBagError(f"'{path}' is not a rosbag2 bag (no metadata.yaml)") from None
    except PermissionError as exc:
        raise SegmentBagError(f"cannot read input bag '{path}': {exc.strerror}") from None
    except Exception as exc:  # noqa: BLE001 - rosbags/apsw/mcap raise many types on bad files
        raise SegmentBagError(f"cannot read input bag '{path}' (corrupt or truncated?): "
                              f'{one_line(exc)}') from None
    return reader


def iterate(reader: Reader, connections: list, path: Path, topic: str,
            start: int | None = None, stop: int | None = None) -> Iterator[tuple[int, bytes]]:
    """Yield (log time, raw message) of ``connections``; read errors become SegmentBagError."""
    messages = reader.messages(connections, start=start, stop=stop)
    while True:
        try:
            _, log_time, raw = next(messages)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 - a corrupt chunk, a truncated file, ...
            raise SegmentBagError(f"cannot read '{topic}' from '{path}' (corrupt or "
                                  f'truncated?): {one_line(exc)}') from None
        yield log_time, raw


class InputBag:
    """The image topic of the input bag: type detection, counting, iteration and decoding."""

    def __init__(self, path: Path, topic: str) -> None:
        """Open ``path`` and check that ``topic`` exists and carries images."""
        self.path = Path(path)
        self.topic = topic
        self.reader = open_reader(self.path)
        topics = self.reader.topics
        problem = None
        if topic not in topics:
            problem = f"topic '{topic}' is not in '{self.path}'; {topic_list(self.reader)}"
        elif topics[topic].msgtype not in IMAGE_TYPES:
            types = ', '.join(sorted({c.msgtype for c in topics[topic].connections}))
            problem = f"topic '{topic}' has type {types}; expected {IMAGE} or {COMPRESSED_IMAGE}"
        if problem:
            self.close()
            raise SegmentBagError(problem)
        info = topics[topic]
        self.msgtype: str = info.msgtype
        self.compressed = self.msgtype == COMPRESSED_IMAGE
        self.connections = list(info.connections)
        self.count = int(info.msgcount)

    def frames(self, limit: int | None = None) -> Iterator[tuple[int, int, bytes]]:
        """Yield (index, log time in ns, raw CDR bytes) of the topic's messages in bag order."""
        if limit is not None and limit < 1:
            return
        for index, (log_time, raw) in enumerate(
                iterate(self.reader, self.connections, self.path, self.topic)):
            yield index, log_time, raw
            if limit is not None and index + 1 >= limit:
                return

    def deserialize(self, raw: bytes) -> Any:
        """Deserialise one raw message of the topic."""
        return read_image(raw, self.compressed)

    def to_rgb(self, msg: Any) -> np.ndarray:
        """Decode an Image or CompressedImage message to HxWx3 uint8 RGB (numpy/cv2 only)."""
        return compressed_to_rgb(msg) if self.compressed else image_to_rgb(msg)

    def close(self) -> None:
        """Close the reader."""
        if self.reader.is_open:
            self.reader.close()


class OutputBag:
    """The output bag: label, colour and overlay images (and optionally the input topic)."""

    def __init__(self, path: Path, storage: str, prefix: str, input_bag: InputBag | None,
                 custom: dict[str, str], kinds: tuple[str, ...] = OUTPUT_KINDS,
                 compress: tuple[str, ...] = (), jpeg_quality: int = 90,
                 instances: bool = False) -> None:
        """
        Create the bag and a connection per output kind (labels, color, overlay).

        Kinds in ``compress`` are written as ``CompressedImage`` on ``<prefix>/<kind>/compressed``:
        labels as lossless PNG, colour and overlay as JPEG of ``jpeg_quality``. With
        ``instances`` (a panoptic or instance task) and the labels chosen, ``<prefix>/instances``
        also holds each frame's instance ids (raw mono16, as the node's ``instances``).
        """
        self.path = path
        if instances and 'labels' in kinds:
            kinds = (*kinds, 'instances')
        self.kinds = kinds
        self.compress = frozenset(compress) & set(kinds)
        self.jpeg_quality = jpeg_quality
        self.msgtypes = {kind: COMPRESSED_IMAGE if kind in self.compress else IMAGE
                         for kind in kinds}
        self.writer = open_writer(path, storage)
        try:
            for key, value in custom.items():
                self.writer.set_custom_data(key, value)
            self.connections = {
                kind: self.writer.add_connection(
                    output_topic(prefix, kind, kind in self.compress), self.msgtypes[kind],
                    typestore=typestore())
                for kind in kinds}
            self.input_connection = None
            if input_bag is not None:
                conn = input_bag.connections[0]
                if conn.msgdef.data and conn.digest:
                    self.input_connection = self.writer.add_connection(
                        input_bag.topic, conn.msgtype, msgdef=conn.msgdef.data,
                        rihs01=conn.digest)
                else:
                    self.input_connection = self.writer.add_connection(
                        input_bag.topic, conn.msgtype, typestore=typestore())
        except BaseException:
            self.writer.abort()
            raise

    def _rgb(self, kind: str, rgb: np.ndarray, header: Any) -> Any:
        if kind in self.compress:
            return jpeg_message(rgb, header, self.jpeg_quality)
        return rgb_message(rgb, header)

    def write_frame(self, log_time: int, header: Any, rgb: np.ndarray, labels: np.ndarray,
                    palette: np.ndarray, alpha: float,
                    instances: np.ndarray | None = None) -> None:
        """
        Write the chosen outputs of one frame: labels, colour mask, overlay.

        With ``instances`` (uint16 ids of a panoptic or instance result) the colour mask and the
        overlay shade and outline instances as the node does, and the instance ids are written
        where the bag was opened for them.
        """
        messages = {}
        if 'labels' in self.kinds:
            messages['labels'] = png_labels_message(labels, header) \
                if 'labels' in self.compress else labels_message(labels, header)
        if 'instances' in self.kinds and instances is not None:
            messages['instances'] = labels_message(instances, header)
        if 'color' in self.kinds or 'overlay' in self.kinds:
            color = colorize_instances(labels, instances, palette)
            if 'color' in self.kinds:
                messages['color'] = self._rgb('color', color, header)
            if 'overlay' in self.kinds:
                messages['overlay'] = self._rgb(
                    'overlay', overlay(rgb, labels, palette, alpha, color=color), header)
        raws = {kind: typestore().serialize_cdr(msg, self.msgtypes[kind])
                for kind, msg in messages.items()}
        for kind, raw in raws.items():
            self.writer.write(self.connections[kind], log_time, raw)

    def copy_input(self, log_time: int, raw: bytes) -> None:
        """Copy one raw input message (with --include-input)."""
        if self.input_connection is not None:
            self.writer.write(self.input_connection, log_time, raw)

    def close(self) -> None:
        """Write the index and metadata; the bag is readable afterwards."""
        self.writer.close()


def is_bag(path: Path) -> bool:
    """Return True for a rosbag2 directory (with metadata.yaml) or a .mcap/.db3 file."""
    path = Path(path)
    if path.is_dir():
        return (path / 'metadata.yaml').is_file()
    return path.is_file() and path.suffix in BAG_SUFFIXES


def find_bags(root: Path) -> list[Path]:
    """
    Return the bags under a folder in sorted order.

    A directory holding ``metadata.yaml`` is one bag (not searched further); ``.mcap`` and
    ``.db3`` files elsewhere are bags of their own.
    """
    found: list[Path] = []
    for entry in sorted(Path(root).iterdir()):
        if entry.name.startswith('.'):
            continue
        if entry.is_dir():
            found.extend([entry] if is_bag(entry) else find_bags(entry))
        elif is_bag(entry):
            found.append(entry)
    return found


def bag_frame_size(path: Path, topic: str) -> str:
    """Return 'HxW' of the first frame of ``topic`` in a bag ('' if it has none readable)."""
    bag = InputBag(path, topic)
    try:
        for _, _, raw in bag.frames(limit=1):
            try:
                msg = bag.deserialize(raw)
                height, width = (bag.to_rgb(msg).shape[:2] if bag.compressed
                                 else (int(msg.height), int(msg.width)))
            except Exception:  # noqa: BLE001 - a bad first frame is reported while running
                return ''
            return f'{height}x{width}'
    finally:
        bag.close()
    return ''
