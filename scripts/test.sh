#!/usr/bin/env bash
# Install everything (scripts/setup.sh) and run the whole test suite. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export HF_HUB_OFFLINE=1
# Two workers, each test module on one of them (its module fixtures: one node, one model):
# the DDS, launch and subprocess tests leave a core idle while they wait, which the other
# worker uses. PYTEST_WORKERS=0 runs in this process (what a debugger wants).
exec .venv/bin/python -m pytest test -n "${PYTEST_WORKERS:-2}" --dist loadfile "$@"
