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
Several bags (a fleet): planning the outputs, one bag's job, resume, and the in-process loop.

Each bag's output is written as ``<output>.partial/<name>`` and moved to ``<output>`` when
complete; its per-bag summary (row, confusion matrix, panoptic counts, worst-frame thumbnails
by mIoU and by PQ) then goes to
``<output>.summary.json``. ``--resume`` skips bags whose two files are complete.
"""

from dataclasses import dataclass, replace
import json
import os
from pathlib import Path
import shutil
import time
from typing import Any, Callable

from mask2former_ros.offline.bag_io import BAG_SUFFIXES, find_bags, is_bag
from mask2former_ros.offline.errors import one_line, SegmentBagError
from mask2former_ros.offline.options import Options
from mask2former_ros.offline.run import BagSegmenter
from mask2former_ros.offline.summary import decode_entry, encode_entry, to_json
from mask2former_ros.offline.tracking_metrics import tracking_row, WORST_SWITCHES

PARTIAL, SUMMARY = '.partial', '.summary.json'


@dataclass(frozen=True)
class BagJob:
    """One input bag of a fleet: where it is, its name in the summary, its output bag."""

    path: Path
    name: str  # relative path as found (e.g. 'day1/front.mcap')
    output: Path | None  # final output bag directory, None with --no-output

    @property
    def partial(self) -> Path:
        """
        Return where the output bag is written until complete: ``<output>.partial/<name>``.

        The bag directory has its final name already: rosbags names the storage file after it.
        """
        return self.output.with_name(self.output.name + PARTIAL) / self.output.name

    @property
    def summary_file(self) -> Path:
        """Return the per-bag summary written next to the output."""
        return self.output.with_name(self.output.name + SUMMARY)


def _strip_suffix(rel: Path) -> Path:
    return rel.with_suffix('') if rel.suffix in BAG_SUFFIXES else rel


def plan_jobs(inputs: list[Path], output_dir: Path | None) -> list[BagJob]:
    """
    Return one job per bag of ``inputs`` (bags, and folders searched for bags).

    A bag given directly is named by its file or directory name, a bag found in a folder by its
    path relative to that folder; outputs keep these names under ``output_dir``.
    """
    jobs: list[BagJob] = []
    for item in map(Path, inputs):
        if not item.exists():
            raise SegmentBagError(f"input '{item}' does not exist")
        if is_bag(item):
            found = [(item, Path(item.name))]
        elif item.is_dir():
            found = [(bag, bag.relative_to(item)) for bag in find_bags(item)]
            if not found:
                raise SegmentBagError(f"'{item}' is not a rosbag2 bag and holds none (no "
                                      'metadata.yaml, .mcap or .db3 under it)')
        else:
            raise SegmentBagError(f"'{item}' is not a rosbag2 bag (directory, .mcap or .db3)")
        for bag, rel in found:
            output = None if output_dir is None else Path(output_dir) / _strip_suffix(rel)
            jobs.append(BagJob(bag, rel.as_posix(), output))
    names = [job.output or job.name for job in jobs]
    clashes = sorted({str(n) for n in names if names.count(n) > 1})
    if clashes:
        raise SegmentBagError(f"several inputs map to the same output: {', '.join(clashes)}")
    if output_dir is not None:
        target = Path(output_dir).resolve()
        for job in jobs:
            source = job.path.resolve()
            if target == source or source in target.parents:
                raise SegmentBagError(f"output directory '{output_dir}' is inside the input "
                                      f"bag '{job.path}'")
    return jobs


def _empty_frames() -> dict:
    return {'total': 0, 'processed': 0, 'dropped': 0, 'bad': 0}


def bag_row(job: BagJob, segmenter: BagSegmenter | None, summary: dict | None, status: str,
            error: str | None, attempts: int) -> dict:
    """Return the fleet summary's row of one bag (the schema of the report)."""
    stages = segmenter.stages if segmenter is not None else None
    frames = _empty_frames() if summary is None else \
        {k: summary['frames'][k] for k in ('total', 'processed', 'dropped', 'bad')}
    metrics = (summary or {}).get('metrics') or {}
    confusion = None if stages is None or stages.confusion is None else \
        stages.confusion.matrix.tolist()
    panoptic = None if stages is None or stages.panoptic is None else \
        stages.panoptic.to_dict()  # summed over the fleet (per-class TP, FP, FN, IoU sums)
    return {'bag': job.name, 'status': status, 'error': error, 'attempts': attempts,
            'frames': frames, 'fps': (summary or {}).get('fps') or 0.0,
            'seconds': (summary or {}).get('wall_seconds') or 0.0,
            'miou': metrics.get('miou'), 'pixel_accuracy': metrics.get('pixel_accuracy'),
            'confusion': confusion,
            'pq': ((metrics.get('panoptic') or {}).get('all') or {}).get('pq'),
            'panoptic': panoptic, 'stage_ms': (summary or {}).get('timings_ms', {}),
            'tracking': None if stages is None else  # summed over the fleet
            tracking_row(stages.tracking_result(), max(stages.worst.k, WORST_SWITCHES)),
            'frame_ms': [] if stages is None else list(stages.frame_ms),
            'frames_evaluated': metrics.get('frames_evaluated', 0),
            'output_bag': None if job.output is None or status != 'ok' else str(job.output),
            'interrupted': bool((summary or {}).get('interrupted'))}


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_text(to_json(value) + '\n')
    os.replace(tmp, path)


