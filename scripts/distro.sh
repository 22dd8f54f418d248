# Sourced by setup.sh, env.sh, test.sh and the Makefile: which ROS 2 wheel set, and its folders.
#   EVS_ROS_DISTRO=kilted|jazzy   (default: $ROS_DISTRO when a distribution is sourced, else kilted)
# Each distribution has its own venv, colcon build, install and log folders so they sit side by
# side: Kilted keeps the plain names (.venv build install log), Jazzy gets .venv-jazzy
# build-jazzy install-jazzy log-jazzy. Sets EVS_ROS_DISTRO, EVS_VENV, EVS_BUILD, EVS_INSTALL and
# EVS_LOG (absolute paths); returns 1 with one line for a distribution without a wheel set.
evs_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EVS_ROS_DISTRO="${EVS_ROS_DISTRO:-${ROS_DISTRO:-kilted}}"
case "$EVS_ROS_DISTRO" in
  kilted) evs_suffix='' ;;
  jazzy) evs_suffix='-jazzy' ;;
  *)
    echo "EVS_ROS_DISTRO=$EVS_ROS_DISTRO: PyPI has ROS 2 wheel sets for kilted and jazzy only;" \
      "with a ROS install of $EVS_ROS_DISTRO, build evs_ros in your workspace (README)" >&2
    unset evs_repo
    return 1 ;;
esac
export EVS_ROS_DISTRO
export EVS_VENV="$evs_repo/.venv$evs_suffix"
export EVS_BUILD="$evs_repo/build$evs_suffix"
export EVS_INSTALL="$evs_repo/install$evs_suffix"
export EVS_LOG="$evs_repo/log$evs_suffix"
unset evs_repo evs_suffix
