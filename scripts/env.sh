# Source this file to use the colcon install of evs_ros with the repository's venv:
#   source scripts/env.sh
# It activates .venv, sources install/setup.bash and selects FastDDS with the shipped profile
# (a large shared-memory segment so that big images survive best-effort QoS).
_evs_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$_evs_repo/.venv/bin/activate"
export AMENT_PREFIX_PATH="$_evs_repo/.venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
# install/setup.bash reads unset variables: relax `set -u` while sourcing it.
case $- in *u*) _evs_nounset=1; set +u;; *) _evs_nounset=0;; esac
# shellcheck disable=SC1091
source "$_evs_repo/install/setup.bash"
[ "$_evs_nounset" = 1 ] && set -u
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$_evs_repo/install/evs_ros/share/evs_ros/config/fastdds_large_images.xml}"
unset _evs_repo _evs_nounset
