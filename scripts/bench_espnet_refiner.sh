#!/usr/bin/env bash
# What the shipped Refiner of ESPNetv2 s=2.0 recovers on footage it was not trained on
# (issue 17, docs/benchmarks.md section 12b): R on vs R off in one run per data set, ESPNetv2 as
# the keyframe network, `model.refiner: default` (which picks refiner_espnetv2_s2_cityscapes.pt
# by the network's sha256). Pairs: EVS02/EVS03 (S=2) and EVS06/EVS07 (S=5).
#   camvid      CamVid val drive 0016E5, 101 labelled frames, 640x480, mIoU in CamVid's 11 classes
#   cityscapes  the two Cityscapes val snippets, GT on frame 19, 1024x512, 19 classes
#   bikes       bikes.mp4's held-out shot (frames 187..241, scripts/split_bikes_clip.py), 904x384,
#               agreement with per-frame ESPNetv2 (mIoU of EVS's labels against per-frame's)
#   clips       the Cityscapes snippets as unlabelled clips (agreement on all 30 frames), 1024x512
# Real data from ../shared/real (REAL=DIR): test data, never training data.
# Usage: scripts/bench_espnet_refiner.sh [camvid|cityscapes|bikes|clips|all] [OUT_DIR]
#   (default: "camvid cityscapes bikes", docs/bench/espnet_refiner). ESPNET=SPEC names the network.
# About 20 minutes for the default three on the 2-core reference VM (shared, see section 12b).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
steps="${1:-camvid cityscapes bikes}"
[ "$steps" = all ] && steps="camvid cityscapes bikes clips"
out="${2:-$repo/docs/bench/espnet_refiner}"
real="$(cd "${REAL:-$repo/../shared/real}" && pwd -P)"
espnet="${ESPNET:-espnet:$real/weights/espnetv2_s_2.0_city_1024x512.pth}"
# shellcheck source=distro.sh
source "$repo/scripts/distro.sh"
# shellcheck disable=SC1091
source "$EVS_VENV/bin/activate"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
evs() { python -m evs_ros.tools.cli "$@"; }
mkdir -p "$out"
common=(--backend "$espnet" --refiner default --device cpu
        --operating-points EVS02 EVS03 EVS06 EVS07)
for step in $steps; do
  case "$step" in
    camvid) evs eval --data "camvid:$real/camvid" --split val --resolution 640x480 \
              "${common[@]}" --json "$out/camvid.json" ;;
    cityscapes) evs eval --data "video:$real/cityscapes_snippets" --resolution 1024x512 \
              "${common[@]}" --json "$out/cityscapes.json" ;;
    bikes) read -r _ heldout < <(python "$repo/scripts/split_bikes_clip.py" "$repo/data_cache")
           evs eval --data "clips:$heldout" --resolution 904x384 \
              "${common[@]}" --json "$out/bikes_heldout.json" ;;
    clips) evs eval --data "clips:$real/cityscapes_snippets" --resolution 1024x512 \
              "${common[@]}" --json "$out/cityscapes_clips.json" ;;
    *) echo "unknown step $step (camvid|cityscapes|bikes|clips|all)" >&2; exit 2 ;;
  esac
done
