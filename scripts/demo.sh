#!/usr/bin/env bash
# Install everything and run the demo: the real segmentation node on a sample camera stream.
#   MODEL=<hub id or dir>  use a real checkpoint instead of the tiny synthetic-scenes model.
#   OUT=<dir>              where to write results (default ./demo_output).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m mask2former_ros_fixtures.demo --out "${OUT:-demo_output}" ${MODEL:+--model "$MODEL"} "$@"
