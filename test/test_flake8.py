"""Ament flake8 over the package, tests, benchmarks and launch files (ROS 2 style)."""

from pathlib import Path

from ament_flake8.main import main_with_errors
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8(monkeypatch):
    monkeypatch.chdir(ROOT)
    rc, errors = main_with_errors(argv=['mask2former_ros', 'test', 'bench', 'launch',
                                        'setup.py'])
    assert rc == 0, f'Found {len(errors)} code style errors / warnings:\n' + '\n'.join(errors)
