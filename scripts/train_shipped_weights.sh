#!/usr/bin/env bash
# Reproduces the weights shipped in evs_ros/models/weights/ (CPU is enough; CUDA is used if present):
#   1. renders the synthetic training and validation sets (Cityscapes layout),
#   2. trains the reduced-width ICNet (width 0.5) with cascade label guidance,
#   3. trains the Refiner on (keyframe, later frame) pairs with P and F propagated by the pipeline's
#      own steps, at the data's full 1024x512, its loss weighted by IAM's mask (residual head).
# Usage: scripts/train_shipped_weights.sh [DATA_DIR] [OUT_DIR]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data="${1:-$repo/data_cache/synth}"
out="${2:-$repo/evs_ros/models/weights}"
# shellcheck source=distro.sh
source "$repo/scripts/distro.sh"  # the venv of EVS_ROS_DISTRO (default kilted: .venv)
# shellcheck disable=SC1091
source "$EVS_VENV/bin/activate"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
evs() { python -m evs_ros.tools.cli "$@"; }
mkdir -p "$out"
[ -d "$data/leftImg8bit_sequence/train" ] || \
  evs synth --out "$data" --split train --snippets 80 --frames 12 --width 1024 --height 512 --seed 0
[ -d "$data/leftImg8bit_sequence/val" ] || \
  evs synth --out "$data" --split val --snippets 8 --frames 12 --width 1024 --height 512 --seed 0
# ICNet: 30 epochs, then a warm restart of the poly schedule to 60 epochs (--resume keeps the
# weights and optimizer; the learning rate jumps back to the 60-epoch schedule's midpoint). This
# is how the shipped weights were made: val mIoU 46.0 % after 30 epochs, 51.4 % after 60.
icnet_args=(--data "$data" --out "$out/icnet_synth.pt" --width-mult 0.5 --batch 8 --crop 257x513
            --lr 1e-3 --val-split val --val-limit 24 --seed 0)
evs train icnet "${icnet_args[@]}" --epochs 30 ${RESUME:+--resume}
evs train icnet "${icnet_args[@]}" --epochs 60 --resume
evs train refiner --data "$data" --out "$out/refiner_synth.pt" --icnet "$out/icnet_synth.pt" \
  --width-mult 0.5 --epochs "${REFINER_EPOCHS:-5}" --batch 4 --crop 512x1024 --max-gap 5 \
  --outside-weight 0.1 --seed 0
# Ship weights only, in fp16 (a few MB): the full checkpoints (with optimizer state) stay in $data.
python - "$out" "$data" <<'PY'
import shutil, sys
from evs_ros.models.checkpoint import strip_for_release
out, data = sys.argv[1:]
for name in ('icnet_synth', 'refiner_synth'):
    full = f'{data}/{name}_full.pt'
    shutil.copy(f'{out}/{name}.pt', full)
    print(name, strip_for_release(full, f'{out}/{name}.pt'))
PY
