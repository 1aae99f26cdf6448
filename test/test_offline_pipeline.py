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

"""segment_bag's prefetch and writer threads: torch on one thread, same outputs, clean errors."""

import threading

from mask2former_ros.core.backends.torch_engine import SegmentationEngine
from mask2former_ros.core.engine_config import EngineConfig
from mask2former_ros.core.results import InferenceOutOfMemoryError, SegmentationResult
from mask2former_ros.offline import segment_bag, SegmentBagError
from mask2former_ros.offline.pipeline import run_pipeline
from mask2former_ros_fixtures.sample_bag import typestore, write_gt_dir, write_sample_bag
import numpy as np
import pytest
from rosbags.rosbag2 import Reader

HEIGHT, WIDTH = 144, 256
RAW, GT = '/camera/image_raw', '/camera/labels_gt'
NON_FINITE = 'non-finite model output (NaN/inf logits)'


@pytest.fixture(scope='module')
def engine(tiny_model_dir):
    return SegmentationEngine(EngineConfig(model=str(tiny_model_dir)))


def labels_of(path) -> list[tuple[int, bytes]]:
    with Reader(path) as reader:
        conns = [c for c in reader.connections if c.topic == '/segmentation/labels']
        return [(t, bytes(typestore().deserialize_cdr(raw, c.msgtype).data))
                for c, t, raw in reader.messages(conns)]


class RecordingEngine:
    """The real engine; records the threads of segment_batch and can fail on call N."""

    def __init__(self, engine: SegmentationEngine, fail_on: int | None = None,
                 failure: BaseException | str = RuntimeError('simulated device failure')
                 ) -> None:
        self.engine, self.fail_on, self.failure = engine, fail_on, failure
        self.threads: set[str] = set()
        self.calls = 0

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def segment_batch(self, images):
        self.threads.add(threading.current_thread().name)
        self.calls += 1
        if self.calls == self.fail_on:
            if isinstance(self.failure, str):  # the engine's per-frame failure result
                return [SegmentationResult(None, error=self.failure)]
            raise self.failure
        return self.engine.segment_batch(images)


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_prefetch_keeps_torch_on_the_calling_thread_and_matches_one_thread(engine, tmp_path,
                                                                           storage):
    info = write_sample_bag(tmp_path / 'bag', frames=6, height=HEIGHT, width=WIDTH, seed=5,
                            storage=storage, compressed_topic=None, corrupt_frames=[2])
    runs = {}
    for prefetch in (0, 4):
        recording = RecordingEngine(engine)
        runs[prefetch] = segment_bag(info['path'], RAW, engine=recording, gt_topic=GT,
                                     output=tmp_path / f'out{prefetch}', prefetch=prefetch,
                                     output_storage=storage, include_input=True,
                                     log=lambda _: None)
        assert recording.threads == {threading.current_thread().name}
        assert recording.calls == 5  # the corrupt frame never reaches the model
    assert runs[4]['frames'] == runs[0]['frames'] == {
        'total': 6, 'processed': 5, 'dropped': 0, 'bad': 1, 'remaining': 0}
    assert runs[4]['metrics']['confusion_matrix'] == runs[0]['metrics']['confusion_matrix']
    assert labels_of(tmp_path / 'out4') == labels_of(tmp_path / 'out0')
    assert len(labels_of(tmp_path / 'out4')) == 5


def test_inference_failure_keeps_the_frames_before_it(engine, tmp_path):
    info = write_sample_bag(tmp_path / 'bag', frames=8, height=HEIGHT, width=WIDTH,
                            compressed_topic=None, gt_topic=None)
    with pytest.raises(SegmentBagError) as raised:
        segment_bag(info['path'], RAW, engine=RecordingEngine(engine, fail_on=4),
                    output=tmp_path / 'out', log=lambda _: None)
    assert raised.value.exit_code == 1
    assert 'inference failed on frame 3' in str(raised.value)
    assert raised.value.summary['frames']['processed'] == 3
    written = labels_of(tmp_path / 'out')  # closed properly: readable
    assert [t for t, _ in written] == info['log_times'][:3]


@pytest.mark.parametrize('failure', [NON_FINITE, InferenceOutOfMemoryError('out of memory')])
def test_a_frame_the_engine_fails_alone_is_bad_and_the_run_goes_on(engine, tmp_path, failure):
    info = write_sample_bag(tmp_path / 'bag', frames=4, height=HEIGHT, width=WIDTH,
                            compressed_topic=None, gt_topic=None)
    lines: list[str] = []
    summary = segment_bag(info['path'], RAW, engine=RecordingEngine(engine, 2, failure),
                          output=tmp_path / 'out', log=lines.append)
    assert summary['frames'] == {'total': 4, 'processed': 3, 'dropped': 0, 'bad': 1,
                                 'remaining': 0}
    assert [line for line in lines if 'bad frame 1' in line], lines
    written = labels_of(tmp_path / 'out')
    assert [t for t, _ in written] == [info['log_times'][i] for i in (0, 2, 3)]


def test_ground_truth_error_of_a_later_frame_stops_the_run(engine, tmp_path):
    info = write_sample_bag(tmp_path / 'bag', frames=6, height=HEIGHT, width=WIDTH,
                            compressed_topic=None, gt_topic=None)
    write_gt_dir(tmp_path / 'gt', info, 'index')
    import cv2
    cv2.imwrite(str(tmp_path / 'gt' / '000003.png'), np.zeros((8, 8), np.uint8))
    with pytest.raises(SegmentBagError) as raised:
        segment_bag(info['path'], RAW, engine=engine, gt_dir=tmp_path / 'gt',
                    output=tmp_path / 'out', log=lambda _: None)
    assert raised.value.exit_code == 2
    assert 'ground truth of frame 3' in str(raised.value) and 'is 8x8' in str(raised.value)
    assert raised.value.summary['frames']['processed'] == 3
    assert len(labels_of(tmp_path / 'out')) == 3


def test_run_pipeline_finishes_inferred_items_in_order_and_stops_reading():
    read: list[int] = []

    def produce():
        for i in range(10_000):
            read.append(i)
            yield i

    finished: list[int] = []

    def infer(i: int) -> int:
        if i == 5:
            raise KeyboardInterrupt
        return i * 10

    with pytest.raises(KeyboardInterrupt):
        run_pipeline(produce(), infer, finished.append, 2, lambda: NullContext())
    assert finished == [0, 10, 20, 30, 40]
    assert len(read) < 20  # bounded read-ahead, stopped


def test_run_pipeline_writer_error_reaches_the_caller():
    def finish(i: int) -> None:
        if i == 3:
            raise OSError('disk full')

    closed = []
    with pytest.raises(OSError, match='disk full'):
        run_pipeline(iter(range(10_000)), lambda i: i, finish, 2, lambda: NullContext(),
                     writer_close=lambda: closed.append(True))
    assert closed == [True]


class NullContext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
