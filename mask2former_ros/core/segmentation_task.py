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
Which task a checkpoint serves (semantic, panoptic, instance) and which classes are things.

Mask2Former checkpoints share one architecture; what they were trained for shows in their name
(``facebook/mask2former-swin-large-cityscapes-panoptic``) or, for checkpoints made here, in the
``mask2former_ros_task`` key of their ``config.json``. No torch, no ROS.
"""

import json
from pathlib import Path, PurePath
import re
from types import SimpleNamespace
from typing import Any, Callable, Sequence

from mask2former_ros.core.cityscapes import is_cityscapes
from mask2former_ros.core.engine_config import parse_task

TASK_CONFIG_KEY = 'mask2former_ros_task'
SERVED_TASKS = ('semantic', 'panoptic', 'instance')
# Cityscapes' instance classes (cityscapesScripts labels.py, hasInstances) as train ids.
CITYSCAPES_THING_IDS = frozenset(range(11, 19))
# COCO panoptic (133 classes): the first 80 are the things.
COCO_PANOPTIC_CLASSES = 133
COCO_THING_COUNT = 80


class TaskMismatchError(ValueError):
    """The task asked for cannot be served by this checkpoint."""


def declared_task(model: str, config: Any) -> tuple[str | None, str]:
    """
    Return (task, how it was found) that a checkpoint declares, or (None, '').

    The ``mask2former_ros_task`` key of its config wins; then a word ``semantic``, ``panoptic``
    or ``instance`` in the last part of its name or path, then in the part before.
    """
    value = str(getattr(config, TASK_CONFIG_KEY, '') or '').strip().lower()
    if value in SERVED_TASKS:
        return value, f"its config.json ('{TASK_CONFIG_KEY}': '{value}')"
    parts = PurePath(str(model).rstrip('/\\')).parts[-2:]
    for part in reversed(parts):
        words = set(re.split(r'[^a-z]+', part.lower()))
        found = [task for task in SERVED_TASKS if task in words]
        if len(found) == 1:
            return found[0], f"its name ('{part}')"
    return None, ''


def resolve_task(requested: str, model: str, config: Any,
                 log: Callable[[str], None] | None = None) -> str:
    """
    Return the task to serve for ``requested`` (``auto`` reads the checkpoint).

    ``auto`` on a checkpoint that declares nothing serves semantic and says so through ``log``.
    Raises :class:`TaskMismatchError` for panoptic or instance on a semantic checkpoint.
    """
    task = parse_task(requested)
    declared, source = declared_task(model, config)
    if task == 'auto':
        if declared is None:
            if log is not None:
                log(f"task auto: '{model}' does not say which task it was trained for (no "
                    f"'{TASK_CONFIG_KEY}' in its config, no task in its name): serving semantic")
            return 'semantic'
        return declared
    if task != 'semantic' and declared == 'semantic':
        raise TaskMismatchError(
            f"task '{task}' needs a panoptic or instance checkpoint, but '{model}' is a semantic "
            f"one (by {source}); use task 'semantic', or a checkpoint such as "
            f'facebook/mask2former-swin-large-cityscapes-{task}')
    return task


def checkpoint_task(requested: str, model: str,
                    log: Callable[[str], None] | None = None) -> str:
    """
    :func:`resolve_task` for a checkpoint directory or hub id, without transformers.

    A local checkpoint's ``config.json`` is read as json; a hub id declares its task by name.
    """
    values: dict[str, Any] = {}
    config_file = Path(str(model)).expanduser() / 'config.json'
    try:
        values = json.loads(config_file.read_text())
    except (OSError, ValueError):
        pass  # no readable config: the name decides (loading the checkpoint reports the rest)
    return resolve_task(requested, model, SimpleNamespace(**values), log)


def graph_task(requested: str, recorded: str | None, path: str) -> str:
    """
    Return the task an exported graph serves for ``requested`` (``auto``: the graph's own).

    ``recorded`` is the task in the graph's metadata; graphs from before the task was
    recorded (None) hold the semantic post-processing. Raises :class:`TaskMismatchError` when
    another task is asked for than the graph was exported for.
    """
    task = parse_task(requested)
    served = recorded or 'semantic'
    if served not in SERVED_TASKS:
        raise TaskMismatchError(f"'{path}' names task '{served}' in its metadata, none of "
                                f"{', '.join(SERVED_TASKS)}: export it again")
    if task in ('auto', served):
        return served
    if recorded is None:
        raise TaskMismatchError(
            f"task '{task}', but '{path}' is a graph from before exported graphs recorded "
            f'their task: it holds the semantic post-processing; export one with '
            f'mask2former_export --task {task}, or use task semantic (or auto)')
    raise TaskMismatchError(
        f"task '{task}', but '{path}' was exported for task {served}; export one with "
        f'mask2former_export --task {task}, or set task to {served} (or auto)')


def thing_class_ids(class_names: Sequence[str], task: str) -> frozenset[int]:
    """
    Return the class ids that are things (counted as instances) for ``task``.

    Instance checkpoints: every class. Panoptic: Cityscapes' eight instance classes, COCO
    panoptic's first 80; for other class lists every class (transformers' default of fusing
    nothing). Semantic: none.
    """
    if task == 'semantic':
        return frozenset()
    if task == 'panoptic' and is_cityscapes(class_names):
        return CITYSCAPES_THING_IDS
    if task == 'panoptic' and len(class_names) == COCO_PANOPTIC_CLASSES:
        return frozenset(range(COCO_THING_COUNT))
    return frozenset(range(len(class_names)))
