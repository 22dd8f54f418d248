#!/usr/bin/env bash
# Runs the test suite against the colcon install space (not the source tree), like a ROS user's
# `colcon test` would: builds first if needed (idempotent, seconds when nothing changed).
# Usage: scripts/test.sh [pytest args...]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
mkdir -p log
bash scripts/setup.sh > log/setup-for-tests.log 2>&1 || { cat log/setup-for-tests.log; exit 1; }
# shellcheck disable=SC1091
source scripts/env.sh
export EVS_REQUIRE_INSTALLED=1
# Plain `pytest` (not `python -m pytest`) so the repository root is not put on sys.path and
# `import evs_ros` resolves to install/.
exec pytest "$@"
