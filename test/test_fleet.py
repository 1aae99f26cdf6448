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

"""segment_bag over several bags (a fleet), in this process: layout, metrics, resume, report."""

import json
from pathlib import Path
import shutil
import signal
import subprocess
import time
from types import SimpleNamespace

import cv2
from mask2former_ros.core.backends.torch_engine import SegmentationEngine
from mask2former_ros.core.engine_config import EngineConfig
from mask2former_ros.core.evaluation.metrics import ConfusionMatrix
from mask2former_ros.offline import segment_bag, segment_fleet
from mask2former_ros_fixtures.sample_bag import write_sample_bag
import numpy as np
import pytest
from rosbags.rosbag2 import Reader, Writer
from test_segment_bag import SCRIPT

HEIGHT, WIDTH = 144, 256
RAW, GT = '/camera/image_raw', '/camera/labels_gt'
SCHEMA_DATASET = {'frames', 'bags', 'bags_failed', 'miou', 'pixel_accuracy', 'fw_iou',
                  'per_class_iou', 'confusion', 'fps', 'fps_basis', 'processing_seconds',
                  'seconds', 'startup_seconds', 'wall_fps'}
SCHEMA_BAG = {'bag', 'status', 'error', 'attempts', 'frames', 'fps', 'seconds', 'miou',
              'pixel_accuracy', 'confusion', 'stage_ms', 'frame_ms'}
STARTUP = 60.0  # seconds of model loading in the start-up test (six small frames take < 5)
SCHEMA_WORST = {'bag', 'stamp_ns', 'index', 'miou', 'image', 'ground_truth', 'prediction'}


@pytest.fixture(scope='module')
def engine(tiny_model_dir):
    return SegmentationEngine(EngineConfig(model=str(tiny_model_dir)))


def small_bag(path: Path, frames: int = 3, seed: int = 1, **kwargs) -> dict:
    kwargs.setdefault('compressed_topic', None)
    return write_sample_bag(path, frames=frames, height=HEIGHT, width=WIDTH, seed=seed,
                            **kwargs)


def merge_bags(target: Path, *sources: Path) -> None:
    """Write one bag holding every message of ``sources`` (same topics), in order."""
    writer = Writer(target, version=Writer.VERSION_LATEST)
    writer.open()
    conns: dict[str, object] = {}
    for source in sources:
        with Reader(source) as reader:
            for conn, log_time, raw in reader.messages():
                if conn.topic not in conns:
                    conns[conn.topic] = writer.add_connection(
                        conn.topic, conn.msgtype, msgdef=conn.msgdef.data, rihs01=conn.digest)
                writer.write(conns[conn.topic], log_time, raw)
    writer.close()


def quiet(**kwargs) -> dict:
    return dict(kwargs, log=lambda _: None)


def test_two_bags_have_the_metrics_of_one_bag_holding_both(engine, tmp_path):
    small_bag(tmp_path / 'in' / 'a', seed=1)
    small_bag(tmp_path / 'in' / 'b', seed=2, start_ns=1_800_000_000_000_000_000)
    merge_bags(tmp_path / 'both', tmp_path / 'in' / 'a', tmp_path / 'in' / 'b')
    fleet, code = segment_fleet([tmp_path / 'in'], RAW, engine=engine, gt_topic=GT,
                                no_output=True, **quiet())
    one = segment_bag(tmp_path / 'both', RAW, engine=engine, gt_topic=GT, no_output=True,
                      **quiet())['metrics']
    assert code == 0
    data = fleet['dataset']
    assert set(data) >= SCHEMA_DATASET
    assert data['frames'] == 6 and data['bags'] == 2 and data['bags_failed'] == 0
    assert data['confusion'] == one['confusion_matrix']
    assert data['miou'] == pytest.approx(one['miou'], abs=1e-12)
    assert data['pixel_accuracy'] == pytest.approx(one['pixel_accuracy'], abs=1e-12)
    assert data['fw_iou'] == pytest.approx(one['fw_iou'], abs=1e-12)
    assert data['miou'] >= 0.9
    for name, iou in one['per_class_iou'].items():
        assert data['per_class_iou'][name] == pytest.approx(iou, abs=1e-6)
    rows = fleet['bags']
    assert [row['bag'] for row in rows] == ['a', 'b']
    assert all(set(row) >= SCHEMA_BAG for row in rows)
    summed = np.add(*[np.asarray(row['confusion']) for row in rows])
    assert summed.tolist() == data['confusion']
    assert all(len(row['frame_ms']) == 3 and row['attempts'] == 1 for row in rows)
    assert fleet['classes'] == engine.class_names and fleet['ignore_index'] == 255
    assert len(fleet['palette']) == len(fleet['classes'])
    json.dumps(fleet, allow_nan=False)

    # Without --output, a fleet is evaluated without writing bags.
    lines: list[str] = []
    again, code = segment_fleet([tmp_path / 'in'], RAW, engine=engine, gt_topic=GT,
                                log=lines.append)
    assert code == 0 and again['dataset']['confusion'] == data['confusion']
    assert sorted(p.name for p in (tmp_path / 'in').iterdir()) == ['a', 'b']
    assert any('without writing output bags' in line for line in lines)


