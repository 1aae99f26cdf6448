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

"""Errors, exit codes and constants shared by the offline tool (no torch, no ROS)."""

PROG = 'segment_bag'
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
OUTPUT_KINDS = ('labels', 'color', 'overlay')
STAGES = ('read', 'decode', 'preprocess', 'model', 'postprocess', 'track', 'write', 'evaluate',
          'frame')
MAX_BAD_FRAME_WARNINGS = 10

__all__ = ['EXIT_FAILURE', 'EXIT_INTERRUPTED', 'EXIT_OK', 'EXIT_USAGE',
           'MAX_BAD_FRAME_WARNINGS', 'OUTPUT_KINDS', 'PROG', 'STAGES', 'SegmentBagError',
           'format_stamp', 'one_line']


class SegmentBagError(Exception):
    """A usage, input, model or inference error: one line for the user and an exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE,
                 summary: dict | None = None, option: str | None = None) -> None:
        """
        Store the message, exit code, summary of a started run and the option at fault.

        ``option`` names the :class:`~mask2former_ros.offline.options.Options` field whose
        value was refused (its message then comes from the engine, in the engine's words).
        """
        super().__init__(message)
        self.exit_code = exit_code
        self.summary = summary
        self.option = option


def one_line(exc: BaseException) -> str:
    """Return the message of ``exc`` on one line (its type name if it has none)."""
    text = ' '.join(str(exc).split())
    return text or type(exc).__name__


def format_stamp(stamp: int) -> str:
    """Return a stamp in ns as ``sec.nanosec``."""
    sec, nanosec = divmod(stamp, 1_000_000_000)
    return f'{sec}.{nanosec:09d}'
