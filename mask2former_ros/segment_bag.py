"""
Segment the camera images of a rosbag2 bag offline with Mask2Former (no ROS middleware needed).

Command line (see ``segment_bag --help``)::

    segment_bag INPUT_BAG --topic /camera/image_raw [--output OUT_BAG] [--model M] ...

The input is a rosbag2 bag directory (MCAP or sqlite3 storage) or a single ``.mcap``/``.db3``
file, read with ``rosbags``; the topic may be ``sensor_msgs/msg/Image`` (any encoding of
:mod:`mask2former_ros.ros.image_conversion`) or ``sensor_msgs/msg/CompressedImage``.

Modes:

* default: every frame goes through the engine in bag order (log time), deterministically.
* ``--realtime``: frames *arrive at their log time* (the time the recorder received them,
  i.e. what a node sees when the bag is played back with ``ros2 bag play``), and
  :func:`mask2former_ros.core.frame_slot.simulate_realtime` replays the node's newest-frame-wins
  rule on a virtual clock advanced by the real processing time of each frame (decode,
  inference, writing, evaluation), so frames the model cannot keep up with are dropped.

Outputs (one output bag, MCAP by default): ``<prefix>/labels`` (mono8, or mono16 for more than
256 classes), ``<prefix>/color`` and ``<prefix>/overlay`` (rgb8), each with the input message's
header (stamp and frame_id) and written at the input message's log time; with
``--include-input`` the input topic is copied too (raw bytes, every message read, including
dropped and bad frames).

Ground truth (label ids per pixel, 255 = ignore; Cityscapes labelIds with ``--gt-labelids``):

* ``--gt-topic T``: a mono8/mono16 ``sensor_msgs/msg/Image`` topic in the same bag; a frame's
  ground truth is the message with the same header stamp.
* ``--gt-dir DIR``: PNG files (8 or 16 bit, single channel) named

  - ``<sec>_<nanosec>.png`` (e.g. ``1700000000_050000000.png``): the frame whose header stamp
    is sec * 10^9 + nanosec;
  - ``<digits>.png`` with 10 or more digits (e.g. ``1700000000050000000.png``): the frame whose
    header stamp is that many nanoseconds;
  - ``<digits>.png`` with at most 9 digits (e.g. ``000012.png``): the frame with that 0-based
    index among the messages of the image topic in bag order (counting every message, also
    dropped, bad and ``--max-frames``-skipped ones).

  A stamp match takes precedence over an index match. Other files are ignored.

The JSON summary goes to stdout (or ``--summary FILE``). Exit codes: 0 done, 1 model load or
inference failure, 2 usage or input error, 130 interrupted (Ctrl-C: the output bag is closed
properly with the frames processed so far and the summary says ``"interrupted": true``).
"""

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
import json
import math
from pathlib import Path
import re
import shutil
import signal
import sys
import threading
import time
from typing import Any, Callable

import cv2
from mask2former_ros.core.cityscapes import labelids_to_trainids
from mask2former_ros.core.frame_slot import simulate_realtime
from mask2former_ros.core.metrics import ConfusionMatrix, IGNORE_INDEX
from mask2former_ros.core.palette import colorize, overlay
from mask2former_ros.ros.image_conversion import compressed_to_rgb, image_to_rgb, stamp_ns
from mask2former_ros_fixtures.sample_bag import (
    COMPRESSED_IMAGE, IMAGE, labels_message, open_writer, rgb_message, STORAGES, typestore)
import numpy as np
from rosbags.rosbag2 import Reader

PROG = 'segment_bag'
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)
OUTPUT_KINDS = ('labels', 'color', 'overlay')
STAGES = ('decode', 'preprocess', 'model', 'postprocess', 'write', 'evaluate', 'frame')
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
MAX_BAD_FRAME_WARNINGS = 10
PROGRESS_LINE_PERIOD = 10.0  # seconds between progress lines when stderr is not a terminal
_GT_ENCODINGS = {'mono8': 1, '8uc1': 1, 'mono16': 2, '16uc1': 2}
_STAMP_PAIR = re.compile(r'^(\d+)_(\d+)$')
_DIGITS = re.compile(r'^\d+$')
_NAME_TOKEN = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')


