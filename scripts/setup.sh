#!/usr/bin/env bash
# Create ./.venv and install mask2former_ros with everything it needs (idempotent).
#   TORCH_SPEC   pip requirement for torch (default: the CPU build torch==2.13.0).
#                GPU users: TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
# torch first and pinned, so that nothing below pulls a multi-GB CUDA build.
# shellcheck disable=SC2086
"${pip[@]}" ${TORCH_SPEC:-torch==2.13.0}
"${pip[@]}" -r requirements.txt
# TrackEval (segment_bag --gt-track-ids) without its dependencies: its metadata requires
# opencv-python, whose cv2 would replace opencv-python-headless's; the metrics need only numpy
# and scipy.
"${pip[@]}" --no-deps 'trackeval==1.3.0'
# The ROS 2 launch stack (launch, launch_ros, launch_testing, the ros2 CLI) for the launch tests.
# PyPI has no wheels of it: they come from ROS_WHEELS_DIR (default: shared/ros-wheels beside the
# checkout). On a ROS machine (apt) they come with ROS instead; without either, the launch tests
# are skipped and say why. Installed after requirements.txt, whose pytest pin (<9.1) they need.
ros_wheels=${ROS_WHEELS_DIR:-$PWD/../shared/ros-wheels}
if ls "$ros_wheels"/ros_launch_testing-*.whl >/dev/null 2>&1; then
  "${pip[@]}" --find-links "$ros_wheels" 'pytest>=7,<9.1' lark-parser \
    ros-launch ros-launch-xml ros-launch-yaml ros-launch-ros ros-launch-testing \
    ros-launch-testing-ros ros-ros2cli ros-ros2launch ros-ros2pkg ros-ros2run ros-ros2node \
    ros-ros2service ros-ros2topic ros-ros2param ros-ros2lifecycle ros-rosidl-runtime-py
elif ! .venv/bin/python -c 'import launch_testing, launch_ros' 2>/dev/null; then
  echo "setup: no ROS launch wheels in $ros_wheels (set ROS_WHEELS_DIR); the launch tests will be skipped" >&2
fi
# vision_msgs (the node's LabelInfo legend) and cv_bridge (what the image conversion tests compare
# against): ROS message/C++ packages a ROS user gets from apt, not on PyPI; wheels built from their
# sources come from ROS_WHEELS_DIR (vision_msgs needs geometry_msgs). cv_bridge links Debian's
# OpenCV 4.6 (installed below when root). Without them the LabelInfo and cv_bridge tests are skipped.
if ls "$ros_wheels"/ros_vision_msgs-*.whl "$ros_wheels"/ros_cv_bridge-*.whl >/dev/null 2>&1; then
  "${pip[@]}" --find-links "$ros_wheels" ros-geometry-msgs ros-vision-msgs ros-cv-bridge
elif ! .venv/bin/python -c 'import vision_msgs, cv_bridge' 2>/dev/null; then
  echo "setup: no vision_msgs/cv_bridge wheels in $ros_wheels (set ROS_WHEELS_DIR); the LabelInfo and cv_bridge tests will be skipped" >&2
fi
"${pip[@]}" --no-deps -e .
# The test/demo fixtures (mask2former_ros_fixtures: tiny model training, synthetic scenes, sample
# bags, the demo) are not part of the installed package; this venv finds them in the checkout.
.venv/bin/python -c 'import sys, sysconfig; open(sysconfig.get_paths()["purelib"] + "/mask2former_ros_checkout.pth", "w").write(sys.argv[1] + "\n")' "$PWD"
# xmllint for the package.xml lint test (Debian's libxml2-utils), when we may install it.
if ! command -v xmllint >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && apt-get install -y -qq libxml2-utils) >/dev/null 2>&1 \
    || echo "setup: could not install libxml2-utils; the xmllint test will be skipped" >&2
fi
# Debian's OpenCV 4.6 runtime libraries that the cv_bridge wheel links against (not bundled in it).
opencv_debs=(libopencv-core406 libopencv-imgproc406 libopencv-imgcodecs406)
if .venv/bin/python -c 'import cv_bridge' 2>/dev/null \
    && ! .venv/bin/python -c 'import cv_bridge.boost.cv_bridge_boost' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${opencv_debs[@]}") \
      >/dev/null 2>&1 || echo "setup: could not install ${opencv_debs[*]}; the cv_bridge tests will be skipped" >&2
  else
    echo "setup: no ${opencv_debs[*]} (installing them needs root and apt-get); the cv_bridge tests will be skipped" >&2
  fi
fi
# Headless Chromium (Debian's chromium) for the HTML report's browser test, when we may install it.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
      >/dev/null 2>&1 || echo "setup: could not install chromium; the report browser tests will be skipped" >&2
  else
    echo "setup: no chromium (installing it needs root and apt-get); the report browser tests will be skipped" >&2
  fi
fi
echo "setup: ready ($(.venv/bin/python -c 'import torch, transformers, rclpy; print("torch", torch.__version__, "| transformers", transformers.__version__)'))"
