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

"""Sample bags with instance ground truth (mono16 ids beside the image and the labels)."""

from pathlib import Path

import cv2
from mask2former_ros_fixtures.sample_bag import (
    INSTANCES_GT_TOPIC, typestore, write_gt_dir, write_sample_bag)
from mask2former_ros_fixtures.synthetic import panoptic_scene_stream, scene_stream
import numpy as np
import pytest
from rosbags.rosbag2 import Reader

HEIGHT, WIDTH = 72, 128


def _read(path: Path) -> dict[str, list]:
    """Return the deserialised messages of a bag by topic, in log order."""
    messages: dict[str, list] = {}
    with Reader(path) as reader:
        for conn, _, raw in reader.messages():
            messages.setdefault(conn.topic, []).append(
                typestore().deserialize_cdr(raw, conn.msgtype))
    return messages


def _pixels(msg, dtype) -> np.ndarray:
    """Return a mono8/mono16 little-endian Image as an (H, W) array."""
    assert not msg.is_bigendian
    row = np.asarray(msg.data, dtype=np.uint8).reshape(msg.height, msg.step)
    return row[:, :msg.width * np.dtype(dtype).itemsize].copy().view(f'<{np.dtype(dtype).char}')


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_bag_with_instances_holds_the_panoptic_scenes(tmp_path, storage):
    """Instance ids and labels in the bag are the panoptic scenes', with the image's headers."""
    info = write_sample_bag(tmp_path / 'bag', frames=4, height=HEIGHT, width=WIDTH, seed=3,
                            storage=storage, compressed_topic=None, instances=True)
    assert info['instances'] and info['topics'][INSTANCES_GT_TOPIC] == 'sensor_msgs/msg/Image'
    assert info['counts'][INSTANCES_GT_TOPIC] == 4
    messages = _read(Path(info['path']))
    scenes = list(panoptic_scene_stream(3, 4, HEIGHT, WIDTH))
    for i, (rgb, labels, instances) in enumerate(scenes):
        image = messages['/camera/image_raw'][i]
        gt = messages['/camera/labels_gt'][i]
        ids = messages[INSTANCES_GT_TOPIC][i]
        assert ids.encoding == 'mono16' and gt.encoding == 'mono8'
        for msg in (gt, ids):
            assert msg.header.stamp == image.header.stamp
            assert msg.header.frame_id == image.header.frame_id
        np.testing.assert_array_equal(
            np.asarray(image.data).reshape(HEIGHT, WIDTH, 3), rgb)
        np.testing.assert_array_equal(_pixels(gt, np.uint8), labels)
        np.testing.assert_array_equal(_pixels(ids, np.uint16), instances)
    assert any(instances.max() > 1 for _, _, instances in scenes)
    # The label PNGs of the same bag are written from the same (panoptic) scenes.
    paths = write_gt_dir(tmp_path / 'gt', info)
    for path, (_, labels, _) in zip(paths, scenes, strict=True):
        np.testing.assert_array_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), labels)


def test_bag_without_instances_is_unchanged(tmp_path):
    """By default there is no instance topic and the scenes are make_scene's, as before."""
    info = write_sample_bag(tmp_path / 'bag', frames=3, height=HEIGHT, width=WIDTH, seed=5,
                            compressed_topic=None)
    assert not info['instances']
    assert INSTANCES_GT_TOPIC not in info['topics']
    messages = _read(Path(info['path']))
    assert set(messages) == {'/camera/image_raw', '/camera/labels_gt'}
    for msg, (_, labels) in zip(messages['/camera/labels_gt'],
                                scene_stream(5, 3, HEIGHT, WIDTH), strict=True):
        np.testing.assert_array_equal(_pixels(msg, np.uint8), labels)


def test_instance_topic_name_must_be_distinct(tmp_path):
    """The instance topic cannot share a name with another topic of the bag."""
    with pytest.raises(ValueError, match='distinct'):
        write_sample_bag(tmp_path / 'bag', frames=1, height=HEIGHT, width=WIDTH,
                         instances=True, instances_topic='/camera/labels_gt')


@pytest.mark.parametrize('kind', ['crossing', 'occlusion'])
def test_sequence_bags_keep_one_instance_id_per_object(tmp_path, kind):
    from mask2former_ros_fixtures.sequences import street_sequence
    info = write_sample_bag(tmp_path / 'bag', frames=8, height=96, width=160, seed=4,
                            compressed_topic=None, sequence=kind, rate_hz=5.0)
    assert info['instances'] and info['sequence'] == kind
    messages = _read(Path(info['path']))
    seq = street_sequence(4, 8, 96, 160, 5.0, occlusion=kind == 'occlusion')
    classes: dict[int, set] = {}
    for i in range(8):
        ids = _pixels(messages[INSTANCES_GT_TOPIC][i], np.uint16)
        labels = _pixels(messages['/camera/labels_gt'][i], np.uint8)
        np.testing.assert_array_equal(ids, seq.instances[i])
        image = messages['/camera/image_raw'][i]
        np.testing.assert_array_equal(np.asarray(image.data).reshape(96, 160, 3), seq.rgb[i])
        for obj in set(np.unique(ids).tolist()) - {0}:
            classes.setdefault(obj, set()).update(np.unique(labels[ids == obj]).tolist())
    # Ids persist: each is one mover of one class, most of them in every frame.
    assert all(len(c) == 1 for c in classes.values()), classes
    assert set(classes) == set(range(1, len(seq.movers) + 1)) - {
        i + 1 for i in range(len(seq.movers)) if np.isnan(seq.visible[:, i]).all()}
    if kind == 'occlusion':
        assert any(seq.hidden)  # the walker behind the pillar
    paths = write_gt_dir(tmp_path / 'gt', info)
    np.testing.assert_array_equal(cv2.imread(str(paths[5]), cv2.IMREAD_UNCHANGED), seq.labels[5])
