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
Demo: the real segmentation node on a sample camera stream, played from a rosbag2 bag.

Writes a sample bag of synthetic street scenes (with ground truth), starts
``segmentation_node`` in its own process, plays the bag to it over DDS at the recorded rate,
collects labels and overlays, and writes an overlay video, a contact sheet and a summary.
With ``--task panoptic`` the scenes carry instance ground truth, the node serves the tiny
panoptic model (or ``--model``) with ``task: panoptic``, its overlays show instances and the
summary gains panoptic quality (PQ, SQ, RQ; things and stuff).
"""

import argparse
import json
import os
from pathlib import Path
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

import cv2
from mask2former_ros.core.cityscapes import CITYSCAPES_CLASSES
from mask2former_ros.core.evaluation.metrics import ConfusionMatrix
from mask2former_ros.core.evaluation.panoptic_quality import PanopticQuality
from mask2former_ros.core.segmentation_task import thing_class_ids
from mask2former_ros.messages.image_conversion import image_to_rgb, stamp_ns
from mask2former_ros.offline.ground_truth import label_array
from mask2former_ros_fixtures.bag_player import BagPlayer
from mask2former_ros_fixtures.sample_bag import INSTANCES_GT_TOPIC, write_sample_bag
import numpy as np

TINY_MODEL_NOTE = (
    'The default model is a tiny Mask2Former (a few MB, shipped with the checkout) trained on '
    'the CPU on procedurally generated street scenes (road, sidewalk, building, vegetation, sky, '
    'person, car). It segments those synthetic scenes well and knows nothing about real '
    'images: it exists so that the demo and the tests run offline and prove that labels come '
    'out right. For real cameras use a real checkpoint, e.g. '
    'MODEL=facebook/mask2former-swin-large-cityscapes-semantic.')
CAMERA_TOPIC = '/camera/image_raw'
GT_TOPIC = '/camera/labels_gt'


def _node_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 100)))
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    profile = Path(__file__).resolve().parents[1] / 'config' / 'fastdds_large_images.xml'
    if profile.is_file():
        env.setdefault('FASTDDS_DEFAULT_PROFILES_FILE', str(profile))
    env['PYTHONUNBUFFERED'] = '1'
    return env


def _contact_sheet(pairs: list[tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    rows = [np.concatenate([rgb, over], axis=1) for rgb, over in pairs]
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))


def _panoptic_summary(quality: PanopticQuality, frames: int) -> dict:
    """Return the demo's panoptic numbers: PQ, SQ, RQ for all classes, things and stuff."""
    summary = quality.summary(CITYSCAPES_CLASSES)
    return {'frames_evaluated': frames,
            **{group: {key: round(summary[group][key], 4) for key in ('pq', 'sq', 'rq')}
               for group in ('all', 'things', 'stuff')},
            'per_class_pq': {name: round(row['pq'], 4)
                             for name, row in summary['per_class'].items()
                             if row['tp'] + row['fp'] + row['fn'] > 0}}


