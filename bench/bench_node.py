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
Node benchmark: 1024x2048 rgb8 frames at 30 Hz (and 8 Hz) into segmentation_node vs a naive node.

Reference, in the same run: the engine alone (``bench/engine_alone.py``: same model, same
frames, one thread, back to back, in its own process). Both nodes run in their own process
with the same model; this process publishes (reliable, like most camera drivers) and receives
the labels. Latency is input stamp to label arrival in this process (same host clock). CPU% and
RSS of the node process come from psutil. Targets (issue 12): node outputs/s >= 0.85x the
engine alone, node p50 <= 1.5x engine ms + 25 ms, and below the naive node at every rate.

    python bench/bench_node.py                     # 30 s per run, trained tiny model
    python bench/bench_node.py --seconds 60 --rates 30 --model /path/to/checkpoint
    python bench/bench_node.py --rates 8 --rounds 4 --seconds 20   # node vs naive, interleaved
"""

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
import json
import os
from pathlib import Path
import random
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from mask2former_ros.core.engine_config import BACKEND_CHOICES
from mask2former_ros.core.runtime.large_buffers import keep_large_buffers
from mask2former_ros.messages.image_conversion import stamp_ns
from mask2former_ros_fixtures.image_encoding import make_image_msg
from mask2former_ros_fixtures.synthetic import make_scene
import numpy as np
import psutil
import rclpy
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

HERE = Path(__file__).resolve().parent
PROFILE = HERE.parent / 'config' / 'fastdds_large_images.xml'


def prepare_environment(profile: bool = True, force_profile: bool = False) -> None:
    """
    Isolate DDS (random domain, localhost), stay offline, and use the large-image profile.

    This process stands in for the camera driver: it reuses its frame buffers, as the node
    does (:mod:`mask2former_ros.core.runtime.large_buffers`), so that its own cost stays low.
    """
    keep_large_buffers()
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 100)))
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    if force_profile:
        os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(PROFILE)
    elif profile:
        os.environ.setdefault('FASTDDS_DEFAULT_PROFILES_FILE', str(PROFILE))


@contextmanager
def driver_node(name: str, threads: int = 1) -> Iterator[Any]:
    """Yield this process's rclpy node, spun by an executor on its own thread until exit."""
    rclpy.init()
    node = rclpy.create_node(name)
    executor = (SingleThreadedExecutor() if threads == 1
                else MultiThreadedExecutor(num_threads=threads))
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        yield node
    finally:
        executor.shutdown()
        spinner.join(5.0)  # before the context goes: no thread left in rcl at exit
        node.destroy_node()
        rclpy.try_shutdown()


def default_model(model: str | None) -> str:
    """Return ``model``, or the trained tiny model shipped in mask2former_ros_fixtures/models."""
    if model is not None:
        return model
    from mask2former_ros_fixtures.tiny_model import ensure_tiny_model
    return str(ensure_tiny_model())


def backend_args(backend: str, onnx_model: str) -> dict[str, list[str]]:
    """Node parameters and script options that select a backend (empty for torch)."""
    if backend == 'torch':
        return {'node': [], 'script': []}
    return {'node': ['-p', f'backend:={backend}', '-p', f'onnx_model:={onnx_model}'],
            'script': ['--backend', backend, '--onnx-model', onnx_model]}


def export_for(backend: str, model: str, size: str, onnx_model: str | None) -> str:
    """Return the graph to serve with --backend onnxruntime (exported once if not given)."""
    if backend != 'onnxruntime' or onnx_model:
        return onnx_model or ''
    from mask2former_ros.core.backends.onnx_export import export_graph
    path = Path(tempfile.mkdtemp(prefix='bench_graph_')) / f'{size}.onnx'
    print(f'exporting {model} for {size} frames to {path} ...', flush=True)
    export_graph(model, size, path, log=lambda _text: None)
    return str(path)


def start_node(kind: str, model: str, namespace: str, extra: list[str],
               script_args: list[str] | None = None) -> tuple[subprocess.Popen, Any]:
    """Start our node or the naive one in ``namespace``; return it and its output file."""
    if kind == 'segmentation_node':
        cmd = [str(Path(sys.executable).with_name('segmentation_node')), '--ros-args',
               '-r', f'__ns:=/{namespace}', '-p', f'model:={model}', *extra]
    else:
        cmd = [sys.executable, str(HERE / 'naive_node.py'), '--model', model,
               *(script_args or []), '--ros-args', '-r', f'__ns:=/{namespace}']
    # Output to a file, not a pipe: nobody reads during the run, and a full pipe (long soak,
    # chatty node) would block the node.
    log = tempfile.TemporaryFile('w+')
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True), log


