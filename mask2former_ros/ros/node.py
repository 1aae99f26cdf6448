"""
ROS 2 lifecycle node: camera images in, Mask2Former labels, colour masks and overlays out.

A thin adapter around :class:`~mask2former_ros.core.engine.SegmentationEngine`: subscription
callbacks only hand the newest message of each camera to one worker thread
(:class:`~mask2former_ros.core.frame_slot.LatestFrameSlots`); the worker decodes, segments all
pending
cameras as one batch and publishes with each input's header.
"""

from dataclasses import dataclass, field
import gc
import json
import sys
import threading
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from mask2former_ros.core.engine import (
    dtype_name, EngineConfig, ModelLoadError, SegmentationEngine)
from mask2former_ros.core.frame_slot import LatestFrameSlots
from mask2former_ros.core.palette import colorize, overlay
from mask2former_ros.core.stats import WindowStats
from mask2former_ros.ros.image_conversion import (
    compressed_to_rgb, image_to_rgb, ImageConversionError, labels_to_image, rgb_to_image,
    stamp_ns)
from mask2former_ros.ros.parameters import PARAMETERS, SPECS, validate
import numpy as np
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

try:  # vision_msgs/LabelInfo is the agreed standard where it is installed
    from vision_msgs.msg import LabelInfo, VisionClass
except ImportError:  # pragma: no cover - depends on the ROS install
    LabelInfo = VisionClass = None

SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE


def _join(*parts: str) -> str:
    return '/'.join(p.strip('/') for p in parts if p and p.strip('/'))


@dataclass
class Camera:
    """Topics, publishers and statistics of one camera input."""

    name: str
    input_topic: str
    publishers: dict[str, Any] = field(default_factory=dict)
    subscription: Any = None
    input_stats: WindowStats = field(default_factory=WindowStats)
    output_stats: WindowStats = field(default_factory=WindowStats)
    latency_ms: WindowStats = field(default_factory=WindowStats)
    transport_ms: WindowStats = field(default_factory=WindowStats)
    decode_ms: WindowStats = field(default_factory=WindowStats)
    publish_ms: WindowStats = field(default_factory=WindowStats)
    bad_frames: int = 0
    failed_frames: int = 0
    late_frames: int = 0  # finished after a newer frame of this camera was published
    last_published_arrival: float = -1.0  # monotonic arrival time of the newest published
    last_warning: float = -1e9
    last_problem: str = ''