def run_demo(out: Path, model: str | None, frames: int, rate: float, height: int,
             width: int, task: str = 'semantic') -> dict:
    """Run the demo and return its summary."""
    out.mkdir(parents=True, exist_ok=True)
    os.environ.update(_node_env())
    panoptic = task == 'panoptic'
    if model is None:
        from mask2former_ros_fixtures.tiny_model import ensure_tiny_model
        model = str(ensure_tiny_model(task=task))
        print(f"demo: the tiny synthetic-scenes {'panoptic ' if panoptic else ''}model "
              f'shipped in {model}')
        model_note = TINY_MODEL_NOTE
    else:
        model_note = f'model: {model}'
    bag = out / 'sample_bag'
    if bag.exists():
        shutil.rmtree(bag)
    write_sample_bag(bag, frames=frames, height=height, width=width, rate_hz=rate,
                     storage='mcap', image_topic=CAMERA_TOPIC, compressed_topic=None,
                     gt_topic=GT_TOPIC, instances=panoptic)
    print(f'demo: wrote {frames} frames of {width}x{height} at {rate:g} Hz to {bag}')

    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    node_cmd = [shutil.which('segmentation_node')
                or str(Path(sys.executable).with_name('segmentation_node')), '--ros-args',
                '-p', f'model:={model}', '-p', f'task:={task}', '-r', f'image:={CAMERA_TOPIC}']
    node = subprocess.Popen(node_cmd, env=os.environ.copy())
    rclpy.init()
    peer = rclpy.create_node('demo_player')
    outputs: dict[str, dict[int, Image]] = {'labels': {}, 'overlay': {}}
    if panoptic:
        outputs['instances'] = {}
    received_at: dict[int, float] = {}
    sent_at: dict[int, float] = {}
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)

    def keep(kind: str):
        def callback(msg: Image) -> None:
            key = stamp_ns(msg.header)
            outputs[kind][key] = msg
            if kind == 'labels':
                received_at[key] = time.monotonic()
        return callback
    for kind in outputs:
        peer.create_subscription(Image, f'/segmentation/{kind}', keep(kind), qos)
    gt: dict[int, np.ndarray] = {}
    gt_instances: dict[int, np.ndarray] = {}

    def on_publish(topic: str, msg) -> None:
        key = stamp_ns(msg.header)
        if topic == GT_TOPIC:
            gt[key] = label_array(msg, topic)
        elif topic == INSTANCES_GT_TOPIC:
            gt_instances[key] = label_array(msg, topic)
        else:
            sent_at[key] = time.monotonic()
    player = BagPlayer(peer, bag, [CAMERA_TOPIC, GT_TOPIC]
                       + ([INSTANCES_GT_TOPIC] if panoptic else []))
    spin = threading.Thread(target=rclpy.spin, args=(peer,), daemon=True)
    spin.start()
    try:
        print('demo: waiting for segmentation_node to load the model and subscribe')
        deadline = time.monotonic() + 600
        while player.publishers[CAMERA_TOPIC][0].get_subscription_count() == 0:
            if node.poll() is not None:
                raise SystemExit(f'demo: segmentation_node exited with code {node.returncode}')
            if time.monotonic() > deadline:
                raise SystemExit('demo: segmentation_node did not subscribe within 600 s')
            time.sleep(0.1)
        time.sleep(0.5)
        started = time.monotonic()
        player.play(rate=1.0, on_publish=on_publish)
        wait_end = time.monotonic() + 30
        while time.monotonic() < wait_end and not all(set(sent_at) <= set(kept)
                                                      for kept in outputs.values()):
            if received_at and time.monotonic() - max(received_at.values()) > 5:
                break
            time.sleep(0.1)
        elapsed = time.monotonic() - started
    finally:
        node.send_signal(signal.SIGINT)
        try:
            node.wait(10)
        except subprocess.TimeoutExpired:
            node.kill()
        peer.destroy_node()
        rclpy.try_shutdown()
    labels = outputs['labels']
    cm = ConfusionMatrix(19)
    for key, msg in labels.items():
        if key in gt:
            cm.update(gt[key], np.frombuffer(bytes(msg.data), np.uint8).reshape(
                msg.height, msg.width))
    quality = PanopticQuality(len(CITYSCAPES_CLASSES),
                              thing_class_ids(CITYSCAPES_CLASSES, 'panoptic'))
    evaluated = 0
    for key, msg in outputs.get('instances', {}).items():
        if key in gt and key in gt_instances and key in labels:
            quality.add(label_array(labels[key], 'labels'), label_array(msg, 'instances'),
                        gt[key], gt_instances[key])
            evaluated += 1
    latencies = sorted((received_at[k] - sent_at[k]) * 1e3 for k in labels if k in sent_at)
    overlays = [image_to_rgb(outputs['overlay'][k]) for k in sorted(outputs['overlay'])]
    if overlays:
        writer = cv2.VideoWriter(str(out / 'overlay.mp4'), cv2.VideoWriter_fourcc(*'mp4v'),
                                 max(rate, 1.0), (width, height))
        for frame in overlays:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        writer.release()
        cv2.imwrite(str(out / 'overlay_last.png'), cv2.cvtColor(overlays[-1], cv2.COLOR_RGB2BGR))
        from rosbags.highlevel import AnyReader  # inputs for the contact sheet
        pairs = []
        with AnyReader([bag]) as reader:
            conns = [c for c in reader.connections if c.topic == CAMERA_TOPIC]
            wanted = set(sorted(outputs['overlay'])[::max(1, len(overlays) // 4)][:4])
            for conn, _, raw in reader.messages(connections=conns):
                msg = reader.deserialize(raw, conn.msgtype)
                key = stamp_ns(msg.header)
                if key in wanted:
                    pairs.append((image_to_rgb(msg), image_to_rgb(outputs['overlay'][key])))
        _contact_sheet(pairs, out / 'contact_sheet.png')
    summary = {
        'model': model, 'note': model_note, 'bag': str(bag), 'frames_published': len(sent_at),
        'label_images_received': len(labels), 'overlays_received': len(overlays),
        'frames_dropped_by_node': len(sent_at) - len(labels), 'seconds': round(elapsed, 2),
        'output_fps': round(len(labels) / elapsed, 2) if elapsed else 0.0,
        'latency_ms_p50': round(float(np.percentile(latencies, 50)), 1) if latencies else None,
        'latency_ms_p95': round(float(np.percentile(latencies, 95)), 1) if latencies else None,
        'miou_vs_ground_truth': round(cm.miou(), 4) if labels else None,
        'pixel_accuracy': round(cm.pixel_accuracy(), 4) if labels else None,
        'task': task,
        **({'panoptic_vs_ground_truth': _panoptic_summary(quality, evaluated) if evaluated
            else None} if panoptic else {}),
        'outputs': {name: str(out / name) for name in
                    ('overlay.mp4', 'overlay_last.png', 'contact_sheet.png', 'summary.json')},
    }
    (out / 'summary.json').write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: list[str] | None = None) -> int:
    """Run the demo from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--out', type=Path, default=Path('demo_output'))
    parser.add_argument('--model', help='hub id or directory (default: tiny synthetic model)')
    parser.add_argument('--frames', type=int, default=40)
    parser.add_argument('--rate', type=float, default=5.0, help='camera rate in Hz')
    parser.add_argument('--size', default='480x640', help='HxW of the sample frames')
    parser.add_argument('--task', choices=('semantic', 'panoptic'), default='semantic',
                        help='panoptic: instance ground truth, the tiny panoptic model (unless '
                             '--model), the node with task panoptic, PQ in the summary')
    args = parser.parse_args(argv)
    height, width = (int(v) for v in args.size.lower().split('x'))
    summary = run_demo(args.out, args.model, args.frames, args.rate, height, width, args.task)
    print(json.dumps(summary, indent=2))
    if summary['label_images_received'] == 0:
        print('demo: FAILED, no labels came out of the node', file=sys.stderr)
        return 1
    panoptic = summary.get('panoptic_vs_ground_truth')
    pq = (f", PQ {panoptic['all']['pq']} (things {panoptic['things']['pq']})" if panoptic
          else '')
    print(f"\ndemo: {summary['label_images_received']} of {summary['frames_published']} frames "
          f"segmented, mIoU vs ground truth {summary['miou_vs_ground_truth']}{pq}; results in "
          f'{args.out}/\n{summary["note"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
