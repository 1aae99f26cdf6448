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
segment_bag with tracking: track ids in the output bag, tracking metrics per bag and fleet.

The sample bags are street sequences whose instance ground truth keeps one id per object.
"""

import json

from mask2former_ros.core.engine import EngineConfig, SegmentationEngine
from mask2former_ros.offline import segment_bag, segment_fleet
from mask2former_ros.offline.tracking_metrics import combine, trackeval_metrics
from mask2former_ros_fixtures.sample_bag import INSTANCES_GT_TOPIC, write_sample_bag
import numpy as np
import pytest
from test_segment_bag import assert_one_line_error, read_bag, run_cli

try:
    trackeval_metrics()
except ImportError as exc:  # scripts/setup.sh installs it
    pytest.skip(str(exc), allow_module_level=True)

HEIGHT, WIDTH, FRAMES = 144, 256, 12
RAW, GT = '/camera/image_raw', '/camera/labels_gt'
TRACKED = {'gt_topic': GT, 'gt_instances_topic': INSTANCES_GT_TOPIC, 'gt_track_ids': True,
           'task': 'panoptic', 'log': lambda _: None}
# Measured with the seed-0 tiny panoptic model on these two bags (tracking on vs off): see
# test_tracking_beats_per_frame_ids. Ids per frame are right by chance only.
MIN_GAIN_IDF1, MIN_GAIN_HOTA = 0.15, 0.1


@pytest.fixture(scope='module')
def sequence_bags(tmp_path_factory) -> dict:
    """Return two street sequences: 'fleet/crossing' and 'fleet/occlusion', and 'fleet'."""
    root = tmp_path_factory.mktemp('sequences') / 'fleet'
    for i, kind in enumerate(('crossing', 'occlusion')):
        write_sample_bag(root / kind, frames=FRAMES, height=HEIGHT, width=WIDTH, seed=40 + i,
                         sequence=kind, compressed_topic=None, start_ns=(17 + i) * 10 ** 17)
    return {'crossing': root / 'crossing', 'occlusion': root / 'occlusion', 'fleet': root}


@pytest.fixture(scope='module')
def engine(tiny_panoptic_model_dir):
    return SegmentationEngine(EngineConfig(model=str(tiny_panoptic_model_dir), task='panoptic'))


def test_tracking_beats_per_frame_ids(engine, sequence_bags):
    results = {}
    for tracking in ('on', 'off'):
        results[tracking] = [
            segment_bag(sequence_bags[kind], RAW, engine=engine, no_output=True,
                        tracking=tracking, **TRACKED) for kind in ('crossing', 'occlusion')]
    on, off = ([r['metrics']['tracking'] for r in results[t]] for t in ('on', 'off'))
    for summary in results['on']:
        assert summary['tracking'] == {'enabled': True, 'max_age': 10}
        assert summary['metrics']['tracking']['frames'] == FRAMES
    assert results['off'][0]['tracking'] == {'enabled': False, 'max_age': 10}
    print('tracking on ', [{k: round(m[k], 3) for k in ('hota', 'idf1', 'mota')} for m in on])
    print('tracking off', [{k: round(m[k], 3) for k in ('hota', 'idf1', 'mota')} for m in off])
    for tracked, per_frame in zip(on, off, strict=True):
        # Same detections: the same detection accuracy, better association.
        assert tracked['deta'] == pytest.approx(per_frame['deta'])
        assert tracked['idf1'] >= per_frame['idf1'] + MIN_GAIN_IDF1, (tracked, per_frame)
        assert tracked['hota'] >= per_frame['hota'] + MIN_GAIN_HOTA, (tracked, per_frame)
        assert tracked['id_switches'] < per_frame['id_switches']


def test_output_bag_carries_track_ids(engine, sequence_bags, tmp_path):
    out = tmp_path / 'out'
    segment_bag(sequence_bags['crossing'], RAW, engine=engine, output=out, outputs='labels',
                task='panoptic', log=lambda _: None)
    written = read_bag(out)['/segmentation/instances']
    truth = read_bag(sequence_bags['crossing'])[INSTANCES_GT_TOPIC]
    # The ground-truth object seen most is found under one track id in most of its frames.
    maps = [(np.frombuffer(bytes(m.data), '<u2').reshape(HEIGHT, WIDTH),
             np.frombuffer(bytes(t.data), '<u2').reshape(HEIGHT, WIDTH))
            for (_, m, _), (_, t, _) in zip(written, truth, strict=True)]
    largest = np.bincount(np.concatenate([gt.ravel() for _, gt in maps]))[1:].argmax() + 1
    ids = [int(np.bincount(ids[gt == largest]).argmax()) for ids, gt in maps
           if (gt == largest).any()]
    found = [i for i in ids if i]
    assert len(found) >= len(ids) // 2, ids
    assert len(set(found)) == 1, ids


def test_fleet_combines_the_bags_statistics_and_reports_them(engine, sequence_bags, tmp_path):
    fleet, code = segment_fleet([sequence_bags['fleet']], RAW, engine=engine,
                                fleet={'report': tmp_path / 'report'}, **TRACKED)
    assert code == 0
    rows = {row['bag']: row for row in fleet['bags']}
    assert sorted(rows) == ['crossing', 'occlusion']
    tracking = fleet['dataset']['tracking']
    expected = combine([rows[name]['tracking']['counts'] for name in sorted(rows)])
    assert {k: tracking[k] for k in expected} == pytest.approx(expected)
    assert tracking['id_switches'] == sum(r['tracking']['id_switches'] for r in rows.values())
    frames = tracking['most_id_switches']
    assert [f['id_switches'] for f in frames] == sorted((f['id_switches'] for f in frames),
                                                        reverse=True)
    html = (tmp_path / 'report' / 'index.html').read_text(encoding='utf-8')
    assert 'data-chart="tracking"' in html and 'id="t-hota"' in html
    assert html.count('class="frame-switches"') == len(frames)
    stored = json.loads((tmp_path / 'report' / 'summary.json').read_text())
    assert stored['dataset']['tracking']['idf1'] == pytest.approx(tracking['idf1'])


@pytest.mark.parametrize('args, needle', [
    (['--gt-track-ids'], '--gt-track-ids needs --gt-instances-topic'),
    (['--track-max-age', '-1'], '--track-max-age must be an integer >= 0, got -1'),
])
def test_bad_tracking_options_give_one_clear_error(sequence_bags, tmp_path, args, needle):
    result = run_cli(sequence_bags['crossing'], '--topic', RAW, '--no-output', '--no-progress',
                     *args)
    assert_one_line_error(result, 2, needle)
