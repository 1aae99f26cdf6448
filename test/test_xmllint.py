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

"""package.xml: well-formed (xmllint) and a complete format 3 ament_python manifest."""

from pathlib import Path
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.linter
@pytest.mark.xmllint
def test_xmllint_package_xml():
    if shutil.which('xmllint') is None:
        pytest.skip('xmllint not installed (apt install libxml2-utils)')
    result = subprocess.run(['xmllint', '--noout', str(ROOT / 'package.xml'),
                             str(ROOT / 'config' / 'fastdds_large_images.xml')],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_package_xml_is_a_format_3_ament_python_manifest():
    root = ET.parse(ROOT / 'package.xml').getroot()
    assert root.tag == 'package' and root.get('format') == '3'
    assert root.findtext('name') == 'mask2former_ros'
    for tag in ('version', 'description', 'maintainer', 'license'):
        assert (root.findtext(tag) or '').strip(), tag
    assert root.find('export/build_type').text == 'ament_python'
    depends = {e.text for e in root if e.tag.endswith('depend')}
    for key in ('rclpy', 'sensor_msgs', 'std_msgs', 'diagnostic_msgs', 'lifecycle_msgs',
                'python3-numpy', 'python3-opencv', 'ament_flake8', 'ament_pep257'):
        assert key in depends, key
    setup = (ROOT / 'setup.py').read_text()
    assert f"version='{root.findtext('version')}'" in setup


def test_ruff_clean():
    ruff = shutil.which('ruff') or str(Path(__import__('sys').executable).with_name('ruff'))
    if not Path(ruff).exists():
        pytest.skip('ruff not installed')
    result = subprocess.run([ruff, 'check', '--no-cache', str(ROOT)], capture_output=True,
                            text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
