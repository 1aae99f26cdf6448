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

"""/diagnostics statuses of the segmentation node, built from its counters (no node state)."""

from dataclasses import dataclass
import json
from typing import Any, Callable

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from mask2former_ros.core.runtime.frame_slot import SlotCounters
from mask2former_ros.core.runtime.stats import CameraStats, WindowStats

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR


def _kv(key: str, value: Any) -> KeyValue:
    text = f'{value:.2f}' if isinstance(value, float) else str(value)
    return KeyValue(key=key, value=text)


@dataclass
class ModelInfo:
    """What the diagnostics say about the model and the inference thread."""

    model: str
    backend: str = 'none'
    device: str = 'none'  # torch device, or the ONNX Runtime provider that runs
    precision: str = 'none'
    task: str = 'none'  # the task served (semantic, panoptic, instance)
    compile: str = 'none'  # noqa: A003 - torch.compile mode, off, or 'off (failed: ...)'
    compile_seconds: float = 0.0  # spent compiling, at configure and for new input shapes
    loaded: bool = False
    problem: str = ''  # the inference thread died or is stuck: the camera statuses are ERROR
    restarts: int = 0
    pending_reconfigure: str = ''  # parameters changed since configure, applied at the next

    @classmethod
    def of(cls, engine: Any, param: Callable[[str], Any], **state: Any) -> 'ModelInfo':
        """Describe the loaded ``engine``, or the configured model when none is loaded."""
        if engine is None:
            return cls(model=param('model'), backend=param('backend'), **state)
        return cls(model=engine.config.model, backend=engine.backend, device=engine.device_name,
                   precision=engine.precision_name, task=engine.task,
                   compile=engine.compile_status, compile_seconds=engine.compile_seconds,
                   loaded=True, **state)


@dataclass
class BatchStats:
    """Per-batch inference statistics of the inference thread."""

    sizes: dict[int, int]
    batch_ms: WindowStats
    frame_ms: WindowStats
    stage_ms: dict[str, WindowStats]
    failed_batches: int = 0


def camera_status(name: str, topic: str, state: str, stats: CameraStats,
                  counters: SlotCounters | None, info: ModelInfo,
                  inference_ms: float) -> DiagnosticStatus:
    """Return the status of one camera: level, message and its counters."""
    status = DiagnosticStatus(name=f'{name}: {topic}', hardware_id=info.model)
    in_rate, out_rate = stats.arrivals.rate(), stats.outputs.rate()
    if state != 'active':
        status.level, status.message = WARN, state
    elif info.problem:
        status.level, status.message = ERROR, info.problem
    elif in_rate == 0.0:
        status.level, status.message = WARN, 'no input'
    elif stats.last_problem and out_rate == 0.0:
        status.level, status.message = ERROR, stats.last_problem
    else:
        status.level, status.message = OK, 'segmenting'
    p50, p95 = stats.latency_ms.percentiles(50, 95)
    status.values = [
        _kv('input_rate_hz', in_rate), _kv('output_rate_hz', out_rate),
        _kv('frames_received', counters.received if counters else 0),
        _kv('frames_dropped', counters.dropped if counters else 0),
        _kv('frames_processed', stats.outputs.total),
        _kv('bad_frames', stats.bad_frames), _kv('failed_frames', stats.failed_frames),
        _kv('latency_p50_ms', p50), _kv('latency_p95_ms', p95),
        _kv('inference_ms', inference_ms),
        _kv('transport_ms_p50', stats.transport_ms.percentiles(50)[0]),
        _kv('decode_ms_p50', stats.decode_ms.percentiles(50)[0]),
        _kv('publish_ms_p50', stats.publish_ms.percentiles(50)[0]),
        _kv('tracks', 'off' if stats.tracks is None else stats.tracks),
        _kv('backend', info.backend), _kv('device', info.device),
        _kv('precision', info.precision), _kv('task', info.task), _kv('compile', info.compile),
        _kv('model', info.model), _kv('last_problem', stats.last_problem),
        _kv('pending_reconfigure', info.pending_reconfigure)]
    return status


def model_status(name: str, info: ModelInfo, batches: BatchStats) -> DiagnosticStatus:
    """Return the status of the model and its inference thread."""
    if info.problem:
        level, message = ERROR, info.problem
    elif info.loaded:
        level, message = OK, 'loaded'
    else:
        level, message = WARN, 'not loaded'
    status = DiagnosticStatus(name=f'{name}: model', hardware_id=info.model, level=level,
                              message=message)
    b50, b95 = batches.batch_ms.percentiles(50, 95)
    status.values = [
        _kv('batch_size_histogram', json.dumps(dict(sorted(batches.sizes.items())))),
        _kv('inference_ms_per_batch_p50', b50), _kv('inference_ms_per_batch_p95', b95),
        _kv('inference_ms_per_frame_p50', batches.frame_ms.percentiles(50)[0]),
        *[_kv(f'{stage}_ms_p50', stats.percentiles(50)[0])
          for stage, stats in batches.stage_ms.items()],
        _kv('failed_batches', batches.failed_batches), _kv('worker_restarts', info.restarts),
        _kv('model', info.model), _kv('backend', info.backend), _kv('device', info.device),
        _kv('precision', info.precision), _kv('task', info.task), _kv('compile', info.compile),
        _kv('compile_seconds', info.compile_seconds)]
    return status
