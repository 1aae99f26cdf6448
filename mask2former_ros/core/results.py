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

"""What every segmentation backend returns and raises, and the interface they share (no torch)."""

from dataclasses import dataclass, field
import threading
from typing import Any, Protocol, Sequence

from mask2former_ros.core.engine_config import EngineConfig
import numpy as np

NON_FINITE = 'non-finite model output (NaN/inf logits, e.g. fp16 overflow)'
STAGES = ('preprocess', 'model', 'postprocess')


class WrongThreadError(RuntimeError):
    """Work of an engine was asked for on another thread than the one that loaded it."""


class InferenceOutOfMemoryError(RuntimeError):
    """The device ran out of memory for a batch; the cache was freed and the engine goes on."""


# The void label: ground-truth pixels that are not scored (metrics, panoptic quality,
# Cityscapes labelIds outside the 19 classes), and predicted pixels that no segment covers.
IGNORE_LABEL = 255
# Label of pixels that no segment covers (panoptic and instance tasks).
NO_SEGMENT = IGNORE_LABEL


@dataclass(frozen=True)
class Segment:
    """
    One thing instance of a panoptic or instance result.

    ``instance_id`` is its value in the instance image (1..65535, 1 = the highest score);
    ``box`` its pixel bounds in the input frame, ``(x_min, y_min, x_max, y_max)`` inclusive;
    ``area`` its pixel count in the instance image.
    """

    instance_id: int
    class_id: int
    score: float
    box: tuple[int, int, int, int]
    area: int


@dataclass
class SegmentationResult:
    """
    Output of one frame: label map at the input resolution and optional confidence.

    Panoptic and instance tasks add ``instances`` (H, W) uint16, 0 = no instance, and their
    ``segments`` in id order; ``labels`` stay the semantic label map (:data:`NO_SEGMENT` where
    no segment covers a pixel).
    """

    labels: np.ndarray | None
    confidence: np.ndarray | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    error: str | None = None  # set (and labels None) when this frame failed, e.g. NaN logits
    instances: np.ndarray | None = None
    segments: tuple[Segment, ...] = ()

    @property
    def ok(self) -> bool:
        """Return True when the frame has labels."""
        return self.error is None


class Segmenter(Protocol):
    """
    What the node and segment_bag use of an engine, whichever backend runs it.

    ``timings_ms`` of each result hold :data:`STAGES` (ms per frame) and ``batch_size``.
    """

    config: EngineConfig
    class_names: list[str]
    palette: np.ndarray
    label_dtype: Any
    load_seconds: float
    backend: str  # 'torch' or 'onnxruntime'
    device_name: str  # e.g. 'cpu', 'cuda:0', or the ONNX Runtime provider that runs
    precision_name: str  # 'fp32', 'fp16', 'bf16'
    input_size: str | int
    task: str  # the task served: 'semantic', 'panoptic' or 'instance'
    thing_ids: frozenset[int]  # classes counted as instances (empty for semantic)
    compile_status: str  # torch.compile: 'off', the mode, or 'off (failed: <reason>)'
    compile_seconds: float  # spent compiling (at configure, and for new input shapes)

    @property
    def num_classes(self) -> int: ...  # noqa: D102

    @property
    def owner_thread(self) -> threading.Thread: ...  # noqa: D102

    def warmup(self) -> None: ...  # noqa: D102

    def segment(self, image: np.ndarray) -> SegmentationResult: ...  # noqa: D102

    def segment_batch(self, images: Sequence[np.ndarray]) -> list[SegmentationResult]: ...  # noqa: D102,E501

    def close(self) -> None: ...  # noqa: D102


def only_result(results: list[SegmentationResult]) -> SegmentationResult:
    """Return the result of a one-frame batch; raise RuntimeError if that frame failed."""
    result = results[0]
    if result.error is not None:
        raise RuntimeError(result.error)
    return result


def check_rgb(image: np.ndarray) -> None:
    """Raise ValueError unless ``image`` is a non-empty HxWx3 uint8 array."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f'expected an HxWx3 uint8 RGB image, got {image.dtype} '
                         f'{tuple(image.shape)}')
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f'empty image {tuple(image.shape)}')


class OwnerThread:
    """The thread that loaded an engine: the only one that may run it."""

    def __init__(self, what: str) -> None:
        """Remember the calling thread; ``what`` names the work in the error (e.g. 'torch')."""
        self.thread = threading.current_thread()
        self._what = what

    def check(self) -> None:
        """Raise :class:`WrongThreadError` unless called on the owner thread."""
        current = threading.current_thread()
        if current is not self.thread:
            raise WrongThreadError(
                f"{self._what} work on thread '{current.name}', but the engine was loaded on "
                f"'{self.thread.name}': all {self._what} work must run on that one thread")