def latency_summary(lat: np.ndarray) -> dict:
    """Return p50, p95 and max of latencies in ms (NaN: none arrived)."""
    return {'p50': round(float(np.nanpercentile(lat, 50)), 1),
            'p95': round(float(np.nanpercentile(lat, 95)), 1),
            'max': round(float(np.nanmax(lat)), 1)}


def run_one(node, kind: str, model: str, frames: list, seconds: float, rate: float,
            extra: list[str], window: float = 5.0, script_args: list[str] | None = None) -> dict:
    """Drive one node for ``seconds`` at ``rate`` Hz; measurements per ``window`` seconds."""
    namespace = f'bench_{kind}_{random.randint(0, 1 << 30)}'
    proc, log = start_node(kind, model, namespace, extra, script_args)
    ps = psutil.Process(proc.pid)
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pub = node.create_publisher(Image, f'/{namespace}/image', qos)
    arrivals: list[tuple[float, float]] = []  # (arrival time, latency ms)
    diags: list = []

    def on_labels(msg: Image) -> None:
        now = time.time_ns()
        stamp = stamp_ns(msg.header)
        arrivals.append((time.monotonic(), (now - stamp) / 1e6))
    sub = node.create_subscription(Image, f'/{namespace}/segmentation/labels', on_labels, qos)
    diag_sub = node.create_subscription(DiagnosticArray, '/diagnostics',
                                        lambda m: diags.append(m), 10)
    deadline = time.monotonic() + 300
    while pub.get_subscription_count() == 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            raise SystemExit(f'{kind} did not start:\n{log.read()}')
        time.sleep(0.1)
    # Warm-up: one frame through, so model start-up is not measured.
    warm = len(arrivals)
    while len(arrivals) == warm and time.monotonic() < deadline:
        msg = frames[0]
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 1_000_000_000)
        pub.publish(msg)
        time.sleep(0.5)
    time.sleep(2.0)
    arrivals.clear()
    rss_start = ps.memory_info().rss
    ps.cpu_percent(None)
    cpu_samples, rss_samples, sent = [], [], 0
    start = time.monotonic()
    next_sample = start + 1.0
    while time.monotonic() - start < seconds:
        msg = frames[sent % len(frames)]
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 1_000_000_000)
        pub.publish(msg)
        sent += 1
        if time.monotonic() >= next_sample:
            cpu_samples.append(ps.cpu_percent(None))
            rss_samples.append((time.monotonic(), ps.memory_info().rss))
            next_sample += 1.0
        time.sleep(max(0.0, start + sent / rate - time.monotonic()))
    publish_end = time.monotonic()
    time.sleep(3.0)  # let in-flight frames (and a naive backlog) drain a little
    rss_end = ps.memory_info().rss
    proc.send_signal(2)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    node.destroy_subscription(sub)
    node.destroy_subscription(diag_sub)
    node.destroy_publisher(pub)
    in_window = [(t, lat) for t, lat in arrivals if t <= publish_end + 0.5]
    lat = np.array([v for _, v in in_window]) if in_window else np.array([np.nan])
    windows = []
    for w0 in np.arange(start, publish_end - 0.5 * window, window):  # whole windows only
        values = [v for t, v in in_window if w0 <= t < w0 + window]
        rss = [r for t, r in rss_samples if w0 <= t < w0 + window]
        windows.append({'t': round(float(w0 - start)), 'n': len(values),
                        'hz': round(len(values) / window, 2),
                        'p50': round(float(np.percentile(values, 50)), 1) if values else None,
                        'p95': round(float(np.percentile(values, 95)), 1) if values else None,
                        'max': round(float(np.max(values)), 1) if values else None,
                        'rss_mb': round(max(rss) / 2**20, 1) if rss else None})
    result = {
        'node': kind, 'frames_sent': sent, 'outputs': len(in_window),
        'output_hz': round(len(in_window) / (publish_end - start), 2),
        'drop_ratio': round(1 - len(in_window) / sent, 3),
        'latency_ms': latency_summary(lat),
        'latency_over_time': windows,
        'cpu_percent_mean': round(float(np.mean(cpu_samples)), 1) if cpu_samples else None,
        'rss_mb_start': round(rss_start / 2**20, 1), 'rss_mb_end': round(rss_end / 2**20, 1),
        'latencies_ms': [round(float(v), 2) for _, v in in_window],
    }
    if kind == 'segmentation_node':
        result['stages_ms_p50'] = _stages(diags, namespace)
    return result