class SegmentBagError(Exception):
    """A usage, input, model or inference error: one line for the user and an exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE,
                 summary: dict | None = None) -> None:
        """Store the message, the exit code and the summary of a run that had started."""
        super().__init__(message)
        self.exit_code = exit_code
        self.summary = summary


@dataclass
class Options:
    """Settings of one run; the fields mirror the command line options."""

    input_bag: Path
    topic: str
    output: Path | None = None
    output_storage: str = 'mcap'
    overwrite: bool = False
    no_output: bool = False
    model: str | None = None  # None: mask2former_ros.ros.parameters.DEFAULT_MODEL
    device: str = 'auto'
    precision: str = 'auto'
    input_size: str | int = 'checkpoint'
    allow_pickle: bool = False
    realtime: bool = False
    include_input: bool = False
    gt_topic: str | None = None
    gt_dir: Path | None = None
    gt_labelids: bool = False
    max_frames: int | None = None
    output_prefix: str = '/segmentation'
    overlay_alpha: float = 0.5
    progress: bool = True


def _format_stamp(stamp: int) -> str:
    sec, nanosec = divmod(stamp, 1_000_000_000)
    return f'{sec}.{nanosec:09d}'


def _one_line(exc: BaseException) -> str:
    text = ' '.join(str(exc).split())
    return text or type(exc).__name__


def _image_topics(reader: Reader) -> list[str]:
    return sorted(name for name, info in reader.topics.items() if info.msgtype in IMAGE_TYPES)


def _topic_list(reader: Reader) -> str:
    topics = _image_topics(reader)
    return f"image topics in the bag: {', '.join(topics)}" if topics else \
        'the bag has no sensor_msgs/msg/Image or CompressedImage topic'


def open_reader(path: Path) -> Reader:
    """Open a rosbag2 bag (directory, .mcap or .db3) or raise SegmentBagError."""
    path = Path(path)
    if not path.exists():
        raise SegmentBagError(f"input bag '{path}' does not exist")
    try:
        reader = Reader(path)
        reader.open()
    except FileNotFoundError:
        raise SegmentBagError(f"'{path}' is not a rosbag2 bag (no metadata.yaml)") from None
    except PermissionError as exc:
        raise SegmentBagError(f"cannot read input bag '{path}': {exc.strerror}") from None
    except Exception as exc:  # noqa: BLE001 - rosbags/apsw/mcap raise many types on bad files
        raise SegmentBagError(f"cannot read input bag '{path}' (corrupt or truncated?): "
                              f'{_one_line(exc)}') from None
    return reader


def _iterate(reader: Reader, connections: list, path: Path, topic: str,
             start: int | None = None, stop: int | None = None) -> Iterator[tuple[int, bytes]]:
    """Yield (log time, raw message) of ``connections``; read errors become SegmentBagError."""
    messages = reader.messages(connections, start=start, stop=stop)
    while True:
        try:
            _, log_time, raw = next(messages)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 - a corrupt chunk, a truncated file, ...
            raise SegmentBagError(f"cannot read '{topic}' from '{path}' (corrupt or "
                                  f'truncated?): {_one_line(exc)}') from None
        yield log_time, raw


class InputBag:
    """The image topic of the input bag: type detection, counting and message iteration."""

    def __init__(self, path: Path, topic: str) -> None:
        """Open ``path`` and check that ``topic`` exists and carries images."""
        self.path = Path(path)
        self.topic = topic
        self.reader = open_reader(self.path)
        topics = self.reader.topics
        problem = None
        if topic not in topics:
            problem = f"topic '{topic}' is not in '{self.path}'; {_topic_list(self.reader)}"
        elif topics[topic].msgtype not in IMAGE_TYPES:
            types = ', '.join(sorted({c.msgtype for c in topics[topic].connections}))
            problem = f"topic '{topic}' has type {types}; expected {IMAGE} or {COMPRESSED_IMAGE}"
        if problem:
            self.close()
            raise SegmentBagError(problem)
        info = topics[topic]
        self.msgtype: str = info.msgtype
        self.compressed = self.msgtype == COMPRESSED_IMAGE
        self.connections = list(info.connections)
        self.count = int(info.msgcount)

    def frames(self, limit: int | None = None) -> Iterator[tuple[int, int, bytes]]:
        """Yield (index, log time in ns, raw CDR bytes) of the topic's messages in bag order."""
        if limit is not None and limit < 1:
            return
        for index, (log_time, raw) in enumerate(
                _iterate(self.reader, self.connections, self.path, self.topic)):
            yield index, log_time, raw
            if limit is not None and index + 1 >= limit:
                return

    def deserialize(self, raw: bytes) -> Any:
        """Deserialise one raw message of the topic."""
        return typestore().deserialize_cdr(raw, self.msgtype)

    def to_rgb(self, msg: Any) -> np.ndarray:
        """Decode an Image or CompressedImage message to HxWx3 uint8 RGB."""
        return compressed_to_rgb(msg) if self.compressed else image_to_rgb(msg)

    def close(self) -> None:
        """Close the reader."""
        if self.reader.is_open:
            self.reader.close()


def label_array(msg: Any, what: str) -> np.ndarray:
    """Return the HxW uint8/uint16 label ids of a mono8/mono16 Image, or raise SegmentBagError."""
    encoding = str(msg.encoding)
    bpp = _GT_ENCODINGS.get(encoding.lower())
    if bpp is None:
        raise SegmentBagError(f"{what} has encoding '{encoding}'; ground truth must be label "
                              'ids in mono8 or mono16')
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    flat = np.frombuffer(msg.data, dtype=np.uint8)
    if height == 0 or width == 0 or step < width * bpp or flat.size < step * height:
        raise SegmentBagError(f'{what} is malformed ({width}x{height}, step {step}, '
                              f'{flat.size} bytes)')
    rows = np.ascontiguousarray(flat[:step * height].reshape(height, step)[:, :width * bpp])
    if bpp == 1:
        return rows
    return rows.view('>u2' if msg.is_bigendian else '<u2').astype(np.uint16)


