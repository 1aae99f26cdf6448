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

"""segment_bag: offline segmentation of rosbag2 bags (MCAP and sqlite3) written by rosbags."""

import json
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys

import cv2
from mask2former_ros.core.backends.torch_engine import SegmentationEngine
from mask2former_ros.core.cityscapes import labelids_to_trainids, trainids_to_labelids
from mask2former_ros.core.engine_config import EngineConfig
from mask2former_ros.core.render.palette import colorize, overlay
from mask2former_ros.messages.image_conversion import stamp_ns
from mask2former_ros.offline import segment_bag, SegmentBagError
from mask2former_ros_fixtures.sample_bag import typestore, write_gt_dir, write_sample_bag
import numpy as np
import pytest
from rosbags.rosbag2 import Reader

HEIGHT, WIDTH = 144, 256  # the tiny model's aspect range, small enough to be quick
MIN_MIOU = 0.9  # the tiny model segments the synthetic scenes with an mIoU above this
FRAMES = 5
STORAGES = ['mcap', 'sqlite3']
RAW, COMPRESSED, GT = '/camera/image_raw', '/camera/image_raw/compressed', '/camera/labels_gt'
SCRIPT = shutil.which('segment_bag') or str(Path(sys.executable).with_name('segment_bag'))


@pytest.fixture(scope='module')
def engine(tiny_model_dir):
    return SegmentationEngine(EngineConfig(model=str(tiny_model_dir)))


@pytest.fixture(scope='module')
def bags(tmp_path_factory) -> dict:
    """Return {storage: info} of small bags with raw, compressed and ground-truth topics."""
    root = tmp_path_factory.mktemp('bags')
    return {storage: write_sample_bag(root / storage, frames=FRAMES, height=HEIGHT,
                                      width=WIDTH, storage=storage, seed=7)
            for storage in STORAGES}


def read_bag(path: Path) -> dict[str, list[tuple[int, object, bytes]]]:
    """Return {topic: [(log time, message, raw), ...]} of a bag."""
    out: dict[str, list] = {}
    with Reader(path) as reader:
        for conn, log_time, raw in reader.messages():
            msg = typestore().deserialize_cdr(raw, conn.msgtype)
            out.setdefault(conn.topic, []).append((log_time, msg, bytes(raw)))
    return out