def test_headline_is_the_processing_rate_when_start_up_dominates(
        engine, tiny_model_dir, tmp_path, monkeypatch):
    """The summary and the report lead with frames / time on bags; start-up is beside it."""
    from mask2former_ros.offline import driver
    from test_report import parse

    small_bag(tmp_path / 'in' / 'a', seed=1)
    small_bag(tmp_path / 'in' / 'b', seed=2)
    # Model loading takes far longer than the bags: STARTUP seconds pass on the driver's clock
    # while the model "loads" (the bags' own times are real).
    startup, offset, clock = STARTUP, [0.0], time.perf_counter

    def slow_load(options, log):
        offset[0] += startup
        return engine

    monkeypatch.setattr(driver, 'load_engine', slow_load)
    monkeypatch.setattr(driver, 'time', SimpleNamespace(perf_counter=lambda: clock() + offset[0]))
    report = tmp_path / 'report'
    summary, code = segment_fleet([tmp_path / 'in'], RAW, model=str(tiny_model_dir),
                                  gt_topic=GT, no_output=True, fleet={'report': report},
                                  **quiet())
    assert code == 0
    data, rows = summary['dataset'], summary['bags']
    processing = sum(row['seconds'] for row in rows)
    assert data['frames'] == 6 and all(row['seconds'] > 0 for row in rows)
    # The summary rounds seconds to the millisecond: a load that took just over `startup`
    # (3.3280004 s for a sleep of 3.3280000000000003 s) is reported as 3.328.
    assert data['startup_seconds'] >= round(startup, 3)
    assert startup > processing  # start-up dominates this fleet
    assert data['seconds'] >= data['startup_seconds'] + processing
    assert data['processing_seconds'] == pytest.approx(processing, abs=2e-3)
    assert data['fps_basis'] == 'per worker: frames / summed seconds on bags'
    # The headline is the rate the bags ran at (the table's rates), not frames / wall time.
    assert data['fps'] == pytest.approx(6 / processing, rel=1e-2)
    rates = [row['fps'] for row in rows]
    assert min(rates) * 0.99 <= data['fps'] <= max(rates) * 1.01
    assert data['wall_fps'] == pytest.approx(6 / data['seconds'], rel=1e-2)
    assert data['fps'] > 2 * data['wall_fps']
    assert json.loads((report / 'summary.json').read_text())['dataset'] == data
    tree = parse((report / 'index.html').read_text(encoding='utf-8'))
    assert tree.by_id('h-fps').text() == f"{data['fps']:.1f}"
    assert tree.by_id('h-fps-basis').text() == data['fps_basis']
    assert tree.by_id('h-seconds').text() == f"{data['seconds']:.1f}"
    assert tree.by_id('h-startup').text() == f"{data['startup_seconds']:.1f}"
    assert tree.by_id('h-wall-fps').text() == f"{data['wall_fps']:.1f}"


def test_fw_iou_and_sum_of_confusion_matrices():
    truth = np.array([[0, 0, 0, 1], [1, 255, 2, 2]], np.uint8)
    pred = np.array([[0, 0, 1, 1], [1, 0, 2, 0]], np.uint8)
    cm = ConfusionMatrix(3)
    cm.update(truth, pred)
    # Truth pixels: 3 of class 0, 2 of 1, 2 of 2. IoU: 0: 2/(3+3-2)=.5, 1: 2/3, 2: 1/2.
    assert cm.iou().tolist() == pytest.approx([0.5, 2 / 3, 0.5])
    assert cm.frequency_weighted_iou() == pytest.approx((3 * .5 + 2 * 2 / 3 + 2 * .5) / 7)
    both = cm + ConfusionMatrix.from_matrix(cm.matrix)
    assert both.matrix.tolist() == (2 * cm.matrix).tolist()
    assert both.miou() == pytest.approx(cm.miou())


