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
How the node's process ends on SIGINT/SIGTERM: spin ends quietly, cleanup runs once, exit 0.

rclpy's own handlers (installed by ``rclpy.init``) shut the context down on SIGINT/SIGTERM,
which ends the spin, and then call the handlers installed by :func:`note_signals`: they only
note the signal, so a second signal (launch forwards one) never interrupts the cleanup. After
the cleanup, :func:`exit_after_signal` ends the process.

rclpy's signal thread wakes the executor and shuts the context down one after the other, so
the executor can wake, find the context still up and wait again; with nothing left to wake it
(no timer, or timers on a simulated clock whose /clock has stopped, as in a bag replay that has
ended) ``executor.spin()`` then waits for the next signal. :func:`spin` therefore never waits
longer than :data:`SHUTDOWN_CHECK_S` before it looks at the context again.
"""

import ctypes
import os
import signal
import sys

import rclpy
from rclpy.context import Context
from rclpy.executors import Executor, ExternalShutdownException

SIGNALS = (signal.SIGINT, signal.SIGTERM)
SHUTDOWN_CHECK_S = 0.25  # longest wait of the spin between two looks at the context


def note_signals() -> list[int]:
    """Install handlers that only note SIGINT and SIGTERM; return the list they append to."""
    signals: list[int] = []
    for sig in SIGNALS:
        signal.signal(sig, lambda signum, _frame: signals.append(signum))
    return signals


def spin(executor: Executor, context: Context) -> None:
    """Spin until shutdown; a take racing a shutdown by signal ends the spin quietly."""
    try:
        while context.ok():
            executor.spin_once(timeout_sec=SHUTDOWN_CHECK_S)
    except ExternalShutdownException:
        pass
    except Exception:
        if rclpy.ok(context=context):
            raise  # a real error, not a take interrupted by the context shutting down


def _ignore(_signum: int, _frame: object) -> None:
    """Do nothing: the signal handler of a process that is already exiting."""


def exit_after_signal() -> None:
    """
    End the process now, exit code 0, once everything is released after SIGINT/SIGTERM.

    Further signals are ignored first: ros2 launch forwards Ctrl-C a second time, and Python's
    finalisation would reset our handler to SIG_DFL, so a late second SIGINT killed the exiting
    process (exit -2). And the interpreter's own finalisation (tearing down torch, transformers
    and rclpy modules) took over 4 s of the 6 s from signal to exit on a loaded 2-core machine,
    against the 5 s a stop may take: nothing is left to finalise, so the process exits directly
    after flushing Python's and C's output streams.

    Ignoring is a Python handler that does nothing, not ``SIG_IGN``: a signal that had arrived
    but whose Python handler had not run yet when the handler became ``SIG_IGN`` made CPython
    print a traceback ("OSError: Signal 2 ignored due to race condition") on the way out.
    """
    for sig in SIGNALS:
        signal.signal(sig, _ignore)
    sys.stdout.flush()
    sys.stderr.flush()
    ctypes.CDLL(None).fflush(None)
    os._exit(0)