def stamp(msg) -> int:
    return stamp_ns(msg.header)


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([SCRIPT, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


# --- accuracy and output bag ----------------------------------------------------------------

@pytest.mark.parametrize('storage', STORAGES)
@pytest.mark.parametrize('topic', [RAW, COMPRESSED])
def test_tiny_model_segments_bag(engine, bags, tmp_path, storage, topic):
    info = bags[storage]
    out = tmp_path / 'out'
    summary = segment_bag(info['path'], topic, engine=engine, output=out, gt_topic=GT,
                          output_storage=storage, outputs='labels,color,overlay',
                          compress='none', log=lambda _: None)
    assert summary['frames'] == {'total': FRAMES, 'processed': FRAMES, 'dropped': 0, 'bad': 0,
                                 'remaining': 0}
    assert summary['interrupted'] is False
    assert summary['message_type'] == info['topics'][topic]
    metrics = summary['metrics']
    assert metrics['miou'] >= MIN_MIOU, metrics
    assert metrics['pixel_accuracy'] >= 0.9
    assert metrics['frames_evaluated'] == FRAMES and metrics['frames_without_gt'] == 0
    assert set(metrics['per_class_iou']) >= {'road', 'sky', 'building'}
    assert np.asarray(metrics['confusion_matrix']).sum() == FRAMES * HEIGHT * WIDTH
    for stage in ('decode', 'preprocess', 'model', 'postprocess', 'write', 'evaluate'):
        assert set(summary['timings_ms'][stage]) == {'mean', 'p50', 'p95'}
    assert summary['fps'] > 0
    json.dumps(summary, allow_nan=False)

    written = read_bag(out)
    assert set(written) == {'/segmentation/labels', '/segmentation/color',
                            '/segmentation/overlay'}
    inputs = read_bag(info['path'])[topic]
    for kind, messages in written.items():
        assert [t for t, _, _ in messages] == info['log_times'], kind
        assert [stamp(m) for _, m, _ in messages] == info['stamps'], kind
        assert all(m.header.frame_id == info['frame_id'] for _, m, _ in messages)
        assert all((m.height, m.width) == (HEIGHT, WIDTH) for _, m, _ in messages)
    for (_, labels, _), (_, color, _), (_, over, _), (_, src, _) in zip(
            written['/segmentation/labels'], written['/segmentation/color'],
            written['/segmentation/overlay'], inputs, strict=True):
        assert labels.encoding == 'mono8' and labels.step == WIDTH
        label_map = labels.data.reshape(HEIGHT, WIDTH)
        assert color.encoding == 'rgb8'
        np.testing.assert_array_equal(color.data.reshape(HEIGHT, WIDTH, 3),
                                      colorize(label_map, engine.palette))
        if topic == RAW:
            rgb = src.data.reshape(HEIGHT, WIDTH, 3)
            np.testing.assert_array_equal(over.data.reshape(HEIGHT, WIDTH, 3),
                                          overlay(rgb, label_map, engine.palette, 0.5))


def test_cli_include_input_and_summary_file(tiny_model_dir, bags, tmp_path):
    info = bags['mcap']
    out, summary_file = tmp_path / 'segmented', tmp_path / 'summary.json'
    result = run_cli(info['path'], '--topic', COMPRESSED, '--model', tiny_model_dir, '--output',
                     out, '--include-input', '--gt-topic', GT, '--summary', summary_file,
                     '--output-prefix', 'seg/front/', '--no-progress')
    assert result.returncode == 0, result.stderr
    assert 'Traceback' not in result.stderr
    assert result.stdout == ''
    summary = json.loads(summary_file.read_text())
    assert summary['metrics']['miou'] >= MIN_MIOU
    assert summary['output_bag'] == str(out)
    written = read_bag(out)
    assert set(written) == {COMPRESSED, '/seg/front/labels',
                            '/seg/front/overlay/compressed'}  # the default outputs
    original = read_bag(info['path'])[COMPRESSED]
    assert [(t, raw) for t, _, raw in written[COMPRESSED]] == \
        [(t, raw) for t, _, raw in original]
    with Reader(out) as reader:
        assert reader.topics[COMPRESSED].msgtype == 'sensor_msgs/msg/CompressedImage'

    # The output exists now: refused without --overwrite, replaced with it.
    again = run_cli(info['path'], '--topic', RAW, '--model', tiny_model_dir, '--output', out,
                    '--no-progress', '--max-frames', '2')
    assert again.returncode == 2 and '--overwrite' in again.stderr
    again = run_cli(info['path'], '--topic', RAW, '--model', tiny_model_dir, '--output', out,
                    '--no-progress', '--max-frames', '2', '--overwrite', '--torch-threads', '1')
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)['frames']['processed'] == 2
    assert json.loads(again.stdout)['torch_threads'] == 1
    assert len(read_bag(out)['/segmentation/labels']) == 2


def test_outputs_choose_the_topics_written(tiny_model_dir, engine, bags, tmp_path):
    info = bags['mcap']
    out = tmp_path / 'labels_overlay'
    summary = segment_bag(info['path'], RAW, engine=engine, output=out, log=lambda _: None,
                          outputs='overlay, labels', compress='none')
    assert summary['output_topics'] == ['/segmentation/labels', '/segmentation/overlay']
    written = read_bag(out)
    assert set(written) == {'/segmentation/labels', '/segmentation/overlay'}
    for (_, labels, _), (_, over, _), (_, src, _) in zip(
            written['/segmentation/labels'], written['/segmentation/overlay'],
            read_bag(info['path'])[RAW], strict=True):
        np.testing.assert_array_equal(
            over.data.reshape(HEIGHT, WIDTH, 3),
            overlay(src.data.reshape(HEIGHT, WIDTH, 3), labels.data.reshape(HEIGHT, WIDTH),
                    engine.palette, 0.5))
    result = run_cli(info['path'], '--topic', RAW, '--model', tiny_model_dir, '--no-progress',
                     '--output', tmp_path / 'labels_only', '--outputs', 'labels')
    assert result.returncode == 0, result.stderr
    assert set(read_bag(tmp_path / 'labels_only')) == {'/segmentation/labels'}
    assert_one_line_error(
        run_cli(info['path'], '--topic', RAW, '--model', tiny_model_dir, '--no-progress',
                '--output', tmp_path / 'bad', '--outputs', 'labels,colour'),
        2, "invalid --outputs 'labels,colour'", 'labels,color,overlay')
    assert not (tmp_path / 'bad').exists()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float('inf') if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def test_compressed_outputs_decode_to_the_raw_ones(engine, bags, tmp_path):
    """JPEG colour and overlay are close to the raw images; PNG labels are exactly equal."""
    info = bags['mcap']
    runs = {}
    for name, compress, quality in (('raw', 'none', 90), ('all', 'labels, color,overlay', 90),
                                    ('low', 'color,overlay', 30)):
        out = tmp_path / name
        summary = segment_bag(info['path'], RAW, engine=engine, output=out, compress=compress,
                              jpeg_quality=quality, output_prefix='/seg',
                              outputs='labels,color,overlay', log=lambda _: None)
        runs[name] = (summary, read_bag(out))
    kinds = ('labels', 'color', 'overlay')
    assert runs['raw'][0]['output_topics'] == [f'/seg/{kind}' for kind in kinds]
    assert runs['all'][0]['output_topics'] == [f'/seg/{kind}/compressed' for kind in kinds]
    assert runs['low'][0]['output_topics'] == ['/seg/labels', '/seg/color/compressed',
                                               '/seg/overlay/compressed']
    with Reader(tmp_path / 'all') as reader:
        assert {t: i.msgtype for t, i in reader.topics.items()} == {
            f'/seg/{kind}/compressed': 'sensor_msgs/msg/CompressedImage' for kind in kinds}
    raw, compressed, low = runs['raw'][1], runs['all'][1], runs['low'][1]
    for kind in kinds:
        topic = f'/seg/{kind}/compressed'
        assert [t for t, _, _ in compressed[topic]] == info['log_times'], kind
        assert [stamp(m) for _, m, _ in compressed[topic]] == info['stamps'], kind
        assert all(m.header.frame_id == info['frame_id'] for _, m, _ in compressed[topic])
    for index, (_, labels, _) in enumerate(raw['/seg/labels']):
        png = compressed['/seg/labels/compressed'][index][1]
        assert png.format == 'mono8; png compressed mono8'
        decoded = cv2.imdecode(png.data, cv2.IMREAD_UNCHANGED)
        assert decoded.dtype == np.uint8 and decoded.shape == (HEIGHT, WIDTH)
        np.testing.assert_array_equal(decoded, labels.data.reshape(HEIGHT, WIDTH))
        np.testing.assert_array_equal(low['/seg/labels'][index][1].data, labels.data)
        for kind in ('color', 'overlay'):
            exact = raw[f'/seg/{kind}'][index][1].data.reshape(HEIGHT, WIDTH, 3)
            sizes = []
            for bag in (compressed, low):
                jpeg = bag[f'/seg/{kind}/compressed'][index][1]
                assert jpeg.format == 'rgb8; jpeg compressed bgr8'
                assert bytes(jpeg.data[:3]) == b'\xff\xd8\xff'
                rgb = cv2.cvtColor(cv2.imdecode(jpeg.data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                assert rgb.shape == exact.shape
                assert psnr(rgb, exact) >= (28.0 if bag is compressed else 24.0), kind  # dB
                sizes.append(len(jpeg.data))
            assert sizes[1] < sizes[0] < exact.nbytes, (kind, sizes)  # quality 30 < 90 < raw


def test_compress_and_jpeg_quality_errors(tiny_model_dir, bags, tmp_path):
    model = ('--model', tiny_model_dir, '--no-progress', '--output', tmp_path / 'bad')
    mcap = bags['mcap']['path']
    assert_one_line_error(run_cli(mcap, '--topic', RAW, *model, '--compress', 'colour'), 2,
                          "invalid --compress 'colour'", 'labels,color,overlay, or none')
    assert_one_line_error(run_cli(mcap, '--topic', RAW, *model, '--jpeg-quality', '0'), 2,
                          '--jpeg-quality must be within [1, 100], got 0')
    assert not (tmp_path / 'bad').exists()


def test_default_output_path_next_to_the_input(engine, tmp_path):
    info = write_sample_bag(tmp_path / 'drive', frames=2, height=HEIGHT, width=WIDTH,
                            compressed_topic=None, gt_topic=None, encoding='bgr8')
    summary = segment_bag(tmp_path / 'drive', RAW, engine=engine, log=lambda _: None)
    assert summary['output_bag'] == str(tmp_path / 'drive_segmented')
    assert summary['metrics'] is None
    labels = read_bag(tmp_path / 'drive_segmented')['/segmentation/labels']
    assert [stamp(m) for _, m, _ in labels] == info['stamps']


def test_bad_frames_are_counted_and_skipped(engine, tmp_path):
    info = write_sample_bag(tmp_path / 'bad', frames=4, height=HEIGHT, width=WIDTH,
                            corrupt_frames=[1, 2], gt_topic=None)
    for topic in (RAW, COMPRESSED):
        lines: list[str] = []
        summary = segment_bag(info['path'], topic, engine=engine, output=tmp_path / topic[1:],
                              log=lines.append)
        assert summary['frames'] == {'total': 4, 'processed': 2, 'dropped': 0, 'bad': 2,
                                     'remaining': 0}
        warnings = [line for line in lines if 'warning' in line]
        assert len(warnings) == 2 and all('bad frame' in w for w in warnings), lines
        labels = read_bag(tmp_path / topic[1:])['/segmentation/labels']
        assert [stamp(m) for _, m, _ in labels] == [info['stamps'][0], info['stamps'][3]]


# --- ground truth ---------------------------------------------------------------------------

def test_gt_dir_names_and_labelids_match_gt_topic(engine, tmp_path):
    info = write_sample_bag(tmp_path / 'bag', frames=3, height=HEIGHT, width=WIDTH,
                            compressed_topic=None, storage='sqlite3', seed=3)
    reference = segment_bag(info['path'], RAW, engine=engine, no_output=True, gt_topic=GT,
                            log=lambda _: None)['metrics']
    assert reference['miou'] >= MIN_MIOU and reference['frames_evaluated'] == 3
    for naming in ('index', 'stamp', 'stamp_ns'):
        write_gt_dir(tmp_path / naming, info, naming)
        metrics = segment_bag(info['path'], RAW, engine=engine, no_output=True,
                              gt_dir=tmp_path / naming, log=lambda _: None)['metrics']
        assert metrics['frames_evaluated'] == 3, naming
        for key in ('miou', 'pixel_accuracy', 'per_class_iou', 'confusion_matrix'):
            assert metrics[key] == reference[key], (naming, key)
    assert sorted(p.name for p in (tmp_path / 'stamp').iterdir())[0] == \
        '1700000000_000000000.png'

    # Cityscapes labelIds, in a bag topic and in a directory, mapped back to train ids.
    ids = write_sample_bag(tmp_path / 'ids', frames=3, height=HEIGHT, width=WIDTH,
                           compressed_topic=None, seed=3, gt_labelids=True)
    write_gt_dir(tmp_path / 'ids_dir', ids, 'index', labelids=True)
    raw_ids = segment_bag(ids['path'], RAW, engine=engine, no_output=True, gt_topic=GT,
                          log=lambda _: None)['metrics']
    assert raw_ids['miou'] < 0.5  # label ids are not train ids
    for source in ({'gt_topic': GT}, {'gt_dir': tmp_path / 'ids_dir'}):
        metrics = segment_bag(ids['path'], RAW, engine=engine, no_output=True,
                              gt_labelids=True, log=lambda _: None, **source)['metrics']
        assert metrics['confusion_matrix'] == reference['confusion_matrix'], source
        assert metrics['miou'] == reference['miou'] and metrics['labelids'] is True


def test_cityscapes_labelid_mapping():
    label_ids = np.arange(-1, 40, dtype=np.int16)
    train = labelids_to_trainids(label_ids)
    expected = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
                24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
    assert dict(zip(label_ids.tolist(), train.tolist(), strict=True)) == {
        i: expected.get(i, 255) for i in range(-1, 40)}
    assert train.dtype == np.uint8
    assert trainids_to_labelids(np.array([0, 10, 18, 255])).tolist() == [7, 23, 33, 0]


def test_frames_without_gt_are_counted(engine, tmp_path):
    info = write_sample_bag(tmp_path / 'bag', frames=3, height=HEIGHT, width=WIDTH,
                            compressed_topic=None, gt_topic=None)
    write_gt_dir(tmp_path / 'gt', info, 'index')
    (tmp_path / 'gt' / '000001.png').unlink()
    metrics = segment_bag(info['path'], RAW, engine=engine, no_output=True,
                          gt_dir=tmp_path / 'gt', log=lambda _: None)['metrics']
    assert metrics['frames_evaluated'] == 2 and metrics['frames_without_gt'] == 1


# --- real-time replay -----------------------------------------------------------------------

def test_realtime_drops_frames_of_a_fast_bag(engine, tmp_path):
    info = write_sample_bag(tmp_path / 'fast', frames=12, height=HEIGHT, width=WIDTH,
                            rate_hz=200.0, compressed_topic=None, gt_topic=None)
    summary = segment_bag(info['path'], RAW, engine=engine, output=tmp_path / 'out',
                          realtime=True, include_input=True, log=lambda _: None)
    frames = summary['frames']
    assert summary['mode'] == 'realtime'
    assert frames['dropped'] > 0, summary
    assert frames['processed'] + frames['dropped'] == frames['total'] == 12
    assert summary['realtime']['input_hz'] == pytest.approx(200.0)
    written = read_bag(tmp_path / 'out')
    labels = written['/segmentation/labels']
    assert len(labels) == frames['processed']
    assert stamp(labels[0][1]) == info['stamps'][0]  # the first frame always gets through
    assert stamp(labels[-1][1]) == info['stamps'][-1]  # and so does the newest
    assert len(written[RAW]) == 12  # the input topic is copied whole


def test_realtime_keeps_every_frame_of_a_slow_bag(engine, tmp_path):
    # A frame is dropped only when two newer ones arrive while it is processed, i.e. after
    # 2 periods. The tiny model needs ~0.1 s per frame but several seconds on a CPU shared with
    # other torch processes, hence 0.1 Hz (the replay's clock is virtual: nobody waits 40 s).
    info = write_sample_bag(tmp_path / 'slow', frames=4, height=HEIGHT, width=WIDTH,
                            rate_hz=0.1, compressed_topic=None, gt_topic=None)
    summary = segment_bag(info['path'], RAW, engine=engine, no_output=True, realtime=True,
                          log=lambda _: None)
    assert summary['wall_seconds'] < 40.0
    assert summary['frames'] == {'total': 4, 'processed': 4, 'dropped': 0, 'bad': 0,
                                 'remaining': 0}


# --- errors ---------------------------------------------------------------------------------

def assert_one_line_error(result: subprocess.CompletedProcess, code: int, *needles: str):
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith('segment_bag: error: '), lines
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert result.stdout == ''


def test_input_errors_exit_2(tiny_model_dir, bags, tmp_path):
    model = ('--model', tiny_model_dir, '--no-progress')
    mcap = Path(bags['mcap']['path'])

    assert_one_line_error(run_cli(tmp_path / 'nope', '--topic', RAW, *model), 2,
                          'does not exist')

    truncated = tmp_path / 'truncated'
    shutil.copytree(mcap, truncated)
    data = (truncated / 'mcap.mcap').read_bytes()
    (truncated / 'mcap.mcap').write_bytes(data[:len(data) // 2])
    assert_one_line_error(run_cli(truncated, '--topic', RAW, *model), 2, 'cannot read',
                          'corrupt or truncated')
    assert_one_line_error(run_cli(truncated / 'mcap.mcap', '--topic', RAW, *model), 2,
                          'corrupt or truncated')

    garbage = tmp_path / 'garbage'
    shutil.copytree(bags['sqlite3']['path'], garbage)
    (garbage / 'sqlite3.db3').write_bytes(os.urandom(8192))
    assert_one_line_error(run_cli(garbage, '--topic', RAW, *model), 2, 'corrupt or truncated')

    (tmp_path / 'empty').mkdir()
    assert_one_line_error(run_cli(tmp_path / 'empty', '--topic', RAW, *model), 2,
                          'not a rosbag2 bag')

    result = run_cli(mcap, '--topic', '/camera/missing', *model)
    assert_one_line_error(result, 2, "'/camera/missing' is not in", RAW, COMPRESSED, GT)

    chatter = write_sample_bag(tmp_path / 'chatter', frames=2, height=32, width=48,
                               string_topic='/chatter')
    assert_one_line_error(run_cli(chatter['path'], '--topic', '/chatter', *model), 2,
                          'std_msgs/msg/String', 'expected sensor_msgs/msg/Image')
    assert_one_line_error(
        run_cli(mcap, '--topic', RAW, '--gt-topic', '/camera/nope', *model), 2,
        "ground-truth topic '/camera/nope' is not in")
    assert_one_line_error(
        run_cli(chatter['path'], '--topic', RAW, '--gt-topic', '/chatter', *model), 2,
        'std_msgs/msg/String')

    small = dict(bags['mcap'], height=HEIGHT // 2, width=WIDTH // 2)
    write_gt_dir(tmp_path / 'small_gt', small, 'index')
    assert_one_line_error(
        run_cli(mcap, '--topic', RAW, '--gt-dir', tmp_path / 'small_gt', *model), 2,
        f'is {WIDTH // 2}x{HEIGHT // 2} but the frame is {WIDTH}x{HEIGHT}')
    (tmp_path / 'colour_gt').mkdir()
    cv2.imwrite(str(tmp_path / 'colour_gt' / '000000.png'),
                np.random.default_rng(0).integers(0, 255, (HEIGHT, WIDTH, 3), np.uint8))
    assert_one_line_error(
        run_cli(mcap, '--topic', RAW, '--gt-dir', tmp_path / 'colour_gt', *model), 2,
        'single-channel')
    assert not (tmp_path / 'nope_segmented').exists()
    assert not Path(str(mcap) + '_segmented').exists()


def test_gt_size_mismatch_in_process(engine, bags, tmp_path):
    small = dict(bags['sqlite3'], height=HEIGHT // 2, width=WIDTH // 2)
    write_gt_dir(tmp_path / 'gt', small, 'stamp')
    with pytest.raises(SegmentBagError) as raised:
        segment_bag(bags['sqlite3']['path'], COMPRESSED, engine=engine, no_output=True,
                    gt_dir=tmp_path / 'gt', log=lambda _: None)
    assert raised.value.exit_code == 2 and 'ground truth of frame 0' in str(raised.value)


def test_engine_errors_are_worded_for_the_command_line(tiny_model_dir, bags, tmp_path):
    mcap = bags['mcap']['path']
    assert_one_line_error(
        run_cli(mcap, '--topic', RAW, '--model', tiny_model_dir, '--device', 'tpu'), 2,
        "--device: invalid device 'tpu'")
    assert_one_line_error(
        run_cli(mcap, '--topic', RAW, '--model', tiny_model_dir, '--input-size', '7'), 2,
        '--input-size: invalid input_size')
    pickled = tmp_path / 'pickled'
    pickled.mkdir()
    for name in ('config.json', 'preprocessor_config.json'):
        shutil.copy(Path(tiny_model_dir) / name, pickled / name)
    (pickled / 'pytorch_model.bin').write_bytes(b'not really')
    result = run_cli(mcap, '--topic', RAW, '--model', pickled, '--no-output')
    assert_one_line_error(result, 1, 'pickle', 'pass --allow-pickle')
    assert ':=' not in result.stderr


def test_missing_model_exits_1_with_one_line(bags, tmp_path):
    result = run_cli(bags['mcap']['path'], '--topic', RAW, '--model', tmp_path / 'no_model',
                     '--output', tmp_path / 'out')
    assert_one_line_error(result, 1, 'no_model', 'does not exist')
    assert not (tmp_path / 'out').exists()


# --- Ctrl-C ---------------------------------------------------------------------------------

def test_sigint_closes_a_readable_bag_and_reports_interrupted(tiny_model_dir, tmp_path):
    total = 200
    info = write_sample_bag(tmp_path / 'long', frames=total, height=HEIGHT, width=WIDTH,
                            compressed_topic=None, gt_topic=None)
    out = tmp_path / 'out'
    proc = subprocess.Popen([SCRIPT, info['path'], '--topic', RAW, '--model',
                             str(tiny_model_dir), '--output', str(out), '--include-input',
                             '--outputs', 'labels,color,overlay', '--compress', 'none'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # With stderr not a terminal, a progress line follows the first processed frame.
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if 'processed' in line:
                break
        else:
            pytest.fail(f'no progress line: {seen}')
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert 'Traceback' not in stderr
    summary = json.loads(stdout)
    assert summary['interrupted'] is True
    processed = summary['frames']['processed']
    assert 0 < processed < total
    assert summary['frames']['remaining'] > 0
    written = read_bag(out)
    assert len(written['/segmentation/labels']) == processed
    assert len(written['/segmentation/color']) == len(written['/segmentation/overlay']) \
        == processed
    assert len(written[RAW]) >= processed
