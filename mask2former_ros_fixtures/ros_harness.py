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

"""Test harness: the node in its own process, publishers and subscribers in this one (real DDS)."""

import fcntl
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

NODE_EXECUTABLE = shutil.which('segmentation_node') or str(
    Path(sys.executable).with_name('segmentation_node'))


class NodeProcess:
    """``segmentation_node`` started as a subprocess with parameters; output is collected."""

    def __init__(self, params: dict[str, Any], name: str = 'segmentation_node',
                 namespace: str = '', remaps: dict[str, str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        args = [NODE_EXECUTABLE, '--ros-args', '-r', f'__node:={name}']
        if namespace:
            args += ['-r', f'__ns:={namespace}']
        for key, value in params.items():
            args += ['-p', f'{key}:={_param_text(value)}']
        for src, dst in (remaps or {}).items():
            args += ['-r', f'{src}:={dst}']
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, 'PYTHONUNBUFFERED': '1', 'RCUTILS_LOGGING_BUFFERED_STREAM': '0',
                 **(env or {})})
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip('\n'))

    @property
    def output(self) -> str:
        """Return everything the node printed so far."""
        return '\n'.join(self.lines)

    def wait_for_output(self, text: str, timeout: float = 60.0) -> bool:
        """Wait until ``text`` appears in the output or the process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output:
                return True
            if self.proc.poll() is not None:
                time.sleep(0.2)
                return text in self.output
            time.sleep(0.05)
        return False

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10.0) -> tuple[int | None, float]:
        """Send ``sig`` and wait; return (exit code or None if it hung, seconds taken)."""
        started = time.monotonic()
        if not stop_process(self.proc, sig, timeout):
            return None, time.monotonic() - started
        self._reader.join(2.0)
        return self.proc.returncode, time.monotonic() - started


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGINT,
                 timeout: float = 10.0) -> bool:
    """Send ``sig`` and wait up to ``timeout`` s, then kill; return whether it ended by itself."""
    if proc.poll() is not None:
        return True
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False


SHM_DIR = Path('/dev/shm')


def shm_segments(pid: int) -> set[str]:
    """Return the Fast DDS shared-memory data segments a running process has mapped."""
    maps = Path(f'/proc/{pid}/maps').read_text()
    return {line.split('/dev/shm/', 1)[1].strip() for line in maps.splitlines()
            if '/dev/shm/fastdds_' in line and '/dev/shm/fastdds_port' not in line}


def zombie_segments(names: set[str]) -> list[str]:
    """
    Return the segments of ``names`` that are left behind: file present, owner gone.

    Fast DDS' owner holds a lock on ``<segment>_el`` while it lives and removes both files when
    its participant is destroyed; ``fastdds shm clean`` removes those whose lock nobody holds.
    """
    left = []
    for name in sorted(names):
        lock = SHM_DIR / f'{name}_el'
        if not (SHM_DIR / name).exists() or not lock.exists():
            continue
        with open(lock, 'ab') as fd:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # its owner lives (a process this test did not stop)
            fcntl.flock(fd, fcntl.LOCK_UN)
        left.append(name)
    return left


def remove_zombie_segments(names: set[str]) -> list[str]:
    """Remove what a process killed on purpose left of ``names`` (as ``fastdds shm clean``)."""
    left = zombie_segments(names)
    for name in left:
        for path in (SHM_DIR / name, SHM_DIR / f'{name}_el'):
            path.unlink(missing_ok=True)
    return left


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (list, tuple)):
        return '[' + ','.join(f"'{v}'" for v in value) + ']'
    if isinstance(value, str):
        return f"'{value}'" if value.isdigit() or value == '' else value
    return str(value)


class RosPeer:
    """A node of the test process with its own context and a background executor."""

    def __init__(self, name: str = 'test_peer') -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        # Keep spinning through an error of one callback (e.g. a subscription destroyed by the
        # test while the executor used it): a dead peer executor would stop answering every
        # later service call of the test module.
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.1)
            except ExternalShutdownException:
                return
            except Exception as exc:  # noqa: BLE001
                if self.context.ok():
                    print(f'[ros_harness] peer executor: {type(exc).__name__}: {exc}',
                          file=sys.stderr)

    def publisher(self, msg_type, topic: str, reliable: bool = True, depth: int = 10):
        """Return a new publisher, reliable by default like most camera drivers."""
        qos = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE if reliable
                         else ReliabilityPolicy.BEST_EFFORT)
        return self.node.create_publisher(msg_type, topic, qos)

    def collect(self, msg_type, topic: str, latched: bool = False,
                on_message: Callable[[Any], None] | None = None) -> list:
        """Subscribe and return the list that received messages are appended to."""
        received: list = []
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL if latched
                         else DurabilityPolicy.VOLATILE)

        def callback(msg):
            received.append((time.monotonic(), msg))
            if on_message:
                on_message(msg)
        self.node.create_subscription(msg_type, topic, callback, qos)
        return received

    def wait_for_subscribers(self, publisher, count: int = 1, timeout: float = 20.0) -> bool:
        """Wait until ``publisher`` has at least ``count`` matched subscriptions."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if publisher.get_subscription_count() >= count:
                return True
            time.sleep(0.05)
        return False

    def now_msg(self):
        """Return the current ROS time as a builtin_interfaces/Time."""
        return self.node.get_clock().now().to_msg()

    def close(self) -> None:
        """Shut down the context and the executor thread."""
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(2.0)


def wait_until(predicate: Callable[[], bool], timeout: float, period: float = 0.05) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period)
    return predicate()


def call_service(node: Any, srv_type: Any, name: str, request: Any, timeout: float = 60.0, *,
                 wait_for_service: float = 10.0, repeat_every: float | None = None) -> Any | None:
    """
    Call a service; return the response, or None if it is missing or does not answer in time.

    ``wait_for_service`` bounds the wait for the server, ``timeout`` then the wait for the answer.
    ``repeat_every`` is only for requests that may be repeated (e.g. get_state): a server can
    see the request before it has matched the client's response reader, and Fast DDS then drops
    the response ("failed to send response (timeout)", seen on a loaded CI machine), so the
    request is sent again after that many seconds without an answer.
    """
    client = node.create_client(srv_type, name)
    try:
        if not client.wait_for_service(timeout_sec=wait_for_service):
            return None
        deadline = time.monotonic() + timeout
        while True:
            left = max(deadline - time.monotonic(), 0.1)
            future = client.call_async(request)
            if wait_until(future.done, min(repeat_every or left, left)):
                return future.result()
            client.remove_pending_request(future)
            if repeat_every is None or time.monotonic() >= deadline:
                return None
    finally:
        node.destroy_client(client)


def labels_array(msg: Any) -> np.ndarray:
    """Return the class ids of a mono8 label Image without row padding (as the node publishes)."""
    assert msg.encoding == 'mono8' and msg.step == msg.width
    return np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width)
