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

"""One timed pass of an engine over frames: frames/s, ms per stage and the labels (benches)."""

import time
from typing import Any

from mask2former_ros.core.results import STAGES
import numpy as np


def segment_timed(engine: Any, frames: list[np.ndarray]) -> tuple[float, dict, list]:
    """Segment ``frames`` one by one; return (frames/s, {stage: [ms, ...]}, labels)."""
    stages: dict[str, list[float]] = {stage: [] for stage in STAGES}
    labels = []
    started = time.perf_counter()
    for frame in frames:
        result = engine.segment(frame)
        labels.append(result.labels)
        for stage in STAGES:
            stages[stage].append(result.timings_ms[stage])
    return len(frames) / (time.perf_counter() - started), stages, labels
