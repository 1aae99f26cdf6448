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
The options of segment_bag, declared once: the API dataclasses and the command line come from here.

Every field carries its command-line flag, help text and argparse settings in its metadata
(see :func:`option`); :mod:`mask2former_ros.offline.cli` builds the parser from these fields.
"""

from dataclasses import dataclass, field, fields
from pathlib import Path
import re
from typing import Any

from mask2former_ros.core.engine_config import (
    DEFAULT_MASK_THRESHOLD, DEFAULT_OVERLAP_THRESHOLD, DEFAULT_SCORE_THRESHOLD, ENGINE_SETTINGS,
    parse_task, parse_threshold, TASK_CHOICES)
from mask2former_ros.core.postprocess.instance_tracking import DEFAULT_MAX_AGE
from mask2former_ros.offline.bag_io import BAG_SUFFIXES, output_topic, STORAGES
from mask2former_ros.offline.errors import OUTPUT_KINDS, SegmentBagError

_NAME_TOKEN = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
# The default outputs keep >= 0.85x the engine's frames/s (bench/bench_bag.py, README).
DEFAULT_OUTPUTS = 'labels,overlay'


def option(default: Any, help: str, *, group: str, flag: str | None = None,  # noqa: A002
           cli: bool = True, param: str | None = None, **argparse: Any) -> Any:
    """
    Declare an option: a dataclass field with its command-line settings as metadata.

    ``flag`` defaults to ``--<name-with-dashes>``; ``param`` is the node parameter of the same
    meaning (engine messages name it); ``argparse`` holds ``type``, ``choices``, ``metavar``.
    """
    return field(default=default, metadata={'help': help, 'group': group, 'flag': flag,
                                            'cli': cli, 'param': param, 'argparse': argparse})


def engine_option(name: str, help: str, *, choices: bool = False,  # noqa: A002
                  **argparse: Any) -> Any:
    """Declare the option of an engine setting: default (and choices) from ENGINE_SETTINGS."""
    setting = ENGINE_SETTINGS[name]
    if choices:
        argparse['choices'] = setting.choices
    return option(setting.default, help, group='model', param=name, **argparse)


@dataclass
class Options:
    """Settings of one bag's run; the fields mirror the command line options."""

    input_bag: Path = option(None, 'rosbag2 directory, .mcap or .db3 file', group='input',
                             cli=False)
    topic: str = option(None, 'sensor_msgs/msg/Image or CompressedImage topic to segment',
                        group='input', required=True)
    output: Path | None = option(
        None, 'output bag (one bag) or directory of output bags (several bags or a folder; '
        'default for one bag: <input>_segmented next to the input)', group='output', type=Path,
        metavar='PATH')
    output_storage: str = option('mcap', 'output storage (default: mcap)', group='output',
                                 choices=tuple(STORAGES))
    overwrite: bool = option(False, 'replace an existing output', group='output')
    no_output: bool = option(False, 'write no bag (e.g. only evaluate against ground truth)',
                             group='output')
    output_prefix: str = option('/segmentation', 'namespace of the output topics '
                                '<prefix>/labels|color|overlay (default: /segmentation)',
                                group='output')
    outputs: str = option(DEFAULT_OUTPUTS, 'output topics to write, comma-separated from '
                          'labels,color,overlay (default: labels,overlay; the colour mask is '
                          'the labels in the palette colours)', group='output', metavar='KINDS')
    compress: str = option(
        'color,overlay', 'outputs written as sensor_msgs/CompressedImage on '
        '<prefix>/<kind>/compressed, comma-separated from labels,color,overlay, or none: color '
        'and overlay as JPEG (--jpeg-quality), labels as lossless PNG (default: color,overlay; '
        'labels stay raw mono8)', group='output', metavar='KINDS')
    jpeg_quality: int = option(90, 'JPEG quality of compressed colour masks and overlays, '
                               '1..100 (default: 90)', group='output', type=int, metavar='Q')
    include_input: bool = option(False, 'copy the input topic into the output bag',
                                 group='output')
    overlay_alpha: float = option(0.5, 'weight of the class colours in the overlay, 0..1 '
                                  '(default: 0.5)', group='output', type=float)
    model: str = engine_option('model', 'hub id or local checkpoint directory (default: the '
                               "node's default model, the Cityscapes Swin-L checkpoint)")
    device: str = engine_option('device', 'auto, cpu, cuda or cuda:N')
    precision: str = engine_option('precision', 'auto, fp32, fp16 (CUDA) or bf16')
    input_size: str | int = engine_option('input_size', "'checkpoint' (default), 'native' or a "
                                          'short side in pixels')
    allow_pickle: bool = engine_option('allow_pickle', 'allow pickle (*.bin) weights; they can '
                                       'run code when loaded')
    backend: str = engine_option('backend', 'torch (eager PyTorch, default) or onnxruntime (a '
                                 'graph exported by mask2former_export, served without torch)',
                                 choices=True)
    onnx_model: str = engine_option('onnx_model', 'with --backend onnxruntime: the exported graph '
                                    "(default: export --model for the first bag's frame size "
                                    'into the user cache, once)', metavar='FILE')
    onnx_providers: str = option('auto', 'with --backend onnxruntime: execution providers in '
                                 'order, comma-separated from tensorrt,cuda,cpu (default auto: '
                                 'the best available)', group='model', param='onnx_providers',
                                 metavar='LIST')
    frame_size: str = engine_option('frame_size', 'frame size HxW the graph is exported for '
                                    "(default: the first bag's)", metavar='HxW')
    compile: str = engine_option(  # noqa: A003 - the node parameter's name
        'compile', 'backend torch: torch.compile mode of the model forward, compiled before the '
        "first frame for the first bag's frame size (auto: off on the CPU, reduce-overhead on "
        'CUDA)', choices=True)
    task: str = engine_option('task', 'auto (read from the checkpoint, or from --onnx-model), '
                              'semantic, panoptic or instance', choices=True)
    score_threshold: float = engine_option(
        'score_threshold', 'panoptic/instance: keep a query whose class score is above this, '
        f'0..1 (default: {DEFAULT_SCORE_THRESHOLD})', type=float, metavar='T')
    mask_threshold: float = engine_option(
        'mask_threshold', "panoptic/instance: a query's mask is where its sigmoid is at least "
        f'this, 0..1 (default: {DEFAULT_MASK_THRESHOLD})', type=float, metavar='T')
    overlap_threshold: float = engine_option(
        'overlap_threshold', 'panoptic/instance: keep a segment that keeps more than this share '
        f'of its mask, 0..1 (default: {DEFAULT_OVERLAP_THRESHOLD})', type=float, metavar='T')
    tracking: str = option(
        'on', 'panoptic/instance: on (default) gives every instance the id of its track, the '
        'same object keeping its id across frames; off: ids per frame', group='model',
        param='tracking', choices=('on', 'off'))
    track_max_age: int = option(
        DEFAULT_MAX_AGE, 'with --tracking on: a track ends after this many processed frames '
        f'without its object (default: {DEFAULT_MAX_AGE})', group='model', param='track_max_age',
        type=int, metavar='N')
    torch_threads: int | None = option(None, "torch intra-op threads (default: torch's choice, "
                                       'one per core); fewer leave cores to the helper threads',
                                       group='model', type=int, metavar='N')
    realtime: bool = option(False, "replay frames at their log time with the node's "
                            'newest-frame-wins rule; frames the model cannot keep up with are '
                            'dropped', group='run')
    max_frames: int | None = option(None, 'only the first N messages of the topic', group='run',
                                    type=int, metavar='N')
    prefetch: int = option(4, 'frames read and decoded ahead of the model, and results queued '
                           'for writing, by two helper threads (0: all in one thread; default 4)',
                           group='run', type=int, metavar='N')
    progress: bool = option(True, 'no progress display', group='run', flag='--no-progress')
    gt_topic: str | None = option(None, 'mono8/mono16 label Image topic in the same bag, '
                                  'matched by stamp', group='evaluation')
    gt_instances_topic: str | None = option(
        None, 'mono16 instance-id Image topic beside --gt-topic (0: no instance; thing pixels '
        'with id 0 are crowd), matched by stamp: panoptic quality (PQ, SQ, RQ) of a panoptic '
        'or instance model', group='evaluation', metavar='TOPIC')
    gt_track_ids: bool = option(
        False, 'the ids of --gt-instances-topic persist across frames (one id, one object over '
        'the bag): also report tracking metrics (HOTA, DetA, AssA, IDF1, MOTA, ID switches)',
        group='evaluation')
    gt_dir: Path | None = option(None, 'directory of label PNGs (see below for their names)',
                                 group='evaluation', type=Path, metavar='DIR')
    gt_labelids: bool = option(False, 'ground truth holds Cityscapes labelIds (mapped to train '
                               'ids)', group='evaluation')


