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
ROS 2 lifecycle node: camera images in, Mask2Former labels, colour masks and overlays out.

Wiring only. Three threads carry a frame:

1. the executor's thread: the subscription callback (``raw=True``) stores the serialized message
   in the camera's newest-frame slot (``LatestFrameSlots`` of ``core.runtime.frame_slot``),
   so a frame that is later replaced costs no deserialisation;
2. the inference thread (``InferenceWorker`` of ``core.runtime.inference_worker``, the
   only thread that ever runs the model; it loads the engine of the configured backend at
   configure): takes the newest frame of every camera, deserialises and decodes it, segments
   them as one batch (:class:`~mask2former_ros.ros.inference_stage.InferenceStage`);
3. the output thread (:class:`~mask2former_ros.ros.output_stage.OutputStage`): builds and
   publishes labels (and colour / overlay, and for panoptic/instance tasks instances /
   detections, only while subscribed) with each input's header, in the order the inference
   thread produced them.

How the process ends after SIGINT/SIGTERM is :mod:`~mask2former_ros.ros.signal_exit`'s job.
"""

import sys
import threading
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from mask2former_ros.core.checkpoint import ModelLoadError
from mask2former_ros.core.postprocess.instance_tracking import InstanceTracker, TrackerConfig
from mask2former_ros.core.results import Segmenter, STAGES
from mask2former_ros.core.runtime.frame_slot import LatestFrameSlots
from mask2former_ros.core.runtime.inference_worker import InferenceWorker
from mask2former_ros.core.runtime.large_buffers import keep_large_buffers
from mask2former_ros.core.runtime.stats import CameraStats, WindowStats
from mask2former_ros.ros.detections import VISION_MSGS_MISSING
from mask2former_ros.ros.diagnostics import BatchStats, camera_status, model_status, ModelInfo
from mask2former_ros.ros.inference_stage import Camera, InferenceStage
from mask2former_ros.ros.label_info import LabelInfo, legend_string, vision_label_info
from mask2former_ros.ros.output_stage import output_types, OutputStage, thresholds
from mask2former_ros.ros.parameters import PARAMETERS, Settings, SPECS, validate
from mask2former_ros.ros.signal_exit import exit_after_signal, note_signals, spin
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE
MAX_WORKER_RESTARTS = 3
STUCK_AFTER_S = 30.0  # a batch running longer than this marks the inference thread stuck


def _join(*parts: str) -> str:
    return '/'.join(p.strip('/') for p in parts if p and p.strip('/'))


class SegmentationNode(LifecycleNode):
    """Managed node running Mask2Former segmentation on one or more cameras."""

    def __init__(self, node_name: str = 'segmentation_node', **kwargs: Any) -> None:
        """Declare and validate parameters; nothing heavy happens before configure."""
        super().__init__(node_name, **kwargs)
        self.settings: Settings | None = None
        self._pending_reconfigure: set[str] = set()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        for spec in PARAMETERS:
            self.declare_parameter(spec.name, spec.default, ParameterDescriptor(
                description=spec.description + ('' if spec.live else ' (applied on configure)'),
                dynamic_typing=False))
        self.cameras: dict[str, Camera] = {}
        self._worker: InferenceWorker | None = None
        # Held while the worker is swapped: teardown may run on any thread, and the watchdog
        # (executor thread) must never take a worker that teardown stopped for a dead one.
        self._worker_lock = threading.Lock()
        self._worker_restarts = 0
        self._worker_problem = ''
        self._slots: LatestFrameSlots = LatestFrameSlots()
        self._output = OutputStage(self.param, self.get_clock(), self._warn)
        self._inference: InferenceStage | None = None
        self._diag_pub = None
        self._diag_timer = None
        self._batches = BatchStats({}, WindowStats(), WindowStats(),
                                   {stage: WindowStats() for stage in STAGES})

    # --- parameters ----------------------------------------------------------------------

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        for param in params:
            problem = validate(param.name, param.value)
            if problem:
                self.get_logger().warning(problem)
                return SetParametersResult(successful=False, reason=problem)
        for param in params:
            spec = SPECS.get(param.name)
            if spec and not spec.live and self.settings is not None:
                self._pending_reconfigure.add(param.name)
                self.get_logger().warning(
                    f'{param.name} changed while configured: it takes effect on the next '
                    'configure (deactivate, cleanup, configure, activate)')
        return SetParametersResult(successful=True)

    def param(self, name: str) -> Any:
        """Return a parameter's current value."""
        return self.get_parameter(name).value

    @property
    def lifecycle_state(self) -> str:
        """Return the label of the current lifecycle state (e.g. 'active')."""
        return self._state_machine.current_state[1]

    @property
    def engine(self) -> Segmenter | None:
        """Return the loaded engine, or None when unconfigured."""
        worker = self._worker
        return worker.engine if worker is not None else None

    @property
    def inference_thread(self) -> threading.Thread | None:
        """Return the thread that runs the model, while it runs."""
        worker = self._worker
        return worker.thread if worker is not None and worker.alive else None

    # --- lifecycle -----------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Read the configure-time parameters, load the model and create publishers."""
        worker = InferenceWorker(name='inference')
        try:
            settings = Settings.read(self.param)  # the engine settings are validated here
            engine = worker.start(settings.engine, log=self.get_logger().info,
                                  warn=self.get_logger().warning)
        except (ModelLoadError, ValueError) as exc:
            self.get_logger().error(f'configure failed: {exc}')
            return FAILURE
        with self._worker_lock:
            self.settings, self._worker = settings, worker
        self._worker_restarts, self._worker_problem = 0, ''
        self._pending_reconfigure.clear()
        self._inference = InferenceStage(self.cameras, settings.compressed, self._batches,
                                         self._output, self._warn, self.resolve_topic_name)
        output_qos = QoSProfile(
            depth=1, history=HistoryPolicy.KEEP_LAST,
            reliability=ReliabilityPolicy.RELIABLE if settings.output_reliable
            else ReliabilityPolicy.BEST_EFFORT)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        outputs = output_types(engine.task)
        if engine.task != 'semantic' and 'detections' not in outputs:
            self.get_logger().warning(
                f'vision_msgs is not installed ({VISION_MSGS_MISSING}): no segmentation/'
                'detections (nor vision_label_info); the other outputs are published')
        tracking = settings.tracking and engine.task != 'semantic'
        self.get_logger().info(
            f'configured: task {engine.task}{thresholds(engine.task, settings.engine)}; '
            f"outputs segmentation/{{{','.join(outputs)}}}"
            + (f'; tracking on (track_max_age {settings.track_max_age})' if tracking else ''))
        for name in settings.cameras:
            camera = Camera(name=name, input_topic=_join(
                name, 'image', 'compressed' if settings.compressed else ''), tracker=(
                InstanceTracker(TrackerConfig(settings.track_max_age)) if tracking else None))
            out = _join(name, 'segmentation')
            for kind, msg_type in outputs.items():
                camera.publishers[kind] = self.create_lifecycle_publisher(
                    msg_type, f'{out}/{kind}', output_qos)
            camera.publishers['label_info'] = self.create_publisher(
                String, f'{out}/label_info', latched)
            camera.publishers['label_info'].publish(legend_string(engine))
            if LabelInfo is not None:
                pub = self.create_publisher(LabelInfo, f'{out}/vision_label_info', latched)
                pub.publish(vision_label_info(engine, self.get_clock().now().to_msg()))
                camera.publishers['vision_label_info'] = pub
            self.cameras[name] = camera
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._diag_timer = self.create_timer(settings.diagnostics_period, self._on_diag_timer)
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Subscribe to the cameras and let the inference thread serve their frames."""
        settings = self.settings
        qos = QoSProfile(depth=settings.qos_depth, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE if settings.qos_reliable
                         else ReliabilityPolicy.BEST_EFFORT)
        msg_type = CompressedImage if settings.compressed else Image
        self._slots.reopen()
        self._inference.reset_tracks()  # tracks start anew after a deactivation
        self._output.start()
        self._serve()
        for camera in self.cameras.values():
            camera.subscription = self.create_subscription(
                msg_type, camera.input_topic,
                lambda raw, name=camera.name: self._on_image(name, raw), qos, raw=True)
        topics = ', '.join(self.resolve_topic_name(c.input_topic) for c in self.cameras.values())
        reliability = 'reliable' if settings.qos_reliable else 'best_effort'
        self.get_logger().info(f'active: {topics} ({reliability}, depth {settings.qos_depth})')
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Unsubscribe, finish the batch in progress and stop the output thread."""
        self._stop_streaming()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Destroy publishers, free the model (on its thread) and end the inference thread."""
        self._release()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop everything from any state."""
        self.teardown()
        return SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release everything after a failed transition; the node returns to unconfigured."""
        self.get_logger().error(f'error processing from {state.label}: releasing everything')
        self.teardown()
        return SUCCESS

    def teardown(self) -> None:
        """Stop streaming and release everything; safe to call any number of times."""
        self._stop_streaming()
        self._release()

    def _serve(self) -> None:
        max_items = self.settings.max_batch_size or None
        self._worker.serve(lambda timeout: self._slots.take(timeout, max_items),
                           self._inference.process)

    def _stop_streaming(self, timeout: float = 4.0) -> None:
        self._output.halt()
        for camera in self.cameras.values():
            if camera.subscription is not None:
                self.destroy_subscription(camera.subscription)
                camera.subscription = None
        if self._worker is not None:
            self._worker.serve(None)
            deadline = time.monotonic() + timeout
            while self._worker.busy_since is not None and time.monotonic() < deadline:
                time.sleep(0.01)
        self._slots.clear()
        self._output.stop(timeout)

    def destroy_node(self) -> None:
        """
        Destroy the node and the lifecycle state machine that rclpy's LifecycleNode keeps.

        The state machine holds the rcl node, and while it lives rmw_fastrtps keeps the DDS
        participant: a process that then ends with ``os._exit`` (as ``main`` does after a
        signal) left the participant's shared-memory segments in /dev/shm for good.
        """
        super().destroy_node()
        self._state_machine.destroy_when_not_in_use()

    def _release(self) -> None:
        for camera in self.cameras.values():
            for pub in camera.publishers.values():
                if hasattr(pub, 'on_activate'):
                    self.destroy_lifecycle_publisher(pub)
                else:
                    self.destroy_publisher(pub)
        self.cameras.clear()
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        if self._diag_pub is not None:
            self.destroy_publisher(self._diag_pub)
            self._diag_pub = None
        with self._worker_lock:
            worker, self._worker = self._worker, None
            self.settings, self._inference = None, None
        if worker is not None and not worker.stop():
            self.get_logger().warning('the inference thread did not end within 5 s')

    # --- data path -----------------------------------------------------------------------

    def _on_image(self, camera: str, raw: bytes) -> None:
        """Subscription callback: keep the newest serialized message; no deserialisation."""
        cam = self.cameras.get(camera)
        if cam is None:
            return
        cam.stats.arrivals.add()
        self._slots.put(camera, (raw, time.monotonic(), self.get_clock().now().nanoseconds))

    def _warn(self, stats: CameraStats, text: str) -> None:
        stats.last_problem = text
        if stats.warn_due(self.param('warning_throttle')):
            self.get_logger().warning(text)

    # --- watchdog and diagnostics ----------------------------------------------------------

    def _on_diag_timer(self) -> None:
        self._check_worker()
        if self._diag_pub is not None:
            self._diag_pub.publish(self.diagnostics())

    def _check_worker(self) -> None:
        """Turn a dead or stuck inference thread into an ERROR and restart a dead one."""
        with self._worker_lock:  # a teardown meanwhile waits, then stops the replacement
            worker = self._worker
            if worker is None:
                return
            busy = worker.busy_since
            if worker.alive:
                stuck = busy is not None and time.monotonic() - busy > STUCK_AFTER_S
                self._worker_problem = (f'inference stuck for {time.monotonic() - busy:.0f} s'
                                        if stuck else '')
                return
            self._worker_problem = f'inference thread died: {worker.death}'
            self.get_logger().error(self._worker_problem)
            if self._diag_pub is not None:  # say so before the restart (a model load) begins
                self._diag_pub.publish(self.diagnostics())
            if self._worker_restarts >= MAX_WORKER_RESTARTS:
                return
            self._worker_restarts += 1
            replacement = InferenceWorker(name='inference')
            try:
                replacement.start(self.settings.engine, log=self.get_logger().info,
                                  warn=self.get_logger().warning)
            except Exception as exc:  # noqa: BLE001 - reported; retried at the next tick
                self.get_logger().error(f'restarting the inference thread failed: {exc}')
                return
            self._worker = replacement
            if self._output.publishing:
                self._serve()
        self.get_logger().warning(
            f'inference thread restarted ({self._worker_restarts}/{MAX_WORKER_RESTARTS})')
        self._worker_problem = ''

    def diagnostics(self) -> DiagnosticArray:
        """Build the diagnostics message: one status per camera and one for the model."""
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        engine = self.engine
        name = self.get_fully_qualified_name()
        info = ModelInfo.of(engine, self.param, problem=self._worker_problem,
                            restarts=self._worker_restarts,
                            pending_reconfigure=', '.join(sorted(self._pending_reconfigure)))
        counters = self._slots.counters()
        frame_ms = self._batches.frame_ms.percentiles(50)[0]
        state = self.lifecycle_state
        for camera in list(self.cameras.values()):
            array.status.append(camera_status(
                name, self.resolve_topic_name(camera.input_topic), state, camera.stats,
                counters.get(camera.name), info, frame_ms))
        array.status.append(model_status(name, info, self._batches))
        return array


def main(args: list[str] | None = None) -> int:
    """Run the node: ``ros2 run mask2former_ros segmentation_node [--ros-args ...]``."""
    keep_large_buffers()  # every frame passes through buffers of its size: reuse them
    signals = note_signals()  # before init: rclpy's handlers then call these after shutdown
    rclpy.init(args=args)
    try:
        node = SegmentationNode()
    except Exception as exc:  # an invalid parameter from the command line or a file
        print(f'[segmentation_node] error: {exc}', file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor = SingleThreadedExecutor()
    try:
        if node.param('autostart'):
            for transition, name in ((node.trigger_configure, 'configure'),
                                     (node.trigger_activate, 'activate')):
                if signals or not rclpy.ok():
                    return 0
                if transition() != SUCCESS:
                    node.get_logger().fatal(f'could not {name}; exiting')
                    return 1
        executor.add_node(node)
        spin(executor, node.context)
        return 0
    finally:
        node.teardown()
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()
        if signals:
            exit_after_signal()


if __name__ == '__main__':
    sys.exit(main())