class TopicGroundTruth:
    """Ground-truth label images from a topic of the input bag, matched by header stamp."""

    def __init__(self, path: Path, topic: str) -> None:
        """Index the topic's messages by header stamp (the pixels are read on demand)."""
        self.path = Path(path)
        self.topic = topic
        self.description = f'topic {topic}'
        self.reader = open_reader(self.path)
        try:
            topics = self.reader.topics
            if topic not in topics:
                raise SegmentBagError(f"ground-truth topic '{topic}' is not in '{self.path}'; "
                                      f'{_topic_list(self.reader)}')
            info = topics[topic]
            if info.msgtype != IMAGE:
                types = ', '.join(sorted({c.msgtype for c in info.connections}))
                raise SegmentBagError(f"ground-truth topic '{topic}' has type {types}; "
                                      f'expected {IMAGE} (mono8 label ids)')
            self.connections = list(info.connections)
            self.log_times: dict[int, int] = {}
            for log_time, raw in _iterate(self.reader, self.connections, self.path, topic):
                msg = self._deserialize(raw)
                label_array(msg, f"ground-truth message on '{topic}'")  # validate once
                self.log_times.setdefault(stamp_ns(msg.header), log_time)
        except BaseException:
            self.close()
            raise

    def _deserialize(self, raw: bytes) -> Any:
        try:
            return typestore().deserialize_cdr(raw, IMAGE)
        except Exception as exc:  # noqa: BLE001
            raise SegmentBagError(f"corrupt ground-truth message on '{self.topic}': "
                                  f'{_one_line(exc)}') from None

    def lookup(self, index: int, stamp: int) -> np.ndarray | None:
        """Return the label ids of the message stamped ``stamp``, or None."""
        log_time = self.log_times.get(stamp)
        if log_time is None:
            return None
        for _, raw in _iterate(self.reader, self.connections, self.path, self.topic,
                               start=log_time, stop=log_time + 1):
            msg = self._deserialize(raw)
            if stamp_ns(msg.header) == stamp:
                return label_array(msg, f"ground-truth message on '{self.topic}'")
        return None

    def close(self) -> None:
        """Close the reader."""
        if self.reader.is_open:
            self.reader.close()


class DirGroundTruth:
    """Ground-truth label PNGs in a directory, named by stamp or frame index (module doc)."""

    def __init__(self, directory: Path) -> None:
        """Index the PNG files of ``directory`` by stamp and by frame index."""
        self.directory = Path(directory)
        self.description = f'directory {self.directory}'
        if not self.directory.is_dir():
            raise SegmentBagError(f"ground-truth directory '{self.directory}' does not exist")
        self.by_stamp: dict[int, Path] = {}
        self.by_index: dict[int, Path] = {}
        for path in sorted(self.directory.iterdir()):
            if path.suffix.lower() != '.png' or not path.is_file():
                continue
            stem = path.stem
            pair = _STAMP_PAIR.match(stem)
            if pair and int(pair.group(2)) < 1_000_000_000:
                key, table = int(pair.group(1)) * 1_000_000_000 + int(pair.group(2)), \
                    self.by_stamp
            elif _DIGITS.match(stem):
                key = int(stem)
                table = self.by_stamp if len(stem) >= 10 else self.by_index
            else:
                continue
            if key in table:
                raise SegmentBagError(f"ground-truth files '{table[key].name}' and "
                                      f"'{path.name}' name the same frame")
            table[key] = path
        if not self.by_stamp and not self.by_index:
            raise SegmentBagError(
                f"ground-truth directory '{self.directory}' has no PNG named <index>.png, "
                '<sec>_<nanosec>.png or <stamp_ns>.png')

    def lookup(self, index: int, stamp: int) -> np.ndarray | None:
        """Return the label ids of the frame (stamp match first, then index), or None."""
        path = self.by_stamp.get(stamp) or self.by_index.get(index)
        if path is None:
            return None
        labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if labels is None:
            raise SegmentBagError(f"cannot read ground-truth image '{path}'")
        if labels.ndim == 3:
            if labels.shape[2] == 3 and (labels == labels[:, :, :1]).all():
                labels = labels[:, :, 0]
            else:
                raise SegmentBagError(
                    f"ground-truth image '{path}' has {labels.shape[2]} colour channels; "
                    'expected single-channel label ids (e.g. *_labelTrainIds.png)')
        if labels.dtype not in (np.uint8, np.uint16):
            raise SegmentBagError(f"ground-truth image '{path}' has pixel type {labels.dtype}; "
                                  'expected 8 or 16 bit label ids')
        return labels

    def close(self) -> None:
        """Nothing to release."""