@dataclass
class FleetOptions:
    """Settings of a run over several bags (and of the summary of any run)."""

    summary: Path | None = option(None, 'write the JSON summary to this file instead of stdout',
                                  group='run', type=Path, metavar='FILE')
    resume: bool = option(False, 'skip bags whose output bag and per-bag summary in --output '
                          'are complete', group='fleet')
    report: Path | None = option(None, 'write an HTML report (summary.json, thumbnails of the '
                                 'worst frames) into this directory', group='fleet', type=Path,
                                 metavar='DIR')
    worst_frames: int = option(6, 'number of worst frames (lowest frame mIoU) kept for the '
                               'report (default: 6)', group='fleet', type=int, metavar='K')
    workers: int = option(1, 'bags processed at once; N > 1 runs N Ray actors (default: 1, '
                          'in this process, without Ray)', group='fleet', type=int,
                          metavar='N')
    ray_address: str | None = option(None, "attach to a Ray cluster: 'auto' or "
                                     'ray://host:port (default: start a local Ray)',
                                     group='fleet', metavar='ADDR')
    gpus_per_worker: float = option(0.0, 'GPUs per Ray actor, may be fractional (default: 0)',
                                    group='fleet', type=float, metavar='F')


def cli_fields(*classes: type) -> list:
    """Return the fields of ``classes`` that are command line options, in declaration order."""
    return [f for cls in classes for f in fields(cls) if f.metadata.get('cli', True)]


