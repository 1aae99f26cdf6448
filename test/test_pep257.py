"""Ament pep257 (docstring style) over the package, tests, benchmarks and launch files."""

from pathlib import Path

from ament_pep257.main import main
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257(monkeypatch):
    monkeypatch.chdir(ROOT)
    rc = main(argv=['mask2former_ros', 'mask2former_ros_fixtures', 'test', 'bench', 'launch',
                    'setup.py'])
    assert rc == 0, 'Found code style errors / warnings'
