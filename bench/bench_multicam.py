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
Multi-camera benchmark: one batched node for N cameras vs N single-camera nodes.

N cameras (default 1, 2, 4) publish rgb8 frames at 30 Hz each; per camera the output rate and
latency (stamp to label arrival), in total frames per second and the RSS of all node processes.

    python bench/bench_multicam.py                      # 480x640, 20 s per setting
    python bench/bench_multicam.py --cameras 1,2,4 --seconds 30 --size 720x1280
"""

import argparse
import json
from pathlib import Path
import random
import subprocess
import sys
import threading
import time

from bench_node import default_model, prepare_environment
from diagnostic_msgs.msg import DiagnosticArray
from mask2former_ros.ros.image_conversion import make_image_msg, stamp_ns
from mask2former_ros_fixtures.synthetic import make_scene
import numpy as np
import psutil
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image


def _node_cmd(model: str, namespace: str, cameras: list[str], params: list[str]) -> list[str]:
    exe = str(Path(sys.executable).with_name('segmentation_node'))
    names = '[' + ','.join(f"'{c}'" for c in cameras) + ']'
    cmd = [exe, '--ros-args', '-r', f'__ns:=/{namespace}', '-p', f'model:={model}',
           '-p', f'cameras:={names}', '-p', 'publish_overlay:=false']
    for param in params:
        cmd += ['-p', param]
    return cmd


def run_setting(driver, model: str, n: int, mode: str, params: list[str] | None, frames,
                seconds: float, rate: float) -> dict:
    """Measure ``n`` cameras served by one node with ``params`` (None: one node each)."""
    batched = params is not None
    namespace = f'mc_{random.randint(0, 1 << 30)}'
    cameras = [f'cam{i}' for i in range(n)]
    if batched:
        procs = [subprocess.Popen(_node_cmd(model, namespace, cameras, params),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    else:
        procs = [subprocess.Popen(_node_cmd(model, f'{namespace}/{c}', [''], []),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for c in cameras]
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pubs, arrivals = {}, {c: [] for c in cameras}
    subs = []
    for cam in cameras:
        base = f'/{namespace}/{cam}'
        pubs[cam] = driver.create_publisher(Image, f'{base}/image', qos)

        def on_labels(msg, cam=cam):
            now = time.time_ns()
            stamp = stamp_ns(msg.header)
            arrivals[cam].append((time.monotonic(), (now - stamp) / 1e6))
        subs.append(driver.create_subscription(Image, f'{base}/segmentation/labels',
                                               on_labels, qos))
    model_status: dict[str, dict[str, str]] = {}  # node name -> its last 'model' status

    def on_diagnostics(array: DiagnosticArray) -> None:
        for status in array.status:
            if status.name.startswith(f'/{namespace}/') and status.name.endswith(': model'):
                model_status[status.name] = {kv.key: kv.value for kv in status.values}
    subs.append(driver.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics,
                                           10))
    deadline = time.monotonic() + 300
    while not all(p.get_subscription_count() for p in pubs.values()):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise SystemExit('nodes did not start')
        time.sleep(0.1)
    while not all(arrivals.values()) and time.monotonic() < deadline:  # warm-up
        for pub in pubs.values():
            msg = frames[0]
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 10**9)
            pub.publish(msg)
        time.sleep(0.3)
    time.sleep(1.0)
    for values in arrivals.values():
        values.clear()
    stop = threading.Event()

    def publish(cam: str, offset: float) -> None:
        start, sent = time.monotonic() + offset, 0
        while not stop.is_set():
            time.sleep(max(0.0, start + sent / rate - time.monotonic()))
            msg = frames[sent % len(frames)]
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 10**9)
            pubs[cam].publish(msg)
            sent += 1
    threads = [threading.Thread(target=publish, args=(c, i / (rate * n)), daemon=True)
               for i, c in enumerate(cameras)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    rss, cpu = [], []
    watched = [psutil.Process(p.pid) for p in procs]
    for ps in watched:
        ps.cpu_percent(None)
    while time.monotonic() - started < seconds:
        time.sleep(1.0)
        rss.append(sum(ps.memory_info().rss for ps in watched))
        cpu.append(sum(ps.cpu_percent(None) for ps in watched))
    model_status_at_end = dict(model_status)
    stop.set()
    elapsed = time.monotonic() - started
    for p in procs:
        p.send_signal(2)
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
    for s in subs:
        driver.destroy_subscription(s)
    for p in pubs.values():
        driver.destroy_publisher(p)
    per_camera = {}
    for cam, values in arrivals.items():
        lat = [v for t, v in values if t <= started + elapsed]
        per_camera[cam] = {'hz': round(len(lat) / elapsed, 2),
                           'p50_ms': round(float(np.percentile(lat, 50)), 1) if lat else None,
                           'p95_ms': round(float(np.percentile(lat, 95)), 1) if lat else None}
    return {'cameras': n, 'mode': mode,
            'processes': len(procs), 'per_camera': per_camera,
            'total_fps': round(sum(c['hz'] for c in per_camera.values()), 2),
            'rss_mb': round(max(rss) / 2**20, 1),
            'cpu_percent': round(float(np.mean(cpu)), 1),
            'model_diagnostics': model_status_at_end}


def _model_summary(result: dict) -> str:
    """Batch sizes and per-batch/per-frame inference ms from the nodes' diagnostics."""
    parts = []
    for values in result['model_diagnostics'].values():
        parts.append(f"batches {values.get('batch_size_histogram')} "
                     f"{values.get('inference_ms_per_batch_p50')} ms/batch "
                     f"{values.get('inference_ms_per_frame_p50')} ms/frame")
        if result['mode'] == 'separate':
            break
    return '; '.join(parts)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--model', help='checkpoint (default: the trained tiny model)')
    parser.add_argument('--cameras', default='1,2,4')
    parser.add_argument('--seconds', type=float, default=20.0)
    parser.add_argument('--rate', type=float, default=30.0)
    parser.add_argument('--size', default='480x640')
    parser.add_argument('--batched', action='append', metavar='LABEL[=NAME:=VALUE,...]',
                        help='a one-node variant to measure, with its parameters, e.g. '
                             "'b2=max_batch_size:=2' (repeatable; default: 'batched')")
    parser.add_argument('--json')
    args = parser.parse_args(argv)
    variants = []
    for text in args.batched or ['batched']:
        label, _, params = text.partition('=')
        variants.append((label, [p for p in params.split(',') if p]))
    prepare_environment()
    model = default_model(args.model)
    size = tuple(int(v) for v in args.size.split('x'))
    rng = np.random.default_rng(0)
    frames = [make_image_msg(make_scene(rng, *size)[0], 'rgb8') for _ in range(4)]
    rclpy.init()
    driver = rclpy.create_node('multicam_driver')
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(driver)
    threading.Thread(target=executor.spin, daemon=True).start()
    results = []
    try:
        for n in (int(v) for v in args.cameras.split(',')):
            for mode, params in variants + ([('separate', None)] if n > 1 else []):
                print(f'{n} camera(s), {mode} ...', flush=True)
                results.append(run_setting(driver, model, n, mode, params, frames,
                                           args.seconds, args.rate))
    finally:
        executor.shutdown()
        rclpy.try_shutdown()
    print(f'\n{args.size} rgb8 at {args.rate:g} Hz per camera, {args.seconds:g} s, '
          f'model {model}')
    print(f"{'cameras':>8}{'mode':>12}{'procs':>7}{'total fps':>11}{'RSS MB':>9}{'CPU %':>8}"
          '   per camera Hz (p50/p95 ms)')
    for r in results:
        cams = '  '.join(f"{v['hz']} ({v['p50_ms']}/{v['p95_ms']})"
                         for v in r['per_camera'].values())
        print(f"{r['cameras']:>8}{r['mode']:>12}{r['processes']:>7}{r['total_fps']:>11}"
              f"{r['rss_mb']:>9}{r['cpu_percent']:>8}   {cams}")
    print('\nnode diagnostics (first node of each setting):')
    for r in results:
        print(f"{r['cameras']:>8}{r['mode']:>12}   {_model_summary(r)}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