def load_complete(job: BagJob, options: Options) -> dict | None:
    """Return the stored result of a bag completed by an earlier run, or None."""
    if job.output is None or not job.summary_file.is_file():
        return None
    if not (job.output / 'metadata.yaml').is_file():
        return None
    try:
        stored = json.loads(job.summary_file.read_text())
        row = stored['row']
        if row['status'] != 'ok' or stored['topic'] != options.topic or \
                stored['model'] != options.model:
            return None
        return {'row': dict(row, status='skipped'), 'classes': stored['classes'],
                'palette': stored['palette'],
                'worst': [decode_entry(e) for e in stored['worst']],
                'worst_pq': [decode_entry(e) for e in stored.get('worst_pq', [])]}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def process_bag(job: BagJob, options: Options, engine: Any, worst_k: int, attempts: int,
                log: Callable[[str], None]) -> dict:
    """
    Segment one bag of a fleet; return ``{'row': ..., 'worst': [...]}``, never raise for it.

    A KeyboardInterrupt during the bag returns its row with ``interrupted`` True (the output
    stays at its ``.partial`` name).
    """
    o = replace(options, input_bag=job.path, output=None if job.output is None else job.partial,
                overwrite=True, progress=False)
    if job.output is not None:
        if job.output.exists() and not options.overwrite:
            error = f"output '{job.output}' exists; pass --overwrite or --resume"
            return {'row': bag_row(job, None, None, 'failed', error, attempts), 'worst': []}
        if job.partial.parent.exists():
            shutil.rmtree(job.partial.parent)
        job.partial.parent.mkdir(parents=True)
    segmenter = BagSegmenter(o, engine=engine, log=log, bag_name=job.name, worst_k=worst_k)
    try:
        try:
            summary = segmenter.run()
        finally:
            _drop_empty_partial(job)
    except SegmentBagError as exc:
        row = bag_row(job, segmenter if segmenter.stages else None, exc.summary, 'failed',
                      str(exc), attempts)
        return {'row': row, 'worst': []}
    except Exception as exc:  # noqa: BLE001 - one bag's surprise must not end the fleet
        row = bag_row(job, None, None, 'failed', f'{type(exc).__name__}: {one_line(exc)}',
                      attempts)
        return {'row': row, 'worst': []}
    if summary['interrupted']:
        return {'row': bag_row(job, segmenter, summary, 'failed', 'interrupted', attempts),
                'worst': []}
    worst, worst_pq = segmenter.stages.worst.entries(), segmenter.stages.worst_pq.entries()
    row = bag_row(job, segmenter, summary, 'ok', None, attempts)
    model = segmenter.engine
    result = {'row': row, 'worst': worst, 'worst_pq': worst_pq,
              'classes': list(model.class_names), 'palette': model.palette.tolist()}
    if job.output is not None:
        if job.output.exists():
            shutil.rmtree(job.output)
        os.replace(job.partial, job.output)
        job.partial.parent.rmdir()
        _write_json(job.summary_file, dict(result, topic=options.topic,
                                           model=str(model.config.model),
                                           worst=[encode_entry(e) for e in worst],
                                           worst_pq=[encode_entry(e) for e in worst_pq]))
    return result


def _drop_empty_partial(job: BagJob) -> None:
    """Remove the temporary directory of a bag that failed before writing anything."""
    if job.output is not None and job.partial.parent.is_dir() and \
            not any(job.partial.parent.iterdir()):
        job.partial.parent.rmdir()


def bag_line(row: dict) -> str:
    """Return the progress line of a finished bag."""
    f = row['frames']
    if row['status'] == 'failed':
        return f"FAILED {row['bag']}: {row['error']}"
    miou = '' if row['miou'] is None else f", mIoU {row['miou']:.3f}"
    what = 'skipped (complete)' if row['status'] == 'skipped' else 'ok'
    return (f"{what} {row['bag']}: {f['processed']}/{f['total']} frames, {f['dropped']} "
            f"dropped, {f['bad']} bad, {row['fps']:.2f} frames/s{miou}")


def run_in_process(jobs: list[BagJob], options: Options, engine: Any, worst_k: int,
                   on_result: Callable[[dict], None], log: Callable[[str], None]) -> bool:
    """Process the jobs one after the other with one engine; return False if interrupted."""
    for job in jobs:
        result = process_bag(job, options, engine, worst_k, 1, log)
        on_result(result)
        if result['row']['interrupted']:
            return False
    return True


def elapsed(started: float) -> float:
    """Return the seconds since ``started`` (a perf_counter value)."""
    return time.perf_counter() - started