class OutputBag:
    """The output bag: label, colour and overlay images (and optionally the input topic)."""

    def __init__(self, path: Path, storage: str, prefix: str, input_bag: InputBag | None,
                 custom: dict[str, str]) -> None:
        """Create the bag and its connections."""
        self.path = path
        self.writer = open_writer(path, storage)
        try:
            for key, value in custom.items():
                self.writer.set_custom_data(key, value)
            self.connections = {
                kind: self.writer.add_connection(f'{prefix}/{kind}', IMAGE, typestore=typestore())
                for kind in OUTPUT_KINDS}
            self.input_connection = None
            if input_bag is not None:
                conn = input_bag.connections[0]
                if conn.msgdef.data and conn.digest:
                    self.input_connection = self.writer.add_connection(
                        input_bag.topic, conn.msgtype, msgdef=conn.msgdef.data,
                        rihs01=conn.digest)
                else:
                    self.input_connection = self.writer.add_connection(
                        input_bag.topic, conn.msgtype, typestore=typestore())
        except BaseException:
            self.writer.abort()
            raise

    def write_frame(self, log_time: int, header: Any, rgb: np.ndarray, labels: np.ndarray,
                    palette: np.ndarray, alpha: float) -> None:
        """Write the labels, colour mask and overlay of one frame."""
        color = colorize(labels, palette)
        messages = {'labels': labels_message(labels, header),
                    'color': rgb_message(color, header),
                    'overlay': rgb_message(overlay(rgb, labels, palette, alpha, color=color),
                                           header)}
        raws = {kind: typestore().serialize_cdr(msg, IMAGE) for kind, msg in messages.items()}
        for kind, raw in raws.items():
            self.writer.write(self.connections[kind], log_time, raw)

    def copy_input(self, log_time: int, raw: bytes) -> None:
        """Copy one raw input message (with --include-input)."""
        if self.input_connection is not None:
            self.writer.write(self.input_connection, log_time, raw)

    def close(self) -> None:
        """Write the index and metadata; the bag is readable afterwards."""
        self.writer.close()


class StageTimes:
    """Per-frame durations (ms) of the pipeline stages."""

    def __init__(self) -> None:
        """Start empty."""
        self.values: dict[str, list[float]] = {stage: [] for stage in STAGES}

    def add(self, stage: str, ms: float) -> None:
        """Record one duration."""
        self.values[stage].append(float(ms))

    def summary(self) -> dict[str, dict[str, float]]:
        """Return mean, p50 and p95 of every stage that has values."""
        out = {}
        for stage, values in self.values.items():
            if values:
                p50, p95 = np.percentile(values, [50, 95])
                out[stage] = {'mean': round(float(np.mean(values)), 3),
                              'p50': round(float(p50), 3), 'p95': round(float(p95), 3)}
        return out


class Progress:
    """Progress on stderr: a tqdm bar on a terminal, a line every few seconds otherwise."""

    def __init__(self, total: int, enabled: bool) -> None:
        """Create the bar (terminal) or the line printer (pipe, file), or nothing."""
        self.total = total
        self.bar = None
        self.lines = False
        self._last_line = time.monotonic()
        self._first = True
        if not enabled:
            return
        if sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=total, unit='frame', file=sys.stderr, dynamic_ncols=True,
                            desc=PROG, leave=True)
        else:
            self.lines = True

    def set_total(self, total: int) -> None:
        """Change the number of frames expected."""
        self.total = total
        if self.bar is not None:
            self.bar.total = total

    def write(self, text: str) -> None:
        """Print a message line without breaking the bar."""
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def update(self, done: int, processed: int, dropped: int, bad: int) -> None:
        """Report that ``done`` frames of ``total`` are handled."""
        if self.bar is not None:
            self.bar.n = done
            self.bar.set_postfix(dropped=dropped, bad=bad, refresh=False)
            self.bar.refresh()
        elif self.lines:
            now = time.monotonic()
            if (self._first and processed) or now - self._last_line >= PROGRESS_LINE_PERIOD:
                self._first = self._first and not processed
                self._last_line = now
                self.write(f'{PROG}: {done}/{self.total} frames, {processed} processed, '
                           f'{dropped} dropped, {bad} bad')

    def close(self) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class SigintGuard:
    """Turn SIGINT into KeyboardInterrupt, except inside critical sections (deferred)."""

    def __init__(self) -> None:
        """Create an inactive guard."""
        self.depth = 0
        self.pending = False
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> 'SigintGuard':
        """Install the handler (only possible in the main thread)."""
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: Any) -> None:
        """Restore the previous handler."""
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self.depth:
            self.pending = True
        else:
            raise KeyboardInterrupt

    @contextmanager
    def critical(self, reraise: bool = True) -> Iterator[None]:
        """Defer SIGINT until the block is done (then raise it if ``reraise``)."""
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if not self.depth and self.pending and reraise:
                self.pending = False
                raise KeyboardInterrupt


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


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
    stem = input_bag.stem if input_bag.suffix in ('.mcap', '.db3') else input_bag.name
    return input_bag.with_name(f'{stem}_segmented')


