#!/usr/bin/env bash
# Runs the test suite against the colcon install space (not the source tree), like a ROS user's
# `colcon test` would: builds first if needed (idempotent, seconds when nothing changed).
# Usage: scripts/test.sh [pytest args...]
#        EVS_ROS_DISTRO=jazzy scripts/test.sh [...]   against the Jazzy wheel set (scripts/distro.sh)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
# shellcheck source=distro.sh
source scripts/distro.sh
mkdir -p log
setup_log="log/setup-for-tests-$EVS_ROS_DISTRO.log"
bash scripts/setup.sh > "$setup_log" 2>&1 || { cat "$setup_log"; exit 1; }
# shellcheck disable=SC1091
source scripts/env.sh
export EVS_REQUIRE_INSTALLED=1
echo "evs_ros tests on ROS 2 $EVS_ROS_DISTRO ($(python -c 'import sys; print(sys.version.split()[0])'))"
# Plain `pytest` (not `python -m pytest`) so the repository root is not put on sys.path and
# `import evs_ros` resolves to the install space.
exec pytest "$@"
