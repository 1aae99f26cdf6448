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
Keep freed image-sized buffers in the process (glibc ``mallopt``) instead of the kernel's.

Every camera frame passes through several buffers of its size (the middleware's copy, the
serialized message, the Python bytes, the decoded array). By default glibc serves such sizes
with ``mmap`` and gives them back with ``munmap``, so every new buffer is fresh pages, faulted
in one by one. Raising the mmap threshold and the trim threshold lets freed buffers be reused.
Measured here by ``bench/bench_receive.py`` (a process only receiving 2 x 30 Hz of rgb8 frames,
raw subscriptions): 1024x2048 71.8 % of a core before, 19.3 % after; 480x640 15.1 % before,
5.7 % after (``bench/bench_multicam.py`` shows the effect on the node).
"""

import ctypes
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # buffers up to 32 MiB come from the heap (a 4K rgb8 frame: 25 MiB)
TRIM_THRESHOLD = 128 << 20  # free memory kept at the top of a heap before giving it back


def keep_large_buffers() -> bool:
    """Tune glibc malloc for frame-sized buffers; return False where it does not apply."""
    if not sys.platform.startswith('linux'):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