class BagSegmenter:
    """One run of segment_bag: see :func:`segment_bag`."""

    def __init__(self, options: Options, engine: Any = None,
                 log: Callable[[str], None] | None = None) -> None:
        """Store the settings; ``engine`` (a SegmentationEngine) skips loading a model."""
        self.options = options
        self.engine = engine
        self._external_log = log
        self.progress: Progress | None = None
        self.times = StageTimes()
        self.processed = self.dropped = self.bad = self.read = 0
        self.total = 0
        self.complete = False
        self.frames_evaluated = self.frames_without_gt = 0
        self.confusion: ConfusionMatrix | None = None
        self.bag: InputBag | None = None
        self.gt: TopicGroundTruth | DirGroundTruth | None = None
        self.output: OutputBag | None = None
        self.output_path: Path | None = None
        self.guard = SigintGuard()
        self.load_seconds = 0.0
        self.wall_seconds = 0.0
        self.arrival_span = 0.0
        self._bad_warnings = 0

    # --- messages -------------------------------------------------------------------------

    def log(self, text: str) -> None:
        """Print an informational line on stderr (or pass it to the caller's logger)."""
        if self._external_log is not None:
            self._external_log(text)
        elif self.progress is not None:
            self.progress.write(f'{PROG}: {text}')
        else:
            print(f'{PROG}: {text}', file=sys.stderr, flush=True)

    def _warn_bad(self, index: int, stamp: int | None, exc: BaseException) -> None:
        self._bad_warnings += 1
        if self._bad_warnings > MAX_BAD_FRAME_WARNINGS:
            return
        where = f'frame {index}' + ('' if stamp is None else f' (stamp {_format_stamp(stamp)})')
        self.log(f'warning: bad {where} on {self.options.topic} skipped: {_one_line(exc)}')
        if self._bad_warnings == MAX_BAD_FRAME_WARNINGS:
            self.log('warning: further bad-frame warnings are suppressed')

    # --- set-up ---------------------------------------------------------------------------

    def _check_options(self) -> None:
        o = self.options
        if o.gt_topic and o.gt_dir:
            raise SegmentBagError('--gt-topic and --gt-dir are mutually exclusive')
        if o.gt_labelids and not (o.gt_topic or o.gt_dir):
            raise SegmentBagError('--gt-labelids needs --gt-topic or --gt-dir')
        if o.max_frames is not None and o.max_frames < 1:
            raise SegmentBagError(f'--max-frames must be >= 1, got {o.max_frames}')
        if not 0.0 <= o.overlay_alpha <= 1.0:
            raise SegmentBagError(f'--overlay-alpha must be within [0, 1], got '
                                  f'{o.overlay_alpha}')
        if o.output_storage not in STORAGES:
            raise SegmentBagError(f"--output-storage must be one of {', '.join(STORAGES)}")
        if o.no_output and (o.include_input or o.output is not None):
            raise SegmentBagError('--no-output excludes --output and --include-input')
        if o.gt_topic and o.gt_topic == o.topic:
            raise SegmentBagError('--gt-topic must differ from --topic')
        o.output_prefix = normalise_prefix(o.output_prefix)
        outputs = {f'{o.output_prefix}/{kind}' for kind in OUTPUT_KINDS}
        if o.include_input and o.topic in outputs:
            raise SegmentBagError(f"input topic '{o.topic}' collides with an output topic; "
                                  'choose another --output-prefix')

    def _resolve_output(self) -> None:
        o = self.options
        if o.no_output:
            return
        path = Path(o.output) if o.output is not None else default_output(o.input_bag)
        target, source = path.resolve(), Path(o.input_bag).resolve()
        if target == source or source in target.parents or target in source.parents:
            raise SegmentBagError(f"output '{path}' would overwrite the input bag")
        if path.exists():
            if not o.overwrite:
                raise SegmentBagError(f"output '{path}' exists; pass --overwrite to replace it")
            if not path.is_dir() or (any(path.iterdir())
                                     and not (path / 'metadata.yaml').exists()):
                raise SegmentBagError(f"output '{path}' exists and is not a rosbag2 bag; "
                                      'not replacing it')
        self.output_path = path

    def _check_gt_size(self) -> None:
        """Compare the first frame with its ground truth before the model is loaded."""
        for index, _, raw in self.bag.frames(limit=1):
            try:
                msg = self.bag.deserialize(raw)
                size = (self.bag.to_rgb(msg).shape[:2] if self.bag.compressed
                        else (int(msg.height), int(msg.width)))
            except Exception:  # noqa: BLE001 - a bad first frame is reported while running
                return
            truth = self.gt.lookup(index, stamp_ns(msg.header))
            if truth is not None and truth.shape != tuple(size):
                raise SegmentBagError(self._size_message(index, truth.shape, size))

    def _size_message(self, index: int, truth: tuple, frame: tuple) -> str:
        return (f'ground truth of frame {index} from {self.gt.description} is '
                f'{truth[1]}x{truth[0]} but the frame is {frame[1]}x{frame[0]}')

    def _load_engine(self) -> None:
        if self.engine is not None:
            return
        from mask2former_ros.core.engine import EngineConfig, ModelLoadError, SegmentationEngine
        from mask2former_ros.ros.parameters import DEFAULT_MODEL
        o = self.options
        o.model = o.model or DEFAULT_MODEL
        config = EngineConfig(model=o.model, device=o.device, precision=o.precision,
                              input_size=o.input_size, allow_pickle=o.allow_pickle)
        try:
            self.engine = SegmentationEngine(config, log=self.log)
        except ModelLoadError as exc:  # its hints name the node's parameters
            text = _one_line(exc).replace('as model:=DIR', 'with --model DIR').replace(
                'set allow_pickle:=true', 'pass --allow-pickle')
            raise SegmentBagError(text, EXIT_FAILURE) from None
        except ValueError as exc:  # device, precision or input size
            raise SegmentBagError(_one_line(exc)) from None
        self.load_seconds = self.engine.load_seconds

    def _open_output(self) -> None:
        if self.output_path is None:
            return
        if self.output_path.exists():  # an old bag and --overwrite, checked before
            shutil.rmtree(self.output_path)
        custom = {'mask2former_ros.model': str(self.engine.config.model),
                  'mask2former_ros.input_topic': self.options.topic,
                  'mask2former_ros.class_names': json.dumps(self.engine.class_names)}
        try:
            self.output = OutputBag(self.output_path, self.options.output_storage,
                                    self.options.output_prefix,
                                    self.bag if self.options.include_input else None, custom)
        except OSError as exc:
            raise SegmentBagError(f"cannot create output '{self.output_path}': "
                                  f'{_one_line(exc)}') from None

    # --- processing -----------------------------------------------------------------------

    def _done(self) -> int:
        return self.processed + self.dropped + self.bad

    def _update_progress(self) -> None:
        self.progress.update(self._done(), self.processed, self.dropped, self.bad)

    def _copy_input(self, log_time: int, raw: bytes) -> None:
        if self.output is not None and self.options.include_input:
            with self.guard.critical():
                self.output.copy_input(log_time, raw)

    def _handle(self, index: int, log_time: int, raw: bytes) -> None:
        """Decode, segment, write and evaluate one frame."""
        self.read = max(self.read, index + 1)
        self._copy_input(log_time, raw)
        t0 = time.perf_counter()
        stamp = None
        try:
            msg = self.bag.deserialize(raw)
            stamp = stamp_ns(msg.header)
            rgb = self.bag.to_rgb(msg)
        except Exception as exc:  # noqa: BLE001 - any malformed frame is skipped
            self.bad += 1
            self._warn_bad(index, stamp, exc)
            self._update_progress()
            return
        t1 = time.perf_counter()
        try:
            result = self.engine.segment(rgb)
        except Exception as exc:  # noqa: BLE001 - e.g. out of memory
            raise SegmentBagError(f'inference failed on frame {index}: {type(exc).__name__}: '
                                  f'{_one_line(exc)}', EXIT_FAILURE) from None
        t2 = time.perf_counter()
        if self.output is not None:
            with self.guard.critical():
                self.output.write_frame(log_time, msg.header, rgb, result.labels,
                                        self.engine.palette, self.options.overlay_alpha)
        t3 = time.perf_counter()
        if self.gt is not None:
            self._evaluate(index, stamp, result.labels)
            self.times.add('evaluate', (time.perf_counter() - t3) * 1e3)
        self.times.add('decode', (t1 - t0) * 1e3)
        for stage in ('preprocess', 'model', 'postprocess'):
            self.times.add(stage, result.timings_ms.get(stage, math.nan))
        if self.output is not None:
            self.times.add('write', (t3 - t2) * 1e3)
        self.times.add('frame', (time.perf_counter() - t0) * 1e3)
        self.processed += 1
        self._update_progress()

    def _evaluate(self, index: int, stamp: int, labels: np.ndarray) -> None:
        truth = self.gt.lookup(index, stamp)
        if truth is None:
            self.frames_without_gt += 1
            return
        if truth.shape != labels.shape:
            raise SegmentBagError(self._size_message(index, truth.shape, labels.shape))
        if self.options.gt_labelids:
            truth = labelids_to_trainids(truth)
        self.confusion.update(truth, labels)
        self.frames_evaluated += 1

    def _run_sequential(self) -> None:
        for index, log_time, raw in self.bag.frames(self.options.max_frames):
            self._handle(index, log_time, raw)
        self.total = self.read
        self.complete = True

    def _run_realtime(self) -> None:
        arrivals: list[tuple[float, int]] = []
        first = None
        for index, log_time, _ in self.bag.frames(self.options.max_frames):
            first = log_time if first is None else first
            arrivals.append(((log_time - first) / 1e9, index))
        self.total = len(arrivals)
        self.progress.set_total(self.total)
        self.arrival_span = arrivals[-1][0] if arrivals else 0.0
        source = self.bag.frames(self.options.max_frames)

        def process(wanted: int) -> None:
            # Frames before ``wanted`` arrived while the worker was busy and were replaced.
            for index, log_time, raw in source:
                if index < wanted:
                    self.read = index + 1
                    self.dropped += 1
                    self._copy_input(log_time, raw)
                    self._update_progress()
                    continue
                self._handle(index, log_time, raw)
                return

        _, dropped = simulate_realtime(arrivals, process)
        if dropped != self.dropped:  # both count the same replaced frames
            self.log(f'warning: simulate_realtime reports {dropped} dropped frames, '
                     f'{self.dropped} were skipped')
        self.complete = True

    # --- the run --------------------------------------------------------------------------

    def run(self) -> dict:
        """Run and return the summary; raise SegmentBagError for errors."""
        o = self.options
        self._check_options()
        self.bag = InputBag(o.input_bag, o.topic)
        try:
            if o.gt_topic:
                self.gt = TopicGroundTruth(o.input_bag, o.gt_topic)
            elif o.gt_dir:
                self.gt = DirGroundTruth(o.gt_dir)
            self._resolve_output()
            if self.gt is not None:
                self._check_gt_size()
            self._load_engine()
            if self.gt is not None:
                self.confusion = ConfusionMatrix(self.engine.num_classes, IGNORE_INDEX)
            self._open_output()
            return self._process()
        finally:
            if self.gt is not None:
                self.gt.close()
            self.bag.close()

    def _process(self) -> dict:
        o = self.options
        self.total = min(self.bag.count, o.max_frames) if o.max_frames else self.bag.count
        self.progress = Progress(self.total, o.progress and self._external_log is None)
        interrupted, error = False, None
        started = time.perf_counter()
        try:
            with self.guard:
                try:
                    if o.realtime:
                        self._run_realtime()
                    else:
                        self._run_sequential()
                except KeyboardInterrupt:
                    interrupted = True
                except SegmentBagError as exc:
                    error = exc
                finally:
                    self.wall_seconds = time.perf_counter() - started
                    with self.guard.critical(reraise=False):
                        self.progress.close()
                        if self.output is not None:
                            self.output.close()
                    interrupted = interrupted or self.guard.pending
        finally:
            self.progress.close()
        if interrupted:
            self.log(f'interrupted after {self.processed} processed frames; '
                     f'{self.output_path or "no output"} closed')
        summary = self.summary(interrupted)
        if error is not None:
            summary['error'] = str(error)
            error.summary = summary
            raise error
        return summary

    def summary(self, interrupted: bool) -> dict:
        """Return the JSON-serialisable summary of the run so far."""
        from mask2former_ros.core.engine import dtype_name
        o, engine = self.options, self.engine
        remaining = 0 if self.complete else max(self.total - self._done(), 0)
        frames = {'total': self.total, 'processed': self.processed, 'dropped': self.dropped,
                  'bad': self.bad, 'remaining': remaining}
        out: dict[str, Any] = {
            'input_bag': str(o.input_bag), 'topic': o.topic, 'message_type': self.bag.msgtype,
            'output_bag': None if self.output_path is None else str(self.output_path),
            'output_storage': None if self.output_path is None else o.output_storage,
            'output_topics': None if self.output_path is None else
            [f'{o.output_prefix}/{kind}' for kind in OUTPUT_KINDS]
            + ([o.topic] if o.include_input else []),
            'model': str(engine.config.model), 'device': str(engine.device),
            'precision': dtype_name(engine.dtype), 'input_size': engine.input_size,
            'mode': 'realtime' if o.realtime else 'sequential',
            'interrupted': interrupted, 'frames': frames,
            'fps': round(self.processed / self.wall_seconds, 3) if self.wall_seconds > 0
            else None,
            'wall_seconds': round(self.wall_seconds, 3),
            'model_load_seconds': round(self.load_seconds, 3),
            'timings_ms': self.times.summary(),
        }
        if o.realtime:
            span = self.arrival_span
            out['realtime'] = {
                'clock': 'log time', 'bag_seconds': round(span, 6),
                'input_hz': (self.total - 1) / span if span > 0 else None,
                'output_hz': (self.processed - 1) / span if span > 0 and self.processed else None}
        if self.confusion is not None:
            metrics = self.confusion.summary(engine.class_names)
            metrics.update({'frames_evaluated': self.frames_evaluated,
                            'frames_without_gt': self.frames_without_gt,
                            'ground_truth': self.gt.description,
                            'labelids': o.gt_labelids})
            out['metrics'] = metrics
        else:
            out['metrics'] = None
        return _json_safe(out)