def flag_of(name: str) -> str:
    """Return the command line flag of an option field."""
    for f in cli_fields(Options, FleetOptions):
        if f.name == name:
            return f.metadata['flag'] or '--' + name.replace('_', '-')
    raise KeyError(name)


def normalise_prefix(prefix: str) -> str:
    """Return ``prefix`` as an absolute topic namespace, or raise SegmentBagError."""
    tokens = [t for t in str(prefix).strip().split('/') if t]
    if not tokens or not all(_NAME_TOKEN.match(t) for t in tokens):
        raise SegmentBagError(f"invalid --output-prefix '{prefix}': expected a topic "
                              'namespace such as /segmentation')
    return '/' + '/'.join(tokens)


def default_output(input_bag: Path) -> Path:
    """Return ``<input>_segmented`` next to the input (a .mcap/.db3 suffix is dropped)."""
    input_bag = Path(input_bag)
    stem = input_bag.stem if input_bag.suffix in BAG_SUFFIXES else input_bag.name
    return input_bag.with_name(f'{stem}_segmented')


def output_kinds(text: str, flag: str = '--outputs', also: str = '') -> tuple[str, ...]:
    """Return the output kinds named in ``text`` ('labels,overlay'), in the canonical order."""
    names = [t.strip() for t in str(text).split(',') if t.strip()]
    unknown = sorted(set(names) - set(OUTPUT_KINDS))
    if unknown or not names:
        raise SegmentBagError(f"invalid {flag} '{text}': expected one or more of "
                              f"{','.join(OUTPUT_KINDS)}{also}")
    return tuple(kind for kind in OUTPUT_KINDS if kind in names)


def compressed_kinds(text: str) -> tuple[str, ...]:
    """Return the kinds ``--compress`` names ('color,overlay'); () for 'none'."""
    if str(text).strip().lower() == 'none':
        return ()
    return output_kinds(text, '--compress', ', or none')


def output_topics(o: Options, instances: bool = False) -> list[str]:
    """
    Return the output topics of checked options, in the canonical order of the kinds.

    ``instances``: the engine gives instance ids, written beside the labels.
    """
    compress = compressed_kinds(o.compress)
    kinds = output_kinds(o.outputs)
    return [output_topic(o.output_prefix, kind, kind in compress) for kind in kinds] + \
        ([output_topic(o.output_prefix, 'instances')] if instances and 'labels' in kinds
         else [])


