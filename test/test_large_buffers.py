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

"""keep_large_buffers: received camera frames reuse freed buffers instead of fresh pages."""

import json
import os
from pathlib import Path
import subprocess
import sys
import uuid

from mask2former_ros_fixtures.ros_harness import stop_process
import pytest

HERE = Path(__file__).resolve().parent
PROFILE = HERE.parent / 'config' / 'fastdds_large_images.xml'
PAGES_PER_FRAME = 1024 * 2048 * 3 // 4096
# glibc's own default mmap threshold, pinned for the untuned probe. Left to itself, glibc
# raises the threshold to the size of any mmapped chunk freed (up to 32 MiB) and the trim
# threshold to twice that: one earlier free of a chunk bigger than a frame (which happens or
# not depending on timing in DDS and rclpy) and the untuned probe reused its buffers too
# (0.03 faults per frame seen once under load; a 16 MiB malloc/free injected before the probe
# gives that every time). Setting the threshold through a tunable turns that adjustment off,
# so the untuned probe is glibc as a node starts: every frame-sized buffer a fresh mmap.
GLIBC_STATIC_DEFAULT = 'glibc.malloc.mmap_threshold=131072'


def _receive(mode: str) -> dict:
    """Publish 1024x2048 frames over real DDS to a probe process; return its fault count."""
    env = dict(os.environ, FASTDDS_DEFAULT_PROFILES_FILE=str(PROFILE))
    if mode == 'default':
        env['GLIBC_TUNABLES'] = GLIBC_STATIC_DEFAULT
    topic = f'buffer_probe_{uuid.uuid4().hex[:8]}'
    probe = [sys.executable, str(HERE / 'buffer_probe.py')]
    publisher = subprocess.Popen([*probe, 'publish', topic], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        out = subprocess.run([*probe, 'receive', topic, mode], env=env, check=True,
                             capture_output=True, text=True, timeout=120).stdout
    finally:
        stop_process(publisher)  # SIGINT: its participant goes, no segment is left behind
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc mallopt')
def test_received_frames_reuse_buffers_after_tuning():
    default, tuned = _receive('default'), _receive('tuned')
    assert default['received'] == tuned['received'] == 40, (default, tuned)
    assert tuned['tuned'] is True
    # glibc's default: the middleware's, rmw's and Python's copies of each frame are fresh
    # mmaps, every page faulted in anew (4576 faults per frame measured: 3 x 1536 pages).
    assert default['faults_per_frame'] > PAGES_PER_FRAME, default
    assert tuned['faults_per_frame'] < 0.05 * PAGES_PER_FRAME, tuned
