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

"""Choosing the engine of a backend: torch eager or ONNX Runtime (imports only the one asked)."""

from typing import Callable

from mask2former_ros.core.engine_config import EngineConfig, parse_backend
from mask2former_ros.core.results import Segmenter


def create_engine(config: EngineConfig, log: Callable[[str], None] | None = None,
                  warn: Callable[[str], None] | None = None) -> Segmenter:
    """
    Load the engine of ``config.backend`` on the calling thread (its owner thread).

    ``torch`` imports torch and transformers; ``onnxruntime`` imports neither (unless it has
    to export a graph, which runs in a child process). Raises ValueError for bad settings and
    :class:`~mask2former_ros.core.checkpoint.ModelLoadError` for a model that cannot be loaded.
    """
    if parse_backend(config.backend) == 'onnxruntime':
        from mask2former_ros.core.backends.onnx_engine import OnnxSegmentationEngine
        return OnnxSegmentationEngine(config, log=log, warn=warn)
    from mask2former_ros.core.backends.torch_engine import SegmentationEngine
    return SegmentationEngine(config, log=log, warn=warn)