def fleet_folder(root: Path) -> dict[str, dict]:
    """Good bags in two layouts (directory, bare .mcap) and three bad ones."""
    infos = {'day1/a': small_bag(root / 'day1' / 'a', seed=1),
             'day1/corrupt': small_bag(root / 'day1' / 'corrupt', frames=4, seed=3,
                                       corrupt_frames=[1])}
    small_bag(root / 'tmp_b', seed=2, storage='mcap')
    (root / 'day2').mkdir()
    shutil.move(root / 'tmp_b' / 'tmp_b.mcap', root / 'day2' / 'b.mcap')
    shutil.rmtree(root / 'tmp_b')
    small_bag(root / 'day2' / 'truncated', seed=4)
    data = (root / 'day2' / 'truncated' / 'truncated.mcap').read_bytes()
    (root / 'day2' / 'truncated' / 'truncated.mcap').write_bytes(data[:len(data) // 2])
    small_bag(root / 'day2' / 'no_topic', seed=5, image_topic=None,
              compressed_topic='/camera/image_raw/compressed')
    return infos


def test_fleet_outputs_errors_and_resume(engine, tmp_path):
    fleet_folder(tmp_path / 'in')
    out = tmp_path / 'out'
    summary, code = segment_fleet([tmp_path / 'in'], RAW, engine=engine, gt_topic=GT,
                                  output=out, **quiet())
    assert code == 1  # some bags failed; the others were evaluated
    rows = {row['bag']: row for row in summary['bags']}
    assert list(rows) == ['day1/a', 'day1/corrupt', 'day2/b.mcap', 'day2/no_topic',
                          'day2/truncated']
    assert [rows[b]['status'] for b in rows] == ['ok', 'ok', 'ok', 'failed', 'failed']
    assert "topic '/camera/image_raw' is not in" in rows['day2/no_topic']['error']
    assert 'corrupt or truncated' in rows['day2/truncated']['error']
    assert rows['day1/corrupt']['frames'] == {'total': 4, 'processed': 3, 'dropped': 0,
                                              'bad': 1}
    assert summary['dataset']['bags_failed'] == 2 and summary['dataset']['frames'] == 9
    for name in ('day1/a', 'day1/corrupt', 'day2/b'):
        assert (out / name / 'metadata.yaml').is_file(), name
        assert json.loads((out / f'{name}.summary.json').read_text())['row']['status'] == 'ok'
    assert not list(out.rglob('*.partial*'))  # no temporary dirs, no storage files named so
    assert (out / 'day1' / 'a' / 'a.mcap').is_file()
    assert not (out / 'day2' / 'truncated').exists()

    # A crash mid-bag leaves a .partial output and no per-bag summary: resume redoes it only.
    (out / 'day1' / 'a.summary.json').unlink()
    (out / 'day1' / 'a.partial').mkdir()
    shutil.move(out / 'day1' / 'a', out / 'day1' / 'a.partial' / 'a')
    stamp = (out / 'day2' / 'b.summary.json').stat().st_mtime_ns
    resumed, code = segment_fleet([tmp_path / 'in'], RAW, engine=engine, gt_topic=GT,
                                  output=out, fleet={'resume': True}, **quiet())
    assert code == 1
    status = {row['bag']: row['status'] for row in resumed['bags']}
    assert status == {'day1/a': 'ok', 'day1/corrupt': 'skipped', 'day2/b.mcap': 'skipped',
                      'day2/no_topic': 'failed', 'day2/truncated': 'failed'}
    assert (out / 'day2' / 'b.summary.json').stat().st_mtime_ns == stamp
    assert not (out / 'day1' / 'a.partial').exists() and (out / 'day1' / 'a').is_dir()
    for key in ('frames', 'confusion', 'miou', 'pixel_accuracy', 'fw_iou', 'per_class_iou'):
        assert resumed['dataset'][key] == summary['dataset'][key], key

    # Without --resume or --overwrite, existing outputs are an error of their bag.
    again, code = segment_fleet([tmp_path / 'in'], RAW, engine=engine, output=out, **quiet())
    assert code == 1
    errors = {row['bag']: row['error'] for row in again['bags']}
    for name in ('day1/a', 'day1/corrupt', 'day2/b.mcap'):
        assert '--overwrite or --resume' in errors[name], errors


def test_cli_fleet_report_with_worst_frame_thumbnails(tiny_model_dir, tmp_path):
    small_bag(tmp_path / 'in' / 'a', frames=4, seed=1)
    small_bag(tmp_path / 'in' / 'sub' / 'b', frames=4, seed=2, storage='sqlite3')
    report, summary_file = tmp_path / 'report', tmp_path / 'summary.json'
    result = subprocess.run(
        [SCRIPT, tmp_path / 'in', '--topic', RAW, '--model', tiny_model_dir, '--gt-topic', GT,
         '--output', tmp_path / 'out', '--report', report, '--worst-frames', '3',
         '--summary', summary_file], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert 'Traceback' not in result.stderr
    assert 'ok a: 4/4 frames' in result.stderr and 'ok sub/b: 4/4 frames' in result.stderr
    summary = json.loads(summary_file.read_text())
    assert json.loads((report / 'summary.json').read_text())['dataset'] == summary['dataset']
    assert set(summary) >= {'classes', 'palette', 'ignore_index', 'model', 'dataset', 'bags',
                            'worst_frames'}
    assert (tmp_path / 'out' / 'sub' / 'b' / 'metadata.yaml').is_file()
    worst = summary['worst_frames']
    assert len(worst) == 3 and all(set(w) == SCHEMA_WORST for w in worst)
    mious = [w['miou'] for w in worst]
    assert mious == sorted(mious)
    palette = np.asarray(summary['palette'], np.uint8)
    for entry in worst:
        image = cv2.imread(str(report / entry['image']))
        gt = cv2.imread(str(report / entry['ground_truth']))
        pred = cv2.imread(str(report / entry['prediction']))
        assert image.shape == gt.shape == pred.shape == (HEIGHT, WIDTH, 3)  # under 320 px
        colours = {tuple(c) for c in gt[:, :, ::-1].reshape(-1, 3)}
        assert colours <= {tuple(c) for c in palette} | {(0, 0, 0)}
    try:
        from mask2former_ros.offline import report as report_module  # noqa: F401
    except ImportError:
        return
    assert summary['report'] and Path(summary['report']).is_file()


@pytest.mark.parametrize('shape', [(64, 96), (9, 7), (4097, 4096)])  # the last: 2**24 + 4096 px
@pytest.mark.parametrize('layout', ['contiguous', 'strided'])
def test_confusion_fast_path_for_uint8_matches_the_general_one(shape, layout):
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 24, shape).astype(np.uint8)  # ids 19..23: not classes
    truth[:5] = 255
    pred = rng.integers(0, 21, shape).astype(np.uint8)
    if layout == 'strided':  # views as a caller may pass them: every other column
        truth, pred = truth[:, ::2], pred[:, ::2]
    for ignore in (255, 3):
        fast, general = ConfusionMatrix(19, ignore), ConfusionMatrix(19, ignore)
        fast.update(truth, pred)
        general.update(truth.astype(np.uint16), pred.astype(np.uint16))
        assert fast.matrix.tolist() == general.matrix.tolist()
        assert fast.matrix.sum() > 0


def test_cli_fleet_sigint_exits_130_with_readable_partial_output(tiny_model_dir, tmp_path):
    small_bag(tmp_path / 'in' / 'a', frames=200, seed=1)
    small_bag(tmp_path / 'in' / 'b', frames=3, seed=2)
    out, summary_file = tmp_path / 'out', tmp_path / 'summary.json'
    proc = subprocess.Popen([SCRIPT, tmp_path / 'in', '--topic', RAW, '--model', tiny_model_dir,
                             '--output', out, '--summary', summary_file, '--no-progress'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:  # the model is loaded: frames follow
            if 'loaded' in line:
                break
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline and not any(
                p.stat().st_size > 1_000_000 for p in out.glob('a.partial/a/*.mcap')):
            time.sleep(0.1)  # a few frames written
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert 'Traceback' not in stderr
    summary = json.loads(summary_file.read_text())
    assert summary['interrupted'] is True
    row = summary['bags'][0]
    assert row['bag'] == 'a' and row['status'] == 'failed' and row['error'] == 'interrupted'
    assert len(summary['bags']) == 1  # bag b was not started
    processed = row['frames']['processed']
    assert 0 < processed < 200
    with Reader(out / 'a.partial' / 'a') as reader:  # closed properly, in its temporary place
        assert reader.topics['/segmentation/labels'].msgcount == processed
    assert not (out / 'a').exists() and not (out / 'a.summary.json').exists()
