#!/usr/bin/env bash
# Where EVS pays most (issue 10, docs/benchmarks.md section 5): SegFormer-B0 and B2 with random
# weights and the published shapes next to the shipped ICNet, at 1024x512 and 2048x1024.
#   1. writes random SegFormer-B0/B2 directories (save_pretrained layout, Cityscapes labels, a
#      RANDOM_WEIGHTS.txt marker) and a random residual Refiner for each into $CACHE;
#   2. `evs bench models`: ms per frame of each network and of its Refiner, 1 and 2 threads;
#   3. `evs bench --backend hf:DIR`: paper Tables 1-2 (operating points vs per-frame, one torch
#      thread), all presets at 1024x512, Table 1's presets plus EVS10/EVS14/ADAPTIVE at 2048x1024
#      (SegFormer-B2 takes ~40 s per frame there on one core); the shipped ICNet runs the same
#      settings for comparison. Accuracy columns mean nothing (random weights; bench.md says so).
# Estimated on the 2-core reference VM, run alone: step 2 ~10 min; step 3 at 1024x512 with
# 5 snippets: ICNet ~3 min, B0 ~12 min, B2 ~45 min; at 2048x1024 with 3 snippets: ICNet ~3 min,
# B0 ~12 min, B2 ~75 min. About 2.7 hours in all.
# Usage: scripts/bench_networks.sh [models|ops|all] [OUT_DIR]   (default: all docs/bench/networks)
# Knobs (environment): SIZE_SMALL=1024x512 SIZE_LARGE=2048x1024 SNIPPETS_SMALL=5 SNIPPETS_LARGE=3
#   REPEATS=3 THREADS=1,2 VARIANTS="b0 b2" CACHE=$XDG_CACHE_HOME/evs_ros/bench_networks
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
step="${1:-all}"
out="${2:-$repo/docs/bench/networks}"
cache="${CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/evs_ros/bench_networks}"
size_small="${SIZE_SMALL:-1024x512}"
size_large="${SIZE_LARGE:-2048x1024}"
variants="${VARIANTS:-b0 b2}"
# shellcheck source=distro.sh
source "$repo/scripts/distro.sh"  # the venv of EVS_ROS_DISTRO (default kilted: .venv)
# shellcheck disable=SC1091
source "$EVS_VENV/bin/activate"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
evs() { python -m evs_ros.tools.cli "$@"; }
mkdir -p "$out" "$cache"

# 1. Random networks with real shapes (once; nothing is downloaded).
# shellcheck disable=SC2086
python - "$cache" $variants <<'PY'
import os, sys
from evs_ros.models.checkpoint import CITYSCAPES_CLASSES, save_checkpoint
from evs_ros.models.hf_random import SEGFORMER_SHAPES, save_random_segformer
from evs_ros.models.refiner import RefinerNet
cache, variants = sys.argv[1], sys.argv[2:]
for variant in variants:
    directory = os.path.join(cache, f'segformer-{variant}-random')
    if not os.path.isfile(os.path.join(directory, 'config.json')):
        save_random_segformer(variant, directory)
    refiner = os.path.join(cache, f'refiner-segformer-{variant}-random.pt')
    if not os.path.isfile(refiner):
        config = {'num_classes': 19, 'width_mult': 0.5, 'residual': True,
                  'feature_channels': SEGFORMER_SHAPES[variant]['hidden_sizes'][0]}
        save_checkpoint(refiner, 'refiner', config, RefinerNet(**config),
                        class_names=CITYSCAPES_CLASSES, meta={'random': True})
    print(directory, refiner)
PY

# 2. ms per frame of each network and its Refiner.
if [ "$step" = models ] || [ "$step" = all ]; then
  # shellcheck disable=SC2086
  networks="icnet$(printf ',segformer-%s' $variants)"
  evs bench models --out "$out/models.json" --networks "$networks" --widths 1.0,0.5 \
    --sizes "$size_small,$size_large" --threads "${THREADS:-1,2}" --repeats "${REPEATS:-3}"
fi

# 3. Tables 1-2 per network and size.
bench_ops() {  # NAME BACKEND REFINER SIZE SNIPPETS [OPERATING POINTS...]
  local name="$1" backend="$2" refiner="$3" size="$4" snippets="$5"
  shift 5
  local ops=()
  [ $# -eq 0 ] || ops=(--operating-points "$@")
  evs bench --out "$out/ops_${name}_${size}" --backend "$backend" --refiner "$refiner" \
    --resolution "$size" --synth-snippets "$snippets" --figure-propagations 0 \
    --inference-threads 1 ${ops[@]+"${ops[@]}"}
}
if [ "$step" = ops ] || [ "$step" = all ]; then
  large_ops=(EVS02 EVS03 EVS06 EVS07 EVS10 EVS14 ADAPTIVE)
  bench_ops icnet icnet:default default "$size_small" "${SNIPPETS_SMALL:-5}"
  bench_ops icnet icnet:default default "$size_large" "${SNIPPETS_LARGE:-3}" "${large_ops[@]}"
  for variant in $variants; do
    backend="hf:$cache/segformer-$variant-random"
    refiner="$cache/refiner-segformer-$variant-random.pt"
    bench_ops "segformer-$variant" "$backend" "$refiner" "$size_small" "${SNIPPETS_SMALL:-5}"
    bench_ops "segformer-$variant" "$backend" "$refiner" "$size_large" "${SNIPPETS_LARGE:-3}" \
      "${large_ops[@]}"
  done
fi
echo "wrote $out (models.json/.md, ops_*/bench.md)"