def segment_bag(input_bag: Path | str, topic: str, *, engine: Any = None,
                log: Callable[[str], None] | None = None, **options: Any) -> dict:
    """
    Segment ``topic`` of ``input_bag`` and return the summary dict.

    ``options`` are the fields of :class:`Options` (``output``, ``model``, ``realtime``,
    ``gt_topic``, ...). ``engine`` reuses a loaded SegmentationEngine (``model``, ``device``,
    ``precision``, ``input_size`` and ``allow_pickle`` are then ignored); ``log`` receives the
    informational lines instead of stderr (and disables the progress display). Raises
    SegmentBagError (with ``exit_code`` and, for runs that had started, ``summary``).
    A Ctrl-C returns the summary of the frames processed so far with ``interrupted`` True.
    """
    known = {f.name for f in fields(Options)}
    unknown = set(options) - known
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
    opts = Options(input_bag=Path(input_bag), topic=topic, **options)
    for name in ('output', 'gt_dir'):
        value = getattr(opts, name)
        if value is not None:
            setattr(opts, name, Path(value))
    return BagSegmenter(opts, engine=engine, log=log).run()


def _input_size(value: str) -> str | int:
    from mask2former_ros.core.engine import parse_input_size
    try:
        return parse_input_size(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    """Return the command line parser."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description='Segment the images of a rosbag2 bag (MCAP or sqlite3) with Mask2Former '
                    'and write labels, colour masks and overlays to a new bag. No ROS '
                    'middleware needed.',
        epilog='Ground-truth PNG names for --gt-dir: <sec>_<nanosec>.png or <stamp_ns>.png '
               '(10+ digits) match the header stamp; <index>.png (up to 9 digits, e.g. '
               '000012.png) matches the 0-based message index on the topic. Exit codes: 0 '
               'done, 1 model or inference failure, 2 usage or input error, 130 interrupted.')
    parser.add_argument('input_bag', type=Path, help='rosbag2 directory, .mcap or .db3 file')
    parser.add_argument('--topic', required=True,
                        help='sensor_msgs/msg/Image or CompressedImage topic to segment')
    out = parser.add_argument_group('output')
    out.add_argument('--output', type=Path, default=None,
                     help='output bag directory (default: <input>_segmented next to the input)')
    out.add_argument('--output-storage', choices=tuple(STORAGES), default='mcap',
                     help='output storage (default: mcap)')
    out.add_argument('--overwrite', action='store_true', help='replace an existing output')
    out.add_argument('--no-output', action='store_true',
                     help='write no bag (e.g. only evaluate against ground truth)')
    out.add_argument('--output-prefix', default='/segmentation',
                     help='namespace of the output topics <prefix>/labels|color|overlay '
                          '(default: /segmentation)')
    out.add_argument('--include-input', action='store_true',
                     help='copy the input topic into the output bag')
    out.add_argument('--overlay-alpha', type=float, default=0.5,
                     help='weight of the class colours in the overlay, 0..1 (default: 0.5)')
    model = parser.add_argument_group('model')
    model.add_argument('--model', default=None,
                       help="hub id or local checkpoint directory (default: the node's default "
                            'model, the Cityscapes Swin-L checkpoint)')
    model.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    model.add_argument('--precision', default='auto', help='auto, fp32, fp16 (CUDA) or bf16')
    model.add_argument('--input-size', type=_input_size, default=None,
                       help="'checkpoint' (default), 'native' or a short side in pixels")
    model.add_argument('--allow-pickle', action='store_true',
                       help='allow pickle (*.bin) weights; they can run code when loaded')
    run = parser.add_argument_group('run')
    run.add_argument('--realtime', action='store_true',
                     help="replay frames at their log time with the node's newest-frame-wins "
                          'rule; frames the model cannot keep up with are dropped')
    run.add_argument('--max-frames', type=int, default=None,
                     help='only the first N messages of the topic')
    run.add_argument('--no-progress', action='store_true', help='no progress display')
    run.add_argument('--summary', default=None,
                     help='write the JSON summary to this file instead of stdout')
    gt = parser.add_argument_group('evaluation')
    source = gt.add_mutually_exclusive_group()
    source.add_argument('--gt-topic', default=None,
                        help='mono8/mono16 label Image topic in the same bag, matched by stamp')
    source.add_argument('--gt-dir', type=Path, default=None,
                        help='directory of label PNGs (see below for their names)')
    gt.add_argument('--gt-labelids', action='store_true',
                    help='ground truth holds Cityscapes labelIds (mapped to train ids)')
    return parser


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def to_json(value: Any, indent: int = 0) -> str:
    """Return indented JSON with lists of scalars and short flat dicts kept on one line."""
    pad = ' ' * indent
    if isinstance(value, dict) and value:
        flat = json.dumps(value)
        if all(_is_scalar(v) for v in value.values()) and len(flat) + indent <= 90:
            return flat
        items = [f'{pad}  {json.dumps(str(k))}: {to_json(v, indent + 2)}'
                 for k, v in value.items()]
        return '{\n' + ',\n'.join(items) + f'\n{pad}}}'
    if isinstance(value, (list, tuple)) and value and not all(_is_scalar(v) for v in value):
        items = [f'{pad}  {to_json(v, indent + 2)}' for v in value]
        return '[\n' + ',\n'.join(items) + f'\n{pad}]'
    return json.dumps(value)


def _emit_summary(summary: dict, target: str | None) -> None:
    text = to_json(summary)
    if target in (None, '-'):
        try:
            print(text, flush=True)
        except BrokenPipeError:
            pass
        return
    try:
        Path(target).write_text(text + '\n')
    except OSError as exc:
        print(f'{PROG}: error: cannot write summary {target}: {_one_line(exc)}',
              file=sys.stderr)
        print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the segment_bag console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    options = {name: getattr(args, name) for name in (
        'output', 'output_storage', 'overwrite', 'no_output', 'model', 'device', 'precision',
        'allow_pickle', 'realtime', 'include_input', 'gt_topic', 'gt_dir', 'gt_labelids',
        'max_frames', 'output_prefix', 'overlay_alpha')}
    if args.input_size is not None:
        options['input_size'] = args.input_size
    try:
        summary = segment_bag(args.input_bag, args.topic, progress=not args.no_progress,
                              **options)
    except SegmentBagError as exc:
        print(f'{PROG}: error: {exc}', file=sys.stderr, flush=True)
        if exc.summary is not None:
            _emit_summary(exc.summary, args.summary)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f'{PROG}: interrupted', file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    _emit_summary(summary, args.summary)
    return EXIT_INTERRUPTED if summary['interrupted'] else EXIT_OK


if __name__ == '__main__':
    sys.exit(main())
