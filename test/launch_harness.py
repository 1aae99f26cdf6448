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
The package built with colcon and run with the real ROS 2 launch stack, for the launch tests.

:func:`install_space` builds this checkout with ``colcon build`` into a temporary workspace
(once per test session) and applies the workspace's ``setup.sh`` to ``os.environ``, as a user's
``. install/setup.sh`` does: ``ros2 launch mask2former_ros ...`` and ``launch_ros`` then find
the installed launch files, configs and ``lib/mask2former_ros/segmentation_node``. Where the
launch stack or colcon is missing, :func:`missing_launch_stack` says why and the tests skip.
``MASK2FORMER_ROS_INSTALL`` names an existing install space (a colcon ``install`` folder) to
use instead of building, e.g. under ``colcon test``.
"""

import atexit
import importlib
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Mapping

import psutil

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = 'mask2former_ros'
BIN = Path(sys.executable).parent
LAUNCH_MODULES = ('launch', 'launch.actions', 'launch_ros.actions', 'launch_testing.actions',
                  'launch_testing_ros', 'ros2launch')
SETUP_HINT = ('install the ROS 2 launch wheels (scripts/setup.sh does it when '
              '../shared/ros-wheels or $ROS_WHEELS_DIR exists) or source a ROS 2 installation')
_state: dict = {}


def missing_launch_stack() -> str | None:
    """Return why the launch tests cannot run here, or None when they can."""
    for name in LAUNCH_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            return f'ROS 2 launch stack not installed ({name}: {exc}); {SETUP_HINT}'
        if getattr(module, '__file__', None) is None:  # a source folder named launch/
            return f'ROS 2 launch stack not installed ({name} is a bare folder); {SETUP_HINT}'
    if not _ros2():
        return f'the ros2 command (ros2cli) is not installed; {SETUP_HINT}'
    if not os.environ.get('MASK2FORMER_ROS_INSTALL') and not _colcon():
        return ('colcon not installed (pip install colcon-core colcon-ros '
                'colcon-python-setup-py); it builds the package for the launch tests')
    return None


def ros2() -> str:
    """Return the ``ros2`` command of this environment."""
    command = _ros2()
    assert command, SETUP_HINT
    return command


def _ros2() -> str | None:
    local = BIN / 'ros2'
    return str(local) if local.exists() else shutil.which('ros2')


def _colcon() -> str | None:
    local = BIN / 'colcon'
    return str(local) if local.exists() else shutil.which('colcon')


def _sourced_environment(setup_sh: Path, base: dict[str, str]) -> dict[str, str]:
    """Return the environment after ``. setup.sh`` in a POSIX shell."""
    out = subprocess.run(['sh', '-c', f'. "{setup_sh}" && env -0'], env=base, check=True,
                         capture_output=True).stdout.decode()
    return dict(item.split('=', 1) for item in out.split('\0') if '=' in item)


def install_space() -> Path:
    """Build the package with colcon once and source its install space; return that space."""
    if 'install' in _state:
        return _state['install']
    base = dict(os.environ)
    # The pip-installed ROS packages (ros-* wheels) are found through the venv prefix.
    prefixes = [p for p in base.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    if sys.prefix not in prefixes and (Path(sys.prefix) / 'share' / 'ament_index').is_dir():
        prefixes.append(sys.prefix)
    base['AMENT_PREFIX_PATH'] = os.pathsep.join(prefixes)
    base['PATH'] = f"{BIN}{os.pathsep}{base.get('PATH', '')}"
    given = os.environ.get('MASK2FORMER_ROS_INSTALL')
    if given:
        install = Path(given)
    else:
        workspace = Path(tempfile.mkdtemp(prefix='mask2former_ros_ws_'))
        atexit.register(shutil.rmtree, workspace, True)
        install = workspace / 'install'
        started = time.monotonic()
        build = subprocess.run(
            [_colcon(), 'build', '--base-paths', str(ROOT), '--packages-select', PACKAGE,
             '--build-base', str(workspace / 'build'), '--install-base', str(install),
             '--event-handlers', 'console_direct-'],
            cwd=workspace, env={**base, 'COLCON_LOG_PATH': str(workspace / 'log')},
            capture_output=True, text=True, timeout=300)
        if build.returncode != 0:
            raise RuntimeError(f'colcon build failed:\n{build.stdout}\n{build.stderr}')
        _state['build_seconds'] = time.monotonic() - started
    environment = _sourced_environment(install / 'setup.sh', base)
    if 'ROS_LOG_DIR' not in environment:  # launch and node logs: not into ~/.ros of the user
        logs = tempfile.mkdtemp(prefix='mask2former_ros_log_')
        atexit.register(shutil.rmtree, logs, True)
        environment['ROS_LOG_DIR'] = logs
    os.environ.update(environment)
    _state['install'] = install
    return install


def installed_share() -> Path:
    """Return share/mask2former_ros of the install space."""
    from ament_index_python.packages import get_package_share_directory
    install_space()
    return Path(get_package_share_directory(PACKAGE))


def random_checkpoint() -> Path:
    """Return a small random-weight checkpoint (64x64 input), made once per session."""
    if 'checkpoint' not in _state:
        from mask2former_ros_fixtures.model_factory import save_random_checkpoint
        directory = Path(tempfile.mkdtemp(prefix='mask2former_ros_ckpt_'))
        atexit.register(shutil.rmtree, directory, True)
        _state['checkpoint'] = save_random_checkpoint(directory, image_size=64)
    return _state['checkpoint']


def fake_rviz2(directory: Path) -> Path:
    """
    Install a stand-in ``rviz2`` package into the prefix ``directory`` and return the prefix.

    Its executable copies the config it is given (``-d``) to ``<directory>/rviz_config.rviz``
    and waits for a signal, so a test can read what RViz2 would show.
    """
    marker = directory / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'rviz2'
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text('')
    executable = directory / 'lib' / 'rviz2' / 'rviz2'
    executable.parent.mkdir(parents=True, exist_ok=True)
    executable.write_text(
        f'#!{sys.executable}\n'
        'import shutil, signal, sys, time\n'
        'signal.signal(signal.SIGINT, lambda *_: sys.exit(0))\n'
        'signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n'
        "shutil.copy(sys.argv[sys.argv.index('-d') + 1], "
        f"'{directory / 'rviz_config.rviz'}')\n"
        "print('fake rviz2 running', flush=True)\n"
        'while True:\n'
        '    time.sleep(0.1)\n')
    executable.chmod(0o755)
    return directory


class RosLaunch:
    """``ros2 launch`` in its own process group, as a user runs it in a terminal."""

    def __init__(self, arguments: list[str], log: Path, env: dict[str, str] | None = None):
        self.log_path = log
        self._log = open(log, 'w')
        self.proc = subprocess.Popen(
            [_ros2(), 'launch', PACKAGE, *arguments], stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, 'PYTHONUNBUFFERED': '1', 'RCUTILS_COLORIZED_OUTPUT': '0',
                 **(env or {})})
        self.pgid = self.proc.pid
        self.members: set[int] = set()

    @property
    def output(self) -> str:
        """Return what the launch printed so far."""
        self._log.flush()
        return self.log_path.read_text(errors='replace')

    def wait_for_output(self, text: str, timeout: float) -> bool:
        """Wait until ``text`` was printed (False on timeout or when the launch ended)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.members |= set(self.group())
            if text in self.output:
                return True
            if self.proc.poll() is not None:
                return text in self.output
            time.sleep(0.1)
        return False

    def group(self) -> list[int]:
        """Return the pids of the processes still in the launch's process group."""
        found = []
        for proc in psutil.process_iter(['pid']):
            try:
                if os.getpgid(proc.pid) == self.pgid:
                    found.append(proc.pid)
            except (ProcessLookupError, psutil.Error):
                pass
        return found

    def wait(self, timeout: float) -> int | None:
        """Wait for ``ros2 launch`` to exit; return its exit code (None if it did not)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT to the whole process group, as a terminal sends it."""
        self.members |= set(self.group())
        os.killpg(self.pgid, signal.SIGINT)

    def survivors(self) -> list[str]:
        """Return the processes of the launch still running (in its group or not)."""
        left = []
        for pid in sorted(self.members | set(self.group())):
            try:
                proc = psutil.Process(pid)
                if proc.status() != psutil.STATUS_ZOMBIE:
                    left.append(f'{pid}: {" ".join(proc.cmdline())}')
            except psutil.Error:
                pass
        return left

    def close(self) -> None:
        """Kill whatever is left (a failed test must not leave nodes running)."""
        for pid in self.members | set(self.group()):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.proc.wait(10)
        self._log.close()


