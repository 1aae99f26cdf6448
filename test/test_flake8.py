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

"""Ament flake8 over the package, tests, benchmarks and launch files (ROS 2 style)."""

from pathlib import Path
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    # A subprocess: flake8 forks worker processes, which can deadlock in a test process that
    # already runs DDS and executor threads (fork copies locks held by other threads).
    result = subprocess.run(
        [sys.executable, '-m', 'ament_flake8.main', 'mask2former_ros',
         'mask2former_ros_fixtures', 'test', 'bench', 'launch', 'setup.py'], cwd=ROOT,
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f'code style errors / warnings:\n{result.stdout}' \
                                   f'{result.stderr}'
