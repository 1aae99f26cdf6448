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

"""Short soak (about 60 s) of the node at 30 Hz: memory and latency stay flat (generous bounds)."""

from pathlib import Path
import sys

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'bench'))

from soak import soak  # noqa: E402, I100


@pytest.mark.soak
def test_short_soak(tiny_model_dir):
    result = soak(str(tiny_model_dir), seconds=60.0, rate=30.0, size=(480, 640), window=15.0)
    rows = result['latency_over_time']
    print(rows)
    assert len(rows) == 4
    assert all(row['n'] > 0 for row in rows), rows
    assert result['rss_growth_mb_after_warmup'] < 100.0, rows
    assert rows[-1]['p95'] <= 2 * rows[1]['p95'] + 100.0, rows
    assert result['drop_ratio'] < 1.0
