#!/usr/bin/env bash
# Reproduces docs/benchmarks.md section 12: real networks on real labelled street frames and EVS
# on real labelled video (issue 17). Needs the real test data (../shared/real, or EVS_REAL_DATA;
# its README has provenance and licences: test data, never shipped) and the set-up venv.
#   1. per-frame accuracy of every real network and of the shipped one: CamVid val (101 frames of
#      the 0016E5 drive, 11 classes through the Cityscapes trainId table) and the two single
#      labelled Cityscapes val frames,
#   2. the paper's Table 1 and Figure 6 on the CamVid drive (a keyframe every S frames, every
#      frame scored), ESPNetv2 s=2.0 as keyframe network against per-frame ESPNetv2 in one run,
#   3. the two Cityscapes val snippets at 2048x1024: frame-19 mIoU and agreement with per-frame
#      on every frame.
# Writes JSON + markdown (+ plots) per step under OUT (default out/real).
# Usage: scripts/bench_real.sh [OUT]    STEPS="1 2 3" picks steps; OPS="..." the operating points
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$(realpath -m "${1:-$repo/out/real}")"
real="$(realpath "${EVS_REAL_DATA:-$repo/../shared/real}")"
steps="${STEPS:-1 2 3}"
ops="${OPS:-EVS03 EVS05 EVS07 EVS08 EVS09 EVS10 EVS11 EVS12 EVS13 EVS14}"
cd "$repo"
# shellcheck disable=SC1091
source scripts/env.sh >/dev/null
mkdir -p "$out"
weights="$real/weights"
s2="espnet:$weights/espnetv2_s_2.0_city_1024x512.pth"
s1="espnet:$weights/espnetv2_s_1.0_city_1024x512.pth"
deeplab="tflite:$weights/deeplab_mobilenet_edgetpu_slim_cityscapes_quant.tflite"
networks=("espnetv2-s2 $s2" "espnetv2-s1 $s1" "deeplab-edgetpu $deeplab" "icnet-synthetic icnet:default")
frames="$(mktemp -d)"  # one images: folder per labelled Cityscapes val frame
trap 'rm -rf "$frames"' EXIT
for frame in frankfurt_000001_058914 frankfurt_000000_000294; do
  mkdir -p "$frames/$frame"
  cp "$real/cityscapes/$frame"_* "$frames/$frame/"
done
say() { printf '\033[1m[bench_real]\033[0m %s\n' "$*"; }
for step in $steps; do
  case "$step" in
    1)
      for network in "${networks[@]}"; do
        read -r name spec <<< "$network"
        say "per-frame $name on CamVid val and the Cityscapes frames"
        evs eval --data "camvid:$real/camvid" --split val --backend "$spec" --refiner '' \
          --operating-points PERFRAME --json "$out/perframe_camvid_$name.json"
        for frame in "$frames"/*; do
          evs eval --data "images:$frame" --backend "$spec" --refiner '' \
            --operating-points PERFRAME --json "$out/perframe_${frame##*/}_$name.json"
        done
      done
      ;;
    2)
      say "Table 1 + Figure 6 on the CamVid drive: $ops vs per-frame ESPNetv2 s=2.0"
      # shellcheck disable=SC2086
      evs eval --data "camvid:$real/camvid" --split val --backend "$s2" --refiner '' \
        --operating-points $ops --figures 10 --json "$out/table1_camvid.json"
      ;;
    3)
      say "Cityscapes snippets at 2048x1024: frame-19 mIoU and agreement on every frame"
      evs eval --data "video:$real/cityscapes_snippets" --resolution 2048x1024 --backend "$s2" \
        --refiner '' --operating-points EVS03 EVS05 EVS07 EVS10 \
        --json "$out/cityscapes_snippets_miou.json"
      evs eval --data "clips:$real/cityscapes_snippets" --resolution 2048x1024 --backend "$s2" \
        --refiner '' --operating-points EVS03 EVS05 EVS07 EVS10 \
        --json "$out/cityscapes_snippets_agreement.json"
      ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
  esac
done
say "results in $out"