def check_options(o: Options) -> None:
    """Validate combinations and ranges (in place: normalises the output prefix and kinds)."""
    if o.gt_topic and o.gt_dir:
        raise SegmentBagError('--gt-topic and --gt-dir are mutually exclusive')
    if o.gt_labelids and not (o.gt_topic or o.gt_dir):
        raise SegmentBagError('--gt-labelids needs --gt-topic or --gt-dir')
    _check_panoptic(o)
    _check_tracking(o)
    if o.max_frames is not None and o.max_frames < 1:
        raise SegmentBagError(f'--max-frames must be >= 1, got {o.max_frames}')
    if o.torch_threads is not None and o.torch_threads < 1:
        raise SegmentBagError(f'--torch-threads must be >= 1, got {o.torch_threads}')
    if o.prefetch < 0:
        raise SegmentBagError(f'--prefetch must be >= 0, got {o.prefetch}')
    if not 0.0 <= o.overlay_alpha <= 1.0:
        raise SegmentBagError(f'--overlay-alpha must be within [0, 1], got {o.overlay_alpha}')
    if o.output_storage not in STORAGES:
        raise SegmentBagError(f"--output-storage must be one of {', '.join(STORAGES)}")
    if o.no_output and (o.include_input or o.output is not None):
        raise SegmentBagError('--no-output excludes --output and --include-input')
    if o.gt_topic and o.gt_topic == o.topic:
        raise SegmentBagError('--gt-topic must differ from --topic')
    if not 1 <= o.jpeg_quality <= 100:
        raise SegmentBagError(f'--jpeg-quality must be within [1, 100], got {o.jpeg_quality}')
    o.output_prefix = normalise_prefix(o.output_prefix)
    o.outputs = ','.join(output_kinds(o.outputs))
    o.compress = ','.join(compressed_kinds(o.compress)) or 'none'
    if o.include_input and o.topic in output_topics(o, instances=True):
        raise SegmentBagError(f"input topic '{o.topic}' collides with an output topic; "
                              'choose another --output-prefix')


def _check_panoptic(o: Options) -> None:
    """Validate --task, the thresholds and --gt-instances-topic (normalises the task)."""
    try:
        task = parse_task(o.task)
    except ValueError:
        raise SegmentBagError(f"invalid --task '{o.task}': expected one of "
                              f"{', '.join(TASK_CHOICES)}") from None
    o.task = task
    for name in ('score_threshold', 'mask_threshold', 'overlap_threshold'):
        value = getattr(o, name)
        try:
            parse_threshold(name, value)
        except ValueError:
            raise SegmentBagError(f'{flag_of(name)} must be within [0, 1], got {value}') from None
    if o.gt_instances_topic is None:
        return
    if not o.gt_topic:
        raise SegmentBagError('--gt-instances-topic needs --gt-topic (the semantic labels the '
                              'instance ids belong to)')
    if o.gt_instances_topic in (o.topic, o.gt_topic):
        raise SegmentBagError('--gt-instances-topic must differ from --topic and --gt-topic')
    if task == 'semantic':
        raise SegmentBagError('--gt-instances-topic measures panoptic quality: it needs --task '
                              'panoptic or instance (or auto with a panoptic checkpoint), not '
                              'semantic')


def _check_tracking(o: Options) -> None:
    """Validate --tracking, --track-max-age and --gt-track-ids."""
    if o.tracking not in ('on', 'off'):
        raise SegmentBagError(f"--tracking must be on or off, got '{o.tracking}'")
    if isinstance(o.track_max_age, bool) or not isinstance(o.track_max_age, int) or \
            o.track_max_age < 0:
        raise SegmentBagError(f'--track-max-age must be an integer >= 0, got {o.track_max_age}')
    if o.gt_track_ids and not o.gt_instances_topic:
        raise SegmentBagError('--gt-track-ids needs --gt-instances-topic (the instance ids '
                              'whose tracks are scored)')


def check_engine_task(o: Options, engine: Any) -> None:
    """Refuse panoptic ground truth for an engine that serves semantic segmentation."""
    if o.gt_instances_topic and getattr(engine, 'task', 'semantic') == 'semantic':
        raise SegmentBagError(
            f"--gt-instances-topic measures panoptic quality, but '{engine.config.model}' "
            'serves task semantic; pass --task panoptic (or instance) with a panoptic or '
            'instance checkpoint')


def check_fleet_options(f: FleetOptions) -> None:
    """Validate the fleet settings."""
    if f.workers < 1:
        raise SegmentBagError(f'--workers must be >= 1, got {f.workers}')
    if f.worst_frames < 0:
        raise SegmentBagError(f'--worst-frames must be >= 0, got {f.worst_frames}')
    if f.gpus_per_worker < 0:
        raise SegmentBagError(f'--gpus-per-worker must be >= 0, got {f.gpus_per_worker}')


def make_options(cls: type, values: dict[str, Any]) -> Any:
    """Build ``cls`` from keyword values, refusing unknown names, with paths as Path."""
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
    out = cls(**values)
    for f in fields(cls):
        if f.metadata['argparse'].get('type') is Path or f.name == 'input_bag':
            value = getattr(out, f.name)
            if value is not None:
                setattr(out, f.name, Path(value))
    return out
