# Source this file to use the colcon install of evs_ros with the repository's venv:
#   source scripts/env.sh                        Kilted (.venv + install/)
#   EVS_ROS_DISTRO=jazzy source scripts/env.sh   Jazzy (.venv-jazzy + install-jazzy/)
# It activates the distribution's venv, sources its install/setup.bash and selects FastDDS with
# the shipped profile (a large shared-memory segment so that big images survive best-effort QoS).
# One distribution per shell: open a new shell to switch.
# shellcheck source=distro.sh
source "$(dirname "${BASH_SOURCE[0]}")/distro.sh" || return 1
if [ -n "${EVS_ENV_DISTRO:-}" ] && [ "$EVS_ENV_DISTRO" != "$EVS_ROS_DISTRO" ]; then
  echo "scripts/env.sh: this shell already uses $EVS_ENV_DISTRO; open a new shell for" \
    "$EVS_ROS_DISTRO" >&2
  return 1
fi
export EVS_ENV_DISTRO="$EVS_ROS_DISTRO"
# shellcheck disable=SC1091
source "$EVS_VENV/bin/activate"
export AMENT_PREFIX_PATH="$EVS_VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
# install/setup.bash reads unset variables: relax `set -u` while sourcing it.
case $- in *u*) _evs_nounset=1; set +u;; *) _evs_nounset=0;; esac
# shellcheck disable=SC1091
source "$EVS_INSTALL/setup.bash"
[ "$_evs_nounset" = 1 ] && set -u
unset _evs_nounset
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$EVS_INSTALL/evs_ros/share/evs_ros/config/fastdds_large_images.xml}"