class LabelsProbe:
    """
    Camera frames in, labels out: what every launch test checks of a launched node.

    ``inputs`` maps each input topic to the labels topic of the node serving it. The probe
    subscribes to the labels (reliable, depth 10) and publishes on the inputs (depth 1, reliable
    unless ``reliable_input`` is false, as many camera drivers); ``received`` collects the
    labels of each input topic.
    """

    def __init__(self, node: Any, executor: Any, inputs: Mapping[str, str], *,
                 reliable_input: bool = True) -> None:
        """Subscribe and advertise now, so discovery runs while the node starts."""
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        self.executor = executor
        self.received: dict[str, list] = {}
        self.publishers: dict[str, Any] = {}
        input_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE if reliable_input
                               else ReliabilityPolicy.BEST_EFFORT)
        for input_topic, labels_topic in inputs.items():
            self.received[input_topic] = []
            node.create_subscription(
                Image, labels_topic, self.received[input_topic].append,
                QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
            self.publishers[input_topic] = node.create_publisher(Image, input_topic, input_qos)

    def all_received(self) -> bool:
        """Return whether labels arrived for every input."""
        return all(self.received.values())

    def exchange(self, make_frame: Callable[[str, int], Any], done: Callable[[], bool] | None,
                 timeout: float, period: float = 0.5) -> int:
        """
        Publish ``make_frame(input_topic, n)`` on every input each ``period`` s until ``done()``.

        ``n`` counts from 1; the executor spins in between. Returns the last ``n`` sent (when
        ``done()`` holds, or ``timeout`` s passed). ``done`` None: :meth:`all_received`.
        """
        done = done or self.all_received
        deadline = time.monotonic() + timeout
        frame = 0
        while not done() and time.monotonic() < deadline:
            frame += 1
            for topic, publisher in self.publishers.items():
                publisher.publish(make_frame(topic, frame))
            end = time.monotonic() + period
            while not done() and time.monotonic() < end:
                self.executor.spin_once(timeout_sec=0.05)
        return frame