class SegmentationNode(LifecycleNode):
    """Managed node running Mask2Former semantic segmentation on one or more cameras."""

    def __init__(self, node_name: str = 'segmentation_node', **kwargs: Any) -> None:
        """Declare and validate parameters; nothing heavy happens before configure."""
        super().__init__(node_name, **kwargs)
        self._state = 'unconfigured'
        self.add_on_set_parameters_callback(self._on_set_parameters)
        for spec in PARAMETERS:
            self.declare_parameter(spec.name, spec.default, ParameterDescriptor(
                description=spec.description + ('' if spec.live else ' (applied on configure)'),
                dynamic_typing=False))
        self.engine: SegmentationEngine | None = None
        self.cameras: dict[str, Camera] = {}
        self._slots: LatestFrameSlots = LatestFrameSlots()
        self._workers: list[threading.Thread] = []
        self._publish_lock = threading.Lock()  # publication order and counters of workers
        self._stop = threading.Event()
        self._diag_pub = None
        self._diag_timer = None
        self._batch_sizes: dict[int, int] = {}
        self._batch_ms = WindowStats()
        self._frame_ms = WindowStats()
        self._stage_ms = {stage: WindowStats() for stage in ('preprocess', 'model',
                                                             'postprocess')}
        self._failed_batches = 0

    # --- parameters ----------------------------------------------------------------------

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        for param in params:
            problem = validate(param.name, param.value)
            if problem:
                self.get_logger().warning(problem)
                return SetParametersResult(successful=False, reason=problem)
            spec = SPECS.get(param.name)
            if spec and not spec.live and self._state != 'unconfigured':
                self.get_logger().info(f'{param.name} changed; it takes effect on the next '
                                       'configure (deactivate, cleanup, configure, activate)')
        return SetParametersResult(successful=True)

    def param(self, name: str) -> Any:
        """Return a parameter's current value."""
        return self.get_parameter(name).value

    # --- lifecycle -----------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the model and create publishers."""
        config = EngineConfig(model=self.param('model'), device=self.param('device'),
                              precision=self.param('precision'),
                              input_size=self.param('input_size'),
                              allow_pickle=self.param('allow_pickle'))
        try:
            self.engine = SegmentationEngine(config, log=self.get_logger().info)
        except (ModelLoadError, ValueError) as exc:
            self.get_logger().error(f'configure failed: {exc}')
            return FAILURE
        output_qos = QoSProfile(
            depth=1, history=HistoryPolicy.KEEP_LAST,
            reliability=ReliabilityPolicy.RELIABLE
            if self.param('output_qos_reliability') == 'reliable' else
            ReliabilityPolicy.BEST_EFFORT)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        compressed = self.param('image_transport') == 'compressed'
        for name in self.param('cameras'):
            topic = _join(name, 'image', 'compressed' if compressed else '')
            camera = Camera(name=name, input_topic=topic)
            out = _join(name, 'segmentation')
            for kind in ('labels', 'color', 'overlay'):
                camera.publishers[kind] = self.create_lifecycle_publisher(
                    Image, f'{out}/{kind}', output_qos)
            camera.publishers['label_info'] = self.create_publisher(
                String, f'{out}/label_info', latched)
            if LabelInfo is not None:
                camera.publishers['vision_label_info'] = self.create_publisher(
                    LabelInfo, f'{out}/vision_label_info', latched)
            self.cameras[name] = camera
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._diag_timer = self.create_timer(self.param('diagnostics_period'),
                                             self._publish_diagnostics)
        self._publish_label_info()
        self._state = 'inactive'
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Subscribe to the cameras and start the inference worker."""
        reliable = self.param('qos_reliability') == 'reliable'
        qos = QoSProfile(depth=self.param('qos_depth'), history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE if reliable
                         else ReliabilityPolicy.BEST_EFFORT)
        msg_type = CompressedImage if self.param('image_transport') == 'compressed' else Image
        self._stop.clear()
        self._slots.reopen()
        self._workers = [threading.Thread(target=self._work, name=f'segmentation_worker_{i}',
                                          daemon=True)
                         for i in range(self.param('inference_workers'))]
        for worker in self._workers:
            worker.start()
        for camera in self.cameras.values():
            camera.subscription = self.create_subscription(
                msg_type, camera.input_topic,
                lambda msg, name=camera.name: self._on_image(name, msg), qos)
        topics = ', '.join(self.resolve_topic_name(c.input_topic) for c in self.cameras.values())
        self.get_logger().info(f"active: {topics} ({self.param('qos_reliability')}, "
                               f"depth {self.param('qos_depth')})")
        self._state = 'active'
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Unsubscribe and stop the worker."""
        self._stop_streaming()
        self._state = 'inactive'
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Destroy publishers and free the model (and GPU memory)."""
        self._release()
        self._state = 'unconfigured'
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop everything from any state."""
        self._stop_streaming()
        self._release()
        self._state = 'finalized'
        return SUCCESS

    def _stop_streaming(self, timeout: float = 4.0) -> None:
        for camera in self.cameras.values():
            if camera.subscription is not None:
                self.destroy_subscription(camera.subscription)
                camera.subscription = None
        self._stop.set()
        self._slots.close()
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        if any(worker.is_alive() for worker in self._workers):
            self.get_logger().warning(
                f'inference still running after {timeout:.0f} s; leaving it to finish')
        self._workers = []
        self._slots.clear()

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
        if self.engine is not None:
            self.engine.close()
            self.engine = None
            gc.collect()

    # --- data path -----------------------------------------------------------------------

    def _on_image(self, camera: str, msg: Image | CompressedImage) -> None:
        """Subscription callback: keep only the newest message; decoding is the worker's."""
        cam = self.cameras[camera]
        cam.input_stats.add()
        stamp = stamp_ns(msg.header)
        if stamp:
            cam.transport_ms.add((self.get_clock().now().nanoseconds - stamp) / 1e6)
        self._slots.put(camera, (msg, time.monotonic()))

    def _work(self) -> None:
        max_items = self.param('max_batch_size') or None
        while not self._stop.is_set():
            items = self._slots.take(timeout=0.2, max_items=max_items)
            if items and not self._stop.is_set():
                self._process(items)

    def _decode(self, camera: Camera, msg: Image | CompressedImage) -> np.ndarray | None:
        try:
            if isinstance(msg, CompressedImage):
                return compressed_to_rgb(msg)
            return image_to_rgb(msg)
        except ImageConversionError as exc:
            with self._publish_lock:  # workers may decode at the same time
                camera.bad_frames += 1
            self._warn(camera, f'bad frame on {self.resolve_topic_name(camera.input_topic)}: '
                               f'{exc}')
            return None

    def _warn(self, camera: Camera, text: str) -> None:
        camera.last_problem = text
        now = time.monotonic()
        if now - camera.last_warning >= self.param('warning_throttle'):
            camera.last_warning = now
            self.get_logger().warning(text)

    def _process(self, items: dict[str, tuple[Any, float]]) -> None:
        """Decode, segment as one batch and publish the pending frames."""
        engine = self.engine
        if engine is None:
            return
        frames = []
        for name, (msg, received) in items.items():
            camera = self.cameras.get(name)
            if camera is None:
                continue
            decode_started = time.perf_counter()
            rgb = self._decode(camera, msg)
            if rgb is not None:
                camera.decode_ms.add((time.perf_counter() - decode_started) * 1e3)
                frames.append((camera, msg, received, rgb))
        if not frames:
            return
        started = time.perf_counter()
        try:
            results = engine.segment_batch([f[3] for f in frames])
        except Exception as exc:  # e.g. CUDA out of memory: drop this batch, keep running
            with self._publish_lock:
                self._failed_batches += 1
                for camera, *_ in frames:
                    camera.failed_frames += 1
                    self._warn(camera, f'inference failed, frame dropped: '
                                       f'{type(exc).__name__}: {exc}')
            return
        batch_ms = (time.perf_counter() - started) * 1e3
        with self._publish_lock:
            self._batch_sizes[len(frames)] = self._batch_sizes.get(len(frames), 0) + 1
        self._batch_ms.add(batch_ms)
        self._frame_ms.add(batch_ms / len(frames))
        for stage, stats in self._stage_ms.items():
            stats.add(results[0].timings_ms[stage])
        alpha = self.param('overlay_alpha')
        for (camera, msg, received, rgb), result in zip(frames, results, strict=True):
            if self._stop.is_set():
                return
            with self._publish_lock:  # several workers: never publish out of arrival order
                if received < camera.last_published_arrival:
                    camera.late_frames += 1
                    continue
                camera.last_published_arrival = received
            publish_started = time.perf_counter()
            try:
                self._publish(camera, msg.header, rgb, result.labels, engine.palette, alpha)
            except Exception as exc:  # a publisher destroyed during shutdown
                self._warn(camera, f'publish failed: {exc}')
                continue
            camera.publish_ms.add((time.perf_counter() - publish_started) * 1e3)
            now = self.get_clock().now().nanoseconds
            stamp = stamp_ns(msg.header)
            latency = (now - stamp) / 1e6 if stamp else (time.monotonic() - received) * 1e3
            camera.latency_ms.add(latency)
            camera.output_stats.add()

    def _publish(self, camera: Camera, header, rgb: np.ndarray, labels: np.ndarray,
                 palette: np.ndarray, alpha: float) -> None:
        pubs = camera.publishers
        if self.param('publish_labels'):
            pubs['labels'].publish(labels_to_image(labels, header))
        want_color = (self.param('publish_color')
                      and pubs['color'].get_subscription_count() > 0)
        want_overlay = (self.param('publish_overlay')
                        and pubs['overlay'].get_subscription_count() > 0)
        if want_color or want_overlay:
            color = colorize(labels, palette)
            if want_color:
                pubs['color'].publish(rgb_to_image(color, header))
            if want_overlay:
                pubs['overlay'].publish(rgb_to_image(
                    overlay(rgb, labels, palette, alpha, color=color), header))

    # --- label info and diagnostics -------------------------------------------------------

    def label_info(self) -> dict:
        """Class ids, names and colours of the loaded model, as published on label_info."""
        engine = self.engine
        return {'model': engine.config.model, 'ignore_index': 255,
                'encoding': 'mono8' if engine.label_dtype == np.uint8 else 'mono16',
                'classes': [{'id': i, 'name': n, 'color': [int(c) for c in engine.palette[i]]}
                            for i, n in enumerate(engine.class_names)]}

    def _publish_label_info(self) -> None:
        text = json.dumps(self.label_info())
        for camera in self.cameras.values():
            camera.publishers['label_info'].publish(String(data=text))
            if 'vision_label_info' in camera.publishers:
                msg = LabelInfo()
                msg.header.stamp = self.get_clock().now().to_msg()
                msg.class_map = [VisionClass(class_id=i, class_name=n)
                                 for i, n in enumerate(self.engine.class_names)]
                msg.threshold = 0.0
                camera.publishers['vision_label_info'].publish(msg)

    def diagnostics(self) -> DiagnosticArray:
        """Build the diagnostics message: one status per camera and one for the model."""
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        engine = self.engine
        name = self.get_fully_qualified_name()
        model = engine.config.model if engine else self.param('model')
        counters = self._slots.counters()

        def kv(key: str, value: Any) -> KeyValue:
            text = f'{value:.2f}' if isinstance(value, float) else str(value)
            return KeyValue(key=key, value=text)

        frame_ms = self._frame_ms.percentiles(50)[0]
        for camera in self.cameras.values():
            count = counters.get(camera.name)
            p50, p95 = camera.latency_ms.percentiles(50, 95)
            topic = self.resolve_topic_name(camera.input_topic)
            status = DiagnosticStatus(name=f'{name}: {topic}', hardware_id=model)
            in_rate, out_rate = camera.input_stats.rate(), camera.output_stats.rate()
            if self._state != 'active':
                status.level, status.message = DiagnosticStatus.WARN, f'{self._state}'
            elif in_rate == 0.0:
                status.level, status.message = DiagnosticStatus.WARN, 'no input'
            elif camera.last_problem and camera.output_stats.rate() == 0.0:
                status.level, status.message = DiagnosticStatus.ERROR, camera.last_problem
            else:
                status.level, status.message = DiagnosticStatus.OK, 'segmenting'
            status.values = [
                kv('input_rate_hz', in_rate), kv('output_rate_hz', out_rate),
                kv('frames_received', count.received if count else 0),
                kv('frames_dropped', count.dropped if count else 0),
                kv('frames_processed', camera.output_stats.total),
                kv('bad_frames', camera.bad_frames), kv('failed_frames', camera.failed_frames),
                kv('late_frames', camera.late_frames),
                kv('latency_p50_ms', p50), kv('latency_p95_ms', p95),
                kv('inference_ms', frame_ms),
                kv('transport_ms_p50', camera.transport_ms.percentiles(50)[0]),
                kv('decode_ms_p50', camera.decode_ms.percentiles(50)[0]),
                kv('publish_ms_p50', camera.publish_ms.percentiles(50)[0]),
                kv('device', str(engine.device) if engine else 'none'),
                kv('precision', dtype_name(engine.dtype) if engine else 'none'),
                kv('model', model), kv('last_problem', camera.last_problem)]
            array.status.append(status)
        batch = DiagnosticStatus(name=f'{name}: model', hardware_id=model,
                                 level=DiagnosticStatus.OK if engine else DiagnosticStatus.WARN,
                                 message='loaded' if engine else 'not loaded')
        b50, b95 = self._batch_ms.percentiles(50, 95)
        batch.values = [
            kv('batch_size_histogram', json.dumps(dict(sorted(self._batch_sizes.items())))),
            kv('inference_ms_per_batch_p50', b50), kv('inference_ms_per_batch_p95', b95),
            kv('inference_ms_per_frame_p50', frame_ms),
            *[kv(f'{stage}_ms_p50', stats.percentiles(50)[0])
              for stage, stats in self._stage_ms.items()],
            kv('failed_batches', self._failed_batches), kv('model', model),
            kv('device', str(engine.device) if engine else 'none'),
            kv('precision', dtype_name(engine.dtype) if engine else 'none')]
        array.status.append(batch)
        return array

    def _publish_diagnostics(self) -> None:
        if self._diag_pub is not None and self.engine is not None:
            self._diag_pub.publish(self.diagnostics())


def main(args: list[str] | None = None) -> int:
    """Run the node: ``ros2 run mask2former_ros segmentation_node [--ros-args ...]``."""
    rclpy.init(args=args)
    exit_code = 0
    node = None
    try:
        try:
            node = SegmentationNode()
        except Exception as exc:  # an invalid parameter from the command line or a file
            print(f'[segmentation_node] error: {exc}', file=sys.stderr)
            return 2
        if node.param('autostart'):
            if node.trigger_configure() != SUCCESS:
                node.get_logger().fatal('could not configure; exiting')
                return 1
            if node.trigger_activate() != SUCCESS:
                node.get_logger().fatal('could not activate; exiting')
                return 1
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node._stop_streaming()
            node._release()
            node.destroy_node()
        rclpy.try_shutdown()
    return exit_code


if __name__ == '__main__':
    sys.exit(main())
