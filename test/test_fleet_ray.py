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

"""segment_bag --workers N on a local Ray: in-process metrics, retries, bad bags, resume."""

import json
from pathlib import Path
import signal
import subprocess
import time

from mask2former_ros.core.backends.torch_engine import SegmentationEngine
from mask2former_ros.core.engine_config import EngineConfig
from mask2former_ros.offline import segment_fleet
from mask2former_ros_fixtures.sample_bag import write_sample_bag
import pytest
from test_segment_bag import SCRIPT

ray = pytest.importorskip('ray')
psutil = pytest.importorskip('psutil')

HEIGHT, WIDTH = 144, 256
RAW, GT = '/camera/image_raw', '/camera/labels_gt'
METRICS = ('frames', 'confusion', 'miou', 'pixel_accuracy', 'fw_iou', 'per_class_iou')


@pytest.fixture(scope='module')
def engine(tiny_model_dir):
    return SegmentationEngine(EngineConfig(model=str(tiny_model_dir)))


def bags(root: Path, frames: int, count: int) -> None:
    for i in range(count):
        write_sample_bag(root / f'bag{i}', frames=frames, height=HEIGHT, width=WIDTH,
                         seed=10 + i, compressed_topic=None, start_ns=(17 + i) * 10 ** 17)


def test_two_ray_workers_match_one_in_process_report_bad_bags_and_resume(engine, tmp_path):
    bags(tmp_path / 'in', frames=4, count=3)
    write_sample_bag(tmp_path / 'in' / 'truncated', frames=4, height=HEIGHT, width=WIDTH,
                     compressed_topic=None)
    mcap = tmp_path / 'in' / 'truncated' / 'truncated.mcap'
    mcap.write_bytes(mcap.read_bytes()[:mcap.stat().st_size // 2])
    common = {'gt_topic': GT, 'log': lambda _: None}
    local, code1 = segment_fleet([tmp_path / 'in'], RAW, engine=engine,
                                 output=tmp_path / 'out1', **common)
    spread, code2 = segment_fleet([tmp_path / 'in'], RAW, model=str(engine.config.model),
                                  output=tmp_path / 'out2', fleet={'workers': 2}, **common)
    assert code1 == code2 == 1
    assert not ray.is_initialized()  # the run stopped the Ray it started
    for key in METRICS:
        assert spread['dataset'][key] == local['dataset'][key], key
    assert spread['dataset']['frames'] == 12 and spread['dataset']['miou'] >= 0.9
    rows = {row['bag']: row for row in spread['bags']}
    assert [rows[f'bag{i}']['status'] for i in range(3)] == ['ok'] * 3
    assert rows['truncated']['status'] == 'failed'
    assert 'corrupt or truncated' in rows['truncated']['error']
    for row, reference in zip(spread['bags'], local['bags'], strict=True):
        assert row['confusion'] == reference['confusion'], row['bag']
    assert [w['miou'] for w in spread['worst_frames']] == \
        [w['miou'] for w in local['worst_frames']]

    resumed, code = segment_fleet([tmp_path / 'in'], RAW, model=str(engine.config.model),
                                  output=tmp_path / 'out2', fleet={'workers': 2,
                                                                   'resume': True}, **common)
    assert code == 1
    assert [row['status'] for row in resumed['bags']] == ['skipped'] * 3 + ['failed']
    for key in METRICS:
        assert resumed['dataset'][key] == local['dataset'][key], key


def busy_workers() -> list:
    """Return the processes of Ray actors running BagWorker.process."""
    out = []
    for proc in psutil.process_iter(['cmdline']):
        cmdline = proc.info['cmdline'] or []
        if cmdline and cmdline[0].startswith('ray::BagWorker.process'):
            out.append(proc)
    return out


def test_a_killed_worker_costs_only_a_retry_of_its_bag(engine, tiny_model_dir, tmp_path):
    bags(tmp_path / 'in', frames=24, count=2)
    out = tmp_path / 'out'
    proc = subprocess.Popen(
        [SCRIPT, tmp_path / 'in', '--topic', RAW, '--model', tiny_model_dir, '--gt-topic', GT,
         '--output', out, '--workers', '2', '--no-progress',
         # raw outputs: the partial bag grows from the first frame on (the mid-bag signal)
         '--outputs', 'labels,color,overlay', '--compress', 'none'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        victim = None
        while victim is None and time.monotonic() < deadline and proc.poll() is None:
            partial = list(out.glob('*.partial/*/*.mcap')) if out.exists() else []
            workers = busy_workers()
            if partial and any(p.stat().st_size > 100_000 for p in partial) and workers:
                victim = workers[0]
            time.sleep(0.2)
        assert victim is not None, 'no worker was seen mid-bag'
        victim.send_signal(signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert stdout.startswith('{'), stdout[:3000]
    summary = json.loads(stdout)  # the workers' lines go to stderr only
    assert [row['status'] for row in summary['bags']] == ['ok', 'ok']
    assert sorted(row['attempts'] for row in summary['bags']) == [1, 2]
    assert len(summary['retried_bags']) == 1
    assert 'retrying the bag on a new worker' in stderr
    reference, _ = segment_fleet([tmp_path / 'in'], RAW, engine=engine, gt_topic=GT,
                                 no_output=True, log=lambda _: None)
    for key in METRICS:
        assert summary['dataset'][key] == reference['dataset'][key], key
    assert not list(out.glob('*.partial'))
