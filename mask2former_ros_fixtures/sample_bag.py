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
Write rosbag2 bags of synthetic street scenes with ground truth (no ROS installation needed).

The bags hold, per frame and with identical headers, a ``sensor_msgs/msg/Image`` of the scene
(any encoding :func:`~mask2former_ros_fixtures.image_encoding.encode_rgb` supports),
optionally its
``sensor_msgs/msg/CompressedImage`` (JPEG) and a mono8 ground-truth label image in Cityscapes
train ids (or labelIds), and with ``instances`` a mono16 instance-id image (0 = stuff, cars and
persons 1..N within a frame; with ``sequence`` one id per car or person for the whole bag).
Scenes come from
:func:`mask2former_ros_fixtures.synthetic.make_scene` (with ``instances``:
:func:`~mask2former_ros_fixtures.synthetic.make_panoptic_scene`) with a
generator seeded by ``seed``, so a bag and :func:`write_gt_dir` agree frame by frame.
"""

from pathlib import Path
from typing import Any, Iterator, Sequence

import cv2
from mask2former_ros.core.cityscapes import trainids_to_labelids
from mask2former_ros.offline.bag_io import (  # noqa: F401 - re-exported for the tests
    COMPRESSED_IMAGE, IMAGE, image_message, labels_message, open_writer, rgb_message,
    storage_plugin, STORAGES, typestore)
from mask2former_ros_fixtures.image_encoding import encode_rgb
from mask2former_ros_fixtures.sequences import street_sequence
from mask2former_ros_fixtures.synthetic import make_panoptic_scene, make_scene
import numpy as np

STRING = 'std_msgs/msg/String'
INSTANCES_GT_TOPIC = '/camera/instances_gt'
DEFAULT_START_NS = 1_700_000_000_000_000_000
GT_DIR_NAMINGS = ('index', 'stamp', 'stamp_ns')
SEQUENCES = ('crossing', 'occlusion')  # street_sequence without / with a full occlusion


def make_header(stamp_ns: int, frame_id: str) -> Any:
    """Return a rosbags ``std_msgs/msg/Header`` for a stamp in nanoseconds."""
    types = typestore().types
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return types['std_msgs/msg/Header'](
        stamp=types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec), frame_id=frame_id)


def jpeg_message(rgb: np.ndarray, header: Any, quality: int = 95) -> Any:
    """Return a JPEG ``sensor_msgs/msg/CompressedImage`` as image_transport's plugin writes."""
    ok, encoded = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError('OpenCV failed to encode a JPEG')
    return typestore().types[COMPRESSED_IMAGE](
        header=header, format='rgb8; jpeg compressed bgr8', data=encoded.reshape(-1))


def sample_stamps(frames: int, rate_hz: float, start_ns: int = DEFAULT_START_NS) -> list[int]:
    """Return the header stamps (ns) of ``frames`` frames at ``rate_hz`` from ``start_ns``."""
    if rate_hz <= 0:
        raise ValueError(f'rate_hz must be positive, got {rate_hz}')
    return [int(start_ns) + round(i * 1e9 / rate_hz) for i in range(frames)]


