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
