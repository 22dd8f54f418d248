#!/usr/bin/env bash
# `make lint`: flake8 with the ROS conventions (99 columns, single quotes, pep257 docstrings; the
# configuration is setup.cfg's [flake8]) and a Python 3.10 compile of every module, so the code
# stays importable on Humble (Ubuntu 22.04's Python). Runs in the distribution's venv.
# Usage: scripts/lint.sh   (EVS_PY310=/path/to/python3.10 to name the interpreter)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
# shellcheck source=distro.sh
source scripts/distro.sh
[ -x "$EVS_VENV/bin/flake8" ] || bash scripts/setup.sh
# shellcheck disable=SC1091
source "$EVS_VENV/bin/activate"
python_files=(evs_ros test launch setup.py scripts/evs scripts/evs_node scripts/evs_container
              scripts/evs_container_mt scripts/evs_lifecycle_node)
flake8 "${python_files[@]}"
echo "flake8: no problems"

# A Python 3.10: $EVS_PY310, python3.10 on PATH, or pyenv's.
py310="${EVS_PY310:-}"
if [ -z "$py310" ]; then
  for candidate in python3.10 "$(pyenv root 2>/dev/null)"/versions/3.10*/bin/python3.10; do
    if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
      py310="$candidate"
      break
    fi
  done
fi
if [ -z "$py310" ]; then
  echo 'lint: no Python 3.10 found (set EVS_PY310): the Humble compile check cannot run' >&2
  exit 1
fi
# compile() without writing .pyc files: syntax and compile-time errors under 3.10's grammar.
"$py310" - "${python_files[@]}" <<'PY'
import pathlib
import sys

paths = []
for name in sys.argv[1:]:
    path = pathlib.Path(name)
    paths += sorted(path.rglob('*.py')) if path.is_dir() else [path]
for path in paths:
    compile(path.read_text(encoding='utf-8'), str(path), 'exec', dont_inherit=True)
print(f'python{sys.version_info[0]}.{sys.version_info[1]}: {len(paths)} files compile')
PY
