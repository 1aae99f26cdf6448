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

"""The ``segment_bag`` command line: a parser built from the options table, and main()."""

import argparse
from dataclasses import fields
from pathlib import Path
import re
import sys

from mask2former_ros.core.runtime.large_buffers import keep_large_buffers
from mask2former_ros.offline.bag_io import is_bag
from mask2former_ros.offline.errors import (
    EXIT_INTERRUPTED, EXIT_OK, one_line, PROG, SegmentBagError)
from mask2former_ros.offline.options import cli_fields, flag_of, FleetOptions, Options
from mask2former_ros.offline.summary import to_json

DESCRIPTION = (
    'Segment the images of rosbag2 bags (MCAP or sqlite3) with Mask2Former and write labels, '
    'colour masks and overlays to new bags; evaluate against ground truth. Several bags or '
    'folders of bags make a fleet: one output bag per input under --output DIR, dataset '
    'metrics over all bags. No ROS middleware needed.')
EPILOG = (
    'Ground-truth PNG names for --gt-dir: <sec>_<nanosec>.png or <stamp_ns>.png (10+ digits) '
    'match the header stamp; <index>.png (up to 9 digits, e.g. 000012.png) matches the '
    '0-based message index on the topic. Exit codes: 0 done, 1 model or inference failure '
    '(or, for several bags, a bag failed), 2 usage or input error, 130 interrupted.')
GROUP_TITLES = {'output': 'output', 'model': 'model', 'run': 'run',
                'evaluation': 'evaluation', 'fleet': 'several bags (fleet)'}
_ASSIGNMENT = re.compile(r'(\bset )?\b([a-z_]+):=(\S+?)(?=[\s,;)]|\.?$|\.\s)')


def build_parser() -> argparse.ArgumentParser:
    """Return the command line parser, one argument per field of the options table."""
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument('inputs', nargs='+', type=Path, metavar='INPUT',
                        help='rosbag2 bag (directory, .mcap or .db3) or a folder of bags')
    groups = {title: parser.add_argument_group(name) for title, name in GROUP_TITLES.items()}
    for f in cli_fields(Options, FleetOptions):
        meta = f.metadata
        kwargs = dict(meta['argparse'], help=meta['help'], dest=f.name)
        if isinstance(f.default, bool):
            kwargs['action'] = 'store_false' if f.default else 'store_true'
        if not kwargs.get('required'):
            kwargs['default'] = argparse.SUPPRESS  # unset: the dataclass default applies
        groups.get(meta['group'], parser).add_argument(flag_of(f.name), **kwargs)
    return parser


def cli_wording(exc: SegmentBagError) -> str:
    """
    Return an error for the command line: engine messages name the node's parameters.

    An error about an option's value gets that option's flag in front; ``name:=value``
    assignments of node parameters become the flags the options table maps them to.
    """
    text = str(exc)
    if exc.option is None:
        return text
    params = {f.metadata['param']: f for f in cli_fields(Options) if f.metadata['param']}

    def flag(match: re.Match) -> str:
        f = params.get(match.group(2))
        if f is None:
            return match.group(0)
        if isinstance(f.default, bool):
            return ('pass ' if match.group(1) else '') + flag_of(f.name)
        return (match.group(1) or '') + f'{flag_of(f.name)} {match.group(3)}'

    text = _ASSIGNMENT.sub(flag, text)
    return text if exc.exit_code != 2 else f'{flag_of(exc.option)}: {text}'


def _emit_summary(summary: dict, target: Path | None) -> None:
    text = to_json(summary)
    if target is None or str(target) == '-':
        try:
            print(text, flush=True)
        except BrokenPipeError:
            pass
        return
    try:
        Path(target).write_text(text + '\n')
    except OSError as exc:
        print(f'{PROG}: error: cannot write summary {target}: {one_line(exc)}', file=sys.stderr)
        print(text, flush=True)


def _is_fleet(inputs: list[Path], fleet: dict) -> bool:
    """Return True unless the run is one bag with no fleet-only option."""
    if len(inputs) > 1 or fleet.keys() - {'summary'}:
        return True
    return inputs[0].is_dir() and not is_bag(inputs[0]) and any(inputs[0].iterdir())


def main(argv: list[str] | None = None) -> int:
    """Entry point of the segment_bag console script; returns the exit code."""
    keep_large_buffers()  # frames are read, decoded, encoded and written: reuse the buffers
    args = vars(build_parser().parse_args(argv))
    inputs = args.pop('inputs')
    fleet_names = {f.name for f in fields(FleetOptions)}
    fleet = {k: v for k, v in args.items() if k in fleet_names}
    options = {k: v for k, v in args.items() if k not in fleet_names}
    topic = options.pop('topic')
    try:
        if _is_fleet(inputs, fleet):
            from mask2former_ros.offline.driver import segment_fleet
            summary, code = segment_fleet(inputs, topic, fleet=fleet, **options)
        else:
            from mask2former_ros.offline.run import segment_bag
            summary = segment_bag(inputs[0], topic, **options)
            code = EXIT_INTERRUPTED if summary['interrupted'] else EXIT_OK
    except SegmentBagError as exc:
        print(f'{PROG}: error: {cli_wording(exc)}', file=sys.stderr, flush=True)
        if exc.summary is not None:
            _emit_summary(exc.summary, fleet.get('summary'))
        return exc.exit_code
    except KeyboardInterrupt:
        print(f'{PROG}: interrupted', file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    _emit_summary(summary, fleet.get('summary'))
    return code


if __name__ == '__main__':
    sys.exit(main())
