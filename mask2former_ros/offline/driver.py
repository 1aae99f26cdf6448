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

"""segment_fleet: several bags in this process or on Ray actors, merged into one summary."""

import json
from pathlib import Path
import sys
import time
from typing import Any, Callable

from mask2former_ros.offline.bag_io import bag_frame_size
from mask2former_ros.offline.errors import (
    EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, PROG, SegmentBagError)
from mask2former_ros.offline.fleet import (
    bag_line, BagJob, load_complete, plan_jobs, run_in_process)
from mask2former_ros.offline.options import (
    check_fleet_options, check_options, FleetOptions, make_options, Options)
from mask2former_ros.offline.progress import FleetProgress
from mask2former_ros.offline.run import load_engine, needs_frame_size
from mask2former_ros.offline.summary import entry_row, fleet_summary, WorstFrames, write_thumbs


class FleetRun:
    """Collects the per-bag results of a fleet, in input order, as they arrive."""

    def __init__(self, jobs: list[BagJob], progress: FleetProgress, worst_k: int) -> None:
        """Expect one result per job."""
        self.order = {job.name: i for i, job in enumerate(jobs)}
        self.rows: dict[str, dict] = {}
        self.worst = WorstFrames(worst_k)
        self.worst_pq = WorstFrames(worst_k, 'pq')
        self.classes: list[str] | None = None
        self.palette: Any = None
        self.progress = progress
        self.startup_seconds = 0.0  # model loading (Ray: the slowest actor's; they load at once)

    def add(self, result: dict) -> None:
        """Take one bag's result (from this process, a Ray actor or a per-bag summary)."""
        row = result['row']
        self.rows[row['bag']] = row
        self.startup_seconds = max(self.startup_seconds, result.get('load_seconds', 0.0))
        if result.get('classes') and self.classes is None:
            self.classes, self.palette = result['classes'], result['palette']
        for entry in result.get('worst', []):
            self.worst.add(entry)
        for entry in result.get('worst_pq', []):
            self.worst_pq.add(entry)
        self.progress.bag_done(bag_line(row), row['frames']['processed']
                               if row['status'] == 'ok' else 0)

    def sorted_rows(self) -> list[dict]:
        """Return the rows in input order."""
        return sorted(self.rows.values(), key=lambda row: self.order[row['bag']])


def _report_module() -> Any:
    try:
        from mask2former_ros.offline import report
    except ImportError:
        return None
    return report


def segment_fleet(inputs: list[Path | str], topic: str, *, fleet: dict | None = None,
                  engine: Any = None, log: Callable[[str], None] | None = None,
                  **options: Any) -> tuple[dict, int]:
    """
    Segment every bag of ``inputs`` (bags and folders of bags); return (summary, exit code).

    ``options`` are the :class:`Options` fields applied to every bag (``output`` is the output
    directory); ``fleet`` holds :class:`FleetOptions` fields (``workers``, ``resume``,
    ``report``, ...). ``engine`` reuses a loaded engine (in-process runs only). The exit code
    is 0 when every bag is done or skipped, 1 when a bag failed, 130 when interrupted.
    Raises SegmentBagError for errors that concern the whole run (usage, model load).
    """
    o = make_options(Options, dict(options, input_bag=None, topic=topic))
    f = make_options(FleetOptions, fleet or {})
    check_options(o)
    check_fleet_options(f)
    if f.resume and o.output is None:
        raise SegmentBagError('--resume needs --output DIR')
    if f.workers > 1 and engine is not None:
        raise SegmentBagError('an engine can only be shared in-process (workers 1)')
    if f.workers == 1 and (f.ray_address or f.gpus_per_worker):
        raise SegmentBagError('--ray-address and --gpus-per-worker need --workers N > 1')
    if engine is not None:
        o.model = str(engine.config.model)
    jobs = plan_jobs([Path(i) for i in inputs], o.output)
    progress = FleetProgress(len(jobs), o.progress and log is None)
    say = log or (lambda text: progress.write(f'{PROG}: {text}', always=True))
    if o.output is None and not o.no_output:
        say('no --output DIR for several bags: evaluating without writing output bags')
        o.no_output = True
    run = FleetRun(jobs, progress, f.worst_frames)
    todo = []
    for job in jobs:
        stored = load_complete(job, o) if f.resume else None
        if stored is not None:
            run.add(stored)
        else:
            todo.append(job)
    started = time.perf_counter()
    complete = True
    try:
        if todo and f.workers == 1:
            if engine is None:
                _frame_size_from(todo[0].path, o)
                loading = time.perf_counter()
                engine = load_engine(o, say)
                run.startup_seconds = time.perf_counter() - loading
            if run.classes is None:
                run.classes, run.palette = list(engine.class_names), engine.palette.tolist()
            complete = run_in_process(todo, o, engine, f.worst_frames, run.add, say)
        elif todo:
            from mask2former_ros.offline.ray_workers import run_on_ray
            _frame_size_from(todo[0].path, o)
            complete = run_on_ray(todo, o, f, run.add, say)
    except KeyboardInterrupt:
        complete = False
    finally:
        progress.close()
    seconds = time.perf_counter() - started
    summary = _summary(run, o, f, seconds, complete)
    failed = summary['dataset']['bags_failed']
    code = EXIT_INTERRUPTED if not complete else EXIT_FAILURE if failed else EXIT_OK
    return summary, code


def _summary(run: FleetRun, o: Options, f: FleetOptions, seconds: float,
             complete: bool) -> dict:
    worst, worst_pq = run.worst.entries(), run.worst_pq.entries()
    if f.report is not None:
        rows = write_thumbs(worst, f.report)
        pq_rows = write_thumbs(worst_pq, f.report, 'pq')
    else:
        rows = [entry_row(e) for e in worst]
        pq_rows = [entry_row(e, 'pq') for e in worst_pq]
    extra = {'topic': o.topic, 'mode': 'realtime' if o.realtime else 'sequential',
             'workers': f.workers, 'interrupted': not complete,
             'output_dir': None if o.output is None else str(o.output),
             'retried_bags': sorted(r['bag'] for r in run.rows.values() if r['attempts'] > 1)}
    if any(row.get('panoptic') is not None for row in run.rows.values()):
        extra['worst_pq_frames'] = pq_rows
    summary = fleet_summary(run.sorted_rows(), run.classes or [], run.palette or [], o.model,
                            seconds, rows, extra, startup_seconds=run.startup_seconds,
                            worst_k=f.worst_frames)
    if f.report is not None:
        _write_report(summary, Path(f.report))
    return summary


def _write_report(summary: dict, report_dir: Path) -> None:
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / 'summary.json').write_text(json.dumps(summary, indent=1) + '\n')
    report = _report_module()
    if report is None:
        print(f'{PROG}: warning: mask2former_ros.offline.report is not available; wrote '
              f'{report_dir / "summary.json"} and the thumbnails only', file=sys.stderr)
        return
    path = report.write_report(summary, report_dir)
    summary['report'] = str(path)


def _frame_size_from(bag: Path, o: Options) -> None:
    """Give a run the first bag's frame size where loading needs it (export, compile)."""
    if needs_frame_size(o):
        try:
            o.frame_size = bag_frame_size(bag, o.topic)
        except SegmentBagError:
            pass  # the bag's own run reports its problem