def _stages(diags: list, namespace: str) -> dict:
    """Per-frame stage times reported by the node's diagnostics."""
    camera, model = {}, {}
    for array in diags:
        for status in array.status:
            values = {kv.key: kv.value for kv in status.values}
            if namespace in status.name and status.name.endswith('/image'):
                camera = values
            elif namespace in status.name and status.name.endswith(': model'):
                model = values
    keys = {'transport (stamp to callback)': camera.get('transport_ms_p50'),
            'decode': camera.get('decode_ms_p50'),
            'preprocess': model.get('preprocess_ms_p50'),
            'model': model.get('model_ms_p50'),
            'postprocess': model.get('postprocess_ms_p50'),
            'publish (convert + publish)': camera.get('publish_ms_p50')}
    out = {k: float(v) for k, v in keys.items() if v not in (None, 'nan')}
    out['outside the model'] = round(sum(v for k, v in out.items() if k != 'model'), 2)
    if camera.get('latency_p50_ms') not in (None, 'nan'):
        out['stamp to published, in the node'] = float(camera['latency_p50_ms'])
    return out


def pool(rounds: list[dict]) -> dict:
    """Merge the runs of one node at one rate: latencies pooled, rates and CPU averaged."""
    if len(rounds) == 1:
        return {**rounds[0], 'round_p50s': [rounds[0]['latency_ms']['p50']]}
    lat = np.array([v for r in rounds for v in r['latencies_ms']] or [np.nan])
    sent, outputs = sum(r['frames_sent'] for r in rounds), sum(r['outputs'] for r in rounds)
    cpu = [r['cpu_percent_mean'] for r in rounds if r['cpu_percent_mean'] is not None]
    merged = {
        'node': rounds[0]['node'], 'frames_sent': sent, 'outputs': outputs,
        'output_hz': round(float(np.mean([r['output_hz'] for r in rounds])), 2),
        'drop_ratio': round(1 - outputs / sent, 3),
        'latency_ms': latency_summary(lat),
        'round_p50s': [r['latency_ms']['p50'] for r in rounds],
        'cpu_percent_mean': round(float(np.mean(cpu)), 1) if cpu else None,
        'rss_mb_start': rounds[0]['rss_mb_start'], 'rss_mb_end': rounds[-1]['rss_mb_end'],
        'latency_over_time': [w for r in rounds for w in r['latency_over_time']],
        'latencies_ms': lat.tolist(),
    }
    stages = [r['stages_ms_p50'] for r in rounds if 'stages_ms_p50' in r]
    if stages:
        merged['stages_ms_p50'] = {k: round(float(np.median([s[k] for s in stages if k in s])), 2)
                                   for k in stages[0]}
    return merged


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--model', help='checkpoint (default: the trained tiny model)')
    parser.add_argument('--seconds', type=float, default=30.0)
    parser.add_argument('--rates', type=float, nargs='+', default=[30.0, 8.0],
                        help='input rates in Hz, one run of each node per rate')
    parser.add_argument('--size', default='1024x2048')
    parser.add_argument('--no-profile', action='store_true',
                        help='use Fast DDS default transports instead of the shipped profile')
    parser.add_argument('--node-args', default='', help='extra --ros-args for our node')
    parser.add_argument('--rounds', type=int, default=1,
                        help='runs of the engine alone and of each node per rate, the order '
                             'reversed every other round (drift of the machine speed between '
                             'runs falls on all); latencies pooled, rates averaged')
    parser.add_argument('--json', help='also write results to this file')
    parser.add_argument('--backend', default='torch', choices=BACKEND_CHOICES,
                        help='backend of the node, the naive node and the engine alone')
    parser.add_argument('--onnx-model', help='graph for --backend onnxruntime (default: '
                        'export the model for --size first)')
    args = parser.parse_args(argv)
    prepare_environment(profile=False, force_profile=not args.no_profile)
    model = default_model(args.model)
    height, width = (int(v) for v in args.size.split('x'))
    selected = backend_args(args.backend, export_for(args.backend, model, args.size,
                                                     args.onnx_model))

    def engine_alone(i: int) -> dict:
        print(f'engine alone for {args.seconds:.0f} s (round {i + 1} of {args.rounds}) ...',
              flush=True)
        return json.loads(subprocess.run(
            [sys.executable, str(HERE / 'engine_alone.py'), '--model', model, '--size',
             args.size, '--seconds', str(args.seconds), *selected['script']], check=True,
            capture_output=True,
            text=True).stdout.strip().splitlines()[-1])
    rng = np.random.default_rng(0)
    frames = [make_image_msg(make_scene(rng, height, width)[0], 'rgb8') for _ in range(4)]
    extra = (args.node_args.split() if args.node_args else []) + selected['node']
    engines = []
    kinds = ('segmentation_node', 'naive')
    done: dict[tuple, list] = {(r, k): [] for r in args.rates for k in kinds}
    with driver_node('bench_node_driver') as node:
        for i in range(args.rounds):
            if i % 2 == 0:
                engines.append(engine_alone(i))
            for rate in args.rates:
                order = kinds if i % 2 == 0 else kinds[::-1]
                for kind in order:
                    print(f'running {kind} at {rate:g} Hz for {args.seconds:.0f} s '
                          f'(round {i + 1} of {args.rounds}) ...', flush=True)
                    done[(rate, kind)].append(run_one(node, kind, model, frames, args.seconds,
                                                      rate, extra,
                                                      script_args=selected['script']))
            if i % 2 == 1:
                engines.append(engine_alone(i))
    runs = {key: pool(rounds) for key, rounds in done.items()}
    profile = 'off' if args.no_profile else 'on'
    print(f'\n{args.size} rgb8, {args.seconds:g} s per run, {args.rounds} round(s), model '
          f'{model}, backend {args.backend}, profile {profile}')
    alone = {'fps': round(float(np.mean([e['fps'] for e in engines])), 2),
             'ms_per_frame_p50': round(float(np.mean([e['ms_per_frame_p50'] for e in engines])),
                                       1),
             'stages_ms_p50': {k: round(float(np.mean([e['stages_ms_p50'][k] for e in engines])),
                                        2) for k in engines[0]['stages_ms_p50']},
             'rounds': engines}
    print(f"engine alone (one thread, back to back): {alone['fps']} frames/s, "
          f"{alone['ms_per_frame_p50']} ms/frame p50, stages p50 {alone['stages_ms_p50']}")
    if args.rounds > 1:
        print('  each round: ' + ', '.join(f"{e['fps']} frames/s" for e in engines) +
              ' (the mean is the reference)')
    for rate in args.rates:
        ours, naive = runs[(rate, 'segmentation_node')], runs[(rate, 'naive')]
        print(f'\n--- {rate:g} Hz input ---')
        print(f"{'':22}{'segmentation_node':>20}{'naive (depth 10)':>20}")
        rows = [('frames sent', 'frames_sent'), ('outputs', 'outputs'),
                ('output Hz', 'output_hz'), ('drop ratio', 'drop_ratio'),
                ('CPU % (mean)', 'cpu_percent_mean'), ('RSS MB start', 'rss_mb_start'),
                ('RSS MB end', 'rss_mb_end')]
        for label, key in rows:
            print(f'{label:22}{ours[key]!s:>20}{naive[key]!s:>20}')
        for q in ('p50', 'p95', 'max'):
            label = f'latency {q} ms'
            print(f"{label:22}{ours['latency_ms'][q]:>20}{naive['latency_ms'][q]:>20}")
        if args.rounds > 1:
            print(f"{'p50 of each round':22}{' '.join(map(str, ours['round_p50s'])):>20}"
                  f"{' '.join(map(str, naive['round_p50s'])):>20}")
        print('segmentation_node ms per frame by stage (p50, from its diagnostics):')
        for stage, value in ours.get('stages_ms_p50', {}).items():
            print(f'  {stage:32}{value:>8.2f}')
        bound = 1.5 * alone['ms_per_frame_p50'] + 25
        checks = [
            (f"outputs/s vs engine alone: x{ours['output_hz'] / alone['fps']:.2f}",
             rate < alone['fps'] or ours['output_hz'] >= 0.85 * alone['fps'], '>= x0.85'),
            (f"latency p50 {ours['latency_ms']['p50']} ms vs 1.5 x engine ms + 25 = "
             f'{bound:.1f} ms', ours['latency_ms']['p50'] <= bound, '<='),
            (f"latency p50 vs naive: {ours['latency_ms']['p50']} vs "
             f"{naive['latency_ms']['p50']} ms", ours['latency_ms']['p50']
             < naive['latency_ms']['p50'], 'below'),
        ]
        for text, ok, target in checks:
            print(f"  {'MET ' if ok else 'MISS'} {text} (target {target})")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {'engine_alone': alone, 'runs': [
                {'rate': r, **{k: v for k, v in res.items() if k != 'latencies_ms'}}
                for (r, _), res in runs.items()]},
            indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