def _scene(rng: np.random.Generator, height: int, width: int,
           instances: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Return ``(rgb, labels, instance ids or None)`` of the next scene of a sample bag."""
    if instances:
        return make_panoptic_scene(rng, height, width)
    rgb, labels = make_scene(rng, height, width)
    return rgb, labels, None


def _scenes(seed: int, frames: int, height: int, width: int, instances: bool,
            sequence: str | None,
            rate_hz: float) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Yield the ``(rgb, labels, ids)`` of a sample bag's frames (see write_sample_bag)."""
    if sequence is not None:
        if sequence not in SEQUENCES:
            raise ValueError(f"sequence must be one of {', '.join(SEQUENCES)}, got {sequence!r}")
        seq = street_sequence(seed, frames, height, width, rate_hz,
                              occlusion=sequence == 'occlusion')
        yield from zip(seq.rgb, seq.labels, seq.instances, strict=True)
        return
    rng = np.random.default_rng(seed)
    for _ in range(frames):
        yield _scene(rng, height, width, instances)


def write_sample_bag(path: Path, frames: int = 20, height: int = 240, width: int = 320,
                     rate_hz: float = 10.0, storage: str = 'mcap',
                     image_topic: str | None = '/camera/image_raw', encoding: str = 'rgb8',
                     compressed_topic: str | None = '/camera/image_raw/compressed',
                     gt_topic: str | None = '/camera/labels_gt', seed: int = 0,
                     frame_id: str = 'camera_optical_frame',
                     start_ns: int = DEFAULT_START_NS, log_delay_ns: int = 2_000_000,
                     gt_labelids: bool = False, corrupt_frames: Sequence[int] = (),
                     string_topic: str | None = None, jpeg_quality: int = 95,
                     instances: bool = False,
                     instances_topic: str = INSTANCES_GT_TOPIC,
                     sequence: str | None = None) -> dict:
    """
    Write a rosbag2 bag of ``frames`` synthetic scenes and return a description of it.

    Every frame's messages share one header (stamp ``start_ns + i / rate_hz``, ``frame_id``)
    and are logged at ``stamp + log_delay_ns`` (a recorder receives after the capture).
    ``gt_topic`` holds mono8 train ids (Cityscapes labelIds with ``gt_labelids``).
    ``instances`` draws panoptic scenes and adds ``instances_topic``: mono16 instance ids
    (0 = stuff, 1..N the frame's cars and persons), same header as the image and labels.
    ``sequence`` ('crossing' or 'occlusion', implies ``instances``) draws one street whose
    cars and persons move (:func:`~mask2former_ros_fixtures.sequences.street_sequence`, a
    full occlusion in 'occlusion'): their instance ids persist across frames, the ground truth
    of tracking. ``corrupt_frames`` lists frame indices whose image data is truncated (raw)
    or cut in half (JPEG). ``string_topic`` adds a ``std_msgs/msg/String`` per frame. The
    returned dict has ``path``, ``storage``, ``frames``, ``height``, ``width``, ``seed``,
    ``frame_id``, ``instances`` (whether the scenes are panoptic), ``sequence``, ``rate_hz``,
    ``topics`` (name -> type), ``counts`` (name -> messages), ``stamps`` and ``log_times`` (ns).
    """
    encode_rgb(np.zeros((2, 2, 3), np.uint8), encoding)  # fail before writing anything
    instances = instances or sequence is not None
    path = Path(path)
    types = typestore().types
    stamps = sample_stamps(frames, rate_hz, start_ns)
    log_times = [stamp + int(log_delay_ns) for stamp in stamps]
    wanted = [(image_topic, IMAGE), (compressed_topic, COMPRESSED_IMAGE), (gt_topic, IMAGE),
              (instances_topic if instances else None, IMAGE), (string_topic, STRING)]
    topics = {name: msgtype for name, msgtype in wanted if name}
    if len(topics) != sum(1 for name, _ in wanted if name):
        raise ValueError('topic names must be distinct')
    counts = dict.fromkeys(topics, 0)
    corrupt = set(corrupt_frames)
    scenes = _scenes(seed, frames, height, width, instances, sequence, rate_hz)
    writer = open_writer(path, storage)
    try:
        conns = {name: writer.add_connection(name, msgtype, typestore=typestore())
                 for name, msgtype in topics.items()}
        for index, (stamp, log_time) in enumerate(zip(stamps, log_times, strict=True)):
            rgb, labels, ids = next(scenes)
            header = make_header(stamp, frame_id)
            out: list[tuple[str, Any]] = []
            if image_topic:
                data, step = encode_rgb(rgb, encoding)
                if index in corrupt:
                    data = data[:len(data) // 2]
                out.append((image_topic, image_message(header, height, width, encoding, step,
                                                       data)))
            if compressed_topic:
                msg = jpeg_message(rgb, header, jpeg_quality)
                if index in corrupt:
                    msg.data = msg.data[:msg.data.size // 2].copy()
                out.append((compressed_topic, msg))
            if gt_topic:
                gt = trainids_to_labelids(labels) if gt_labelids else labels
                out.append((gt_topic, labels_message(gt, header)))
            if ids is not None:
                out.append((instances_topic, labels_message(ids, header)))
            if string_topic:
                out.append((string_topic, types[STRING](data=f'frame {index}')))
            for name, msg in out:
                raw = typestore().serialize_cdr(msg, topics[name])
                writer.write(conns[name], log_time, raw)
                counts[name] += 1
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return {'path': str(path), 'storage': storage, 'frames': frames, 'height': height,
            'width': width, 'seed': seed, 'frame_id': frame_id, 'encoding': encoding,
            'instances': bool(instances), 'sequence': sequence, 'rate_hz': rate_hz,
            'topics': topics, 'counts': counts, 'stamps': stamps, 'log_times': log_times}


def write_gt_dir(directory: Path, info: dict, naming: str = 'index',
                 labelids: bool = False) -> list[Path]:
    """
    Write the ground truth of a :func:`write_sample_bag` bag as label PNGs; return their paths.

    ``naming``: ``index`` -> ``000012.png`` (frame index in the bag), ``stamp`` ->
    ``<sec>_<nanosec>.png`` (nanosec zero-padded to 9 digits), ``stamp_ns`` ->
    ``<stamp in ns>.png``. Values are train ids, or Cityscapes labelIds with ``labelids``.
    For a bag written with ``instances`` the scenes are its panoptic ones.
    """
    if naming not in GT_DIR_NAMINGS:
        raise ValueError(f'naming must be one of {", ".join(GT_DIR_NAMINGS)}, got {naming!r}')
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    scenes = _scenes(info['seed'], len(info['stamps']), info['height'], info['width'],
                     info.get('instances', False), info.get('sequence'),
                     info.get('rate_hz', 10.0))
    paths = []
    for index, stamp in enumerate(info['stamps']):
        _, labels, _ = next(scenes)
        if naming == 'index':
            name = f'{index:06d}.png'
        elif naming == 'stamp':
            sec, nanosec = divmod(stamp, 1_000_000_000)
            name = f'{sec}_{nanosec:09d}.png'
        else:
            name = f'{stamp}.png'
        target = directory / name
        if not cv2.imwrite(str(target), trainids_to_labelids(labels) if labelids else labels):
            raise OSError(f'cannot write {target}')
        paths.append(target)
    return paths
