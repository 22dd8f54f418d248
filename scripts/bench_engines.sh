#!/usr/bin/env bash
# Every figure of docs/benchmarks.md section 13 (engines, issue 18), including the reruns of
# sections 2, 6, 9 and 10 with model.engine: auto (all under docs/bench/engines/; the torch
# figures of those sections stay as they are), in one script. Run it ALONE on the machine (ratios are
# measured within one run, but a second busy core distorts the runtime figures):
#   data     render the held-out synthetic test set (data_cache/synth_2048, 10 snippets at
#            2048x1024, once: the first 10 of section 8's 16), int8 calibration frames from the TRAIN split (data_cache/
#            synth_calib), random SegFormer-B0/B2 and ESPNetv2-s2 checkpoints with Refiners
#            (speed only) in $CACHE;
#   models   evs bench models: ICNet 1.0/0.5/0.25, SegFormer-B0, ESPNetv2-s2 (and SegFormer-B2)
#            with their Refiners, 1024x512 and 2048x1024, 1 and 2 threads, engines torch,
#            openvino, onnxruntime, auto, static vs dynamic graphs, fp32 and bf16
#            -> engines/models*.json (section 13; section 2's networks per engine);
#   networks evs bench per network at 1024x512 on auto vs per-frame torch (section 6);
#   runtime  evs bench, every operating point, 10 snippets at 2048x1024, engine auto, the
#            per-frame baseline on the same engine and on torch eager (section 9);
#   threads  the runtime's thread split: inference worker 1 or 2 threads, flow 1 or 2
#            (section 9; network-bound and flow-bound points, 4 snippets);
#   cameras  evs bench cameras: EVS05 (target: 2 cameras; also with bf16), EVS14, ADAPTIVE at
#            D 0.5 (section 10);
#   int8     model.precision int8 vs fp32 on OpenVINO: speed and mIoU on the synthetic test set
#            (calibrated on the train split) and, when ../shared/real is there, ESPNetv2-s2 on
#            CamVid val calibrated on bikes.mp4 (section 13);
#   summary  docs/bench/engines/summary.md: the tables of section 13 from the JSON above.
# Estimated on the 2-core reference VM, run alone: data 6 min, models 35 min, networks 25 min,
# runtime 20 min, threads 15 min, cameras 15 min, int8 10 min: about 2 h in all.
# Usage: scripts/bench_engines.sh [STEP ...]     (default: all steps in the order above)
# Knobs (environment): OUT=docs/bench CACHE=$XDG_CACHE_HOME/evs_ros/bench_networks
#   REPEATS=5 SNIPPETS=10 REAL=../shared/real
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
out="${OUT:-$repo/docs/bench}"
engines_out="$out/engines"
cache="${CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/evs_ros/bench_networks}"
real="${REAL:-$repo/../shared/real}"
repeats="${REPEATS:-5}"
snippets="${SNIPPETS:-10}"
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(data models networks runtime threads cameras int8 summary)
# shellcheck disable=SC1091
source "$repo/.venv/bin/activate"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
evs() { python -m evs_ros.tools.cli "$@"; }
mkdir -p "$engines_out" "$cache"
data="data_cache/synth_2048"
started=$(date +%s)
log() { printf '\n\033[1m[bench_engines %s s]\033[0m %s\n' "$(( $(date +%s) - started ))" "$*"; }

step_data() {
  log "data: synthetic test set, calibration frames, random networks"
  local rendered
  rendered=$( (find "$data/leftImg8bit_sequence/test" -name '*.png' 2>/dev/null || true) | wc -l)
  if [ "$rendered" -lt $(( snippets * 30 )) ]; then  # (re)render what a killed render left
    rm -rf "$data"
    evs synth --out "$data" --split test --snippets "$snippets" --width 2048 --height 1024
  fi
  [ -d data_cache/synth_calib/gtFine/train ] || evs synth \
    --out data_cache/synth_calib --split train --snippets 4 --frames 8 --width 1024 --height 512
  python - "$cache" <<'PY'
import os, sys
import torch
from evs_ros.models.checkpoint import CITYSCAPES_CLASSES, save_checkpoint
from evs_ros.models.espnet import ESPNetv2
from evs_ros.models.hf_random import SEGFORMER_SHAPES, save_random_segformer
from evs_ros.models.refiner import RefinerNet
cache = sys.argv[1]
channels = {f'segformer-{v}': SEGFORMER_SHAPES[v]['hidden_sizes'][0] for v in ('b0', 'b2')}
for variant in ('b0', 'b2'):
    directory = os.path.join(cache, f'segformer-{variant}-random')
    if not os.path.isfile(os.path.join(directory, 'config.json')):
        save_random_segformer(variant, directory)
espnet = os.path.join(cache, 'espnetv2-s2-random.pth')
if not os.path.isfile(espnet):
    torch.manual_seed(0)
    torch.save(ESPNetv2(2.0, 20).state_dict(), espnet)
channels['espnet-s2'] = ESPNetv2(2.0, 20).feature_channels
for name, features in channels.items():
    refiner = os.path.join(cache, f'refiner-{name}-random.pt')
    if not os.path.isfile(refiner):
        config = {'num_classes': 19, 'width_mult': 0.5, 'residual': True,
                  'feature_channels': features}
        save_checkpoint(refiner, 'refiner', config, RefinerNet(**config),
                        class_names=CITYSCAPES_CLASSES, meta={'random': True})
print('random networks in', cache)
PY
}

step_models() {
  log "models: every network x engine x size x threads (section 13; section 2 = the torch rows)"
  # 'auto' is reported with the times of the engine it picks (not timed twice); precisions and
  # dynamic graphs in runs of their own: every session of a case stays in memory while the
  # engines are timed in turns (SegFormer-B0 at 2048x1024: about 2 GB each).
  evs bench models --out "$engines_out/models.json" \
    --networks icnet,segformer-b0,espnet-s2 --widths 1.0,0.5,0.25 \
    --sizes 1024x512,2048x1024 --threads 1,2 --repeats "$repeats" \
    --engines torch,openvino,onnxruntime,auto
  evs bench models --out "$engines_out/models_precision.json" \
    --networks icnet,segformer-b0,espnet-s2 --widths 1.0,0.5 --sizes 1024x512,2048x1024 \
    --threads 1,2 --repeats "$repeats" --engines openvino --precisions fp32,bf16
  evs bench models --out "$engines_out/models_dynamic.json" --networks segformer-b0 \
    --sizes 1024x512 --threads 1,2 --repeats "$repeats" --engines openvino,onnxruntime --dynamic
  evs bench models --out "$engines_out/models_segformer_b2.json" --networks segformer-b2 \
    --sizes 1024x512,2048x1024 --threads 1,2 --repeats 3 --engines torch,auto
}

bench_ops() {  # NAME BACKEND REFINER SIZE SNIPPETS [extra evs bench arguments...]
  local name="$1" backend="$2" refiner="$3" size="$4" count="$5"
  shift 5
  evs bench --out "$engines_out/networks/ops_${name}_${size}" --data "$data" --split test \
    --max-snippets "$count" --resolution "$size" --backend "$backend" --refiner "$refiner" \
    --figure-propagations 0 "$@"
}

step_networks() {
  log "networks: operating points per network at 1024x512, engine auto vs per-frame torch (section 6)"
  local ops=(--operating-points EVS03 EVS07 EVS10 EVS14)
  bench_ops icnet icnet:default default 1024x512 3 "${ops[@]}"
  bench_ops segformer-b0 "hf:$cache/segformer-b0-random" \
    "$cache/refiner-segformer-b0-random.pt" 1024x512 3 "${ops[@]}"
  bench_ops segformer-b2 "hf:$cache/segformer-b2-random" \
    "$cache/refiner-segformer-b2-random.pt" 1024x512 3 "${ops[@]}"
  bench_ops espnet-s2 "espnet:$cache/espnetv2-s2-random.pth" \
    "$cache/refiner-espnet-s2-random.pt" 1024x512 3 "${ops[@]}"
}

step_runtime() {
  log "runtime: every operating point at 2048x1024, engine auto (section 9)"
  evs bench --data "$data" --split test --max-snippets "$snippets" --figure-propagations 0 \
    --backend icnet:default --out "$engines_out/runtime_2048"
}

step_threads() {
  log "threads: the runtime's split between the flow and the inference worker (section 9)"
  local common=(--data "$data" --split test --max-snippets 4 --figure-propagations 0
                --backend icnet:default --no-torch-reference
                --operating-points EVS03 EVS05 EVS07 EVS10 EVS14 ADAPTIVE)
  for split in 1,1 2,1 1,2; do
    evs bench "${common[@]}" --inference-threads "${split%,*}" --flow-threads "${split#*,}" \
      --out "$engines_out/threads_inference${split%,*}_flow${split#*,}"
  done
}

step_cameras() {
  log "cameras: 2048x1024 at 17 Hz, engine auto (section 10)"
  local common=(--data "$data" --split test --clips 4 --set runtime.input_queue_size=2
                --seconds 10 --backend icnet:default)
  evs bench cameras "${common[@]}" --operating-point EVS05 --max-cameras 4 \
    --out "$engines_out/cameras_evs05"
  evs bench cameras "${common[@]}" --operating-point EVS05 --max-cameras 4 \
    --set model.precision=bf16 --out "$engines_out/cameras_evs05_bf16"
  evs bench cameras "${common[@]}" --operating-point EVS14 --max-cameras 8 \
    --out "$engines_out/cameras_evs14"
  evs bench cameras "${common[@]}" --operating-point ADAPTIVE --set operating_point.downscale=0.5 \
    --set operating_point.flow_scale=0.25 --max-cameras 8 --out "$engines_out/cameras_adaptive"
}

step_int8() {
  log "int8: NNCF quantisation vs fp32 on OpenVINO, speed and mIoU (section 13)"
  local common=(--data "$data" --split test --max-snippets "$snippets" --figure-propagations 0
                --backend icnet:default --no-runtime --no-torch-reference --engine openvino
                --operating-points EVS03 EVS07 EVS10 EVS14)
  evs bench "${common[@]}" --out "$engines_out/int8_synthetic_fp32"
  evs bench "${common[@]}" --set model.precision=int8 \
    --set model.calibration=data_cache/synth_calib --out "$engines_out/int8_synthetic_int8"
  local weights="$real/weights/espnetv2_s_2.0_city_1024x512.pth"
  if [ -f "$weights" ] && [ -d "$real/camvid" ] && [ -f data_cache/bikes.mp4 ]; then
    local camvid=(--data "camvid:$real/camvid" --resolution 640x480 --backend "espnet:$weights"
                  --refiner '' --figure-propagations 0 --no-runtime --no-torch-reference
                  --engine openvino --operating-points EVS03 EVS07)
    evs bench "${camvid[@]}" --out "$engines_out/int8_camvid_fp32"
    evs bench "${camvid[@]}" --set model.precision=int8 \
      --set model.calibration=data_cache/bikes.mp4 --out "$engines_out/int8_camvid_int8"
  else
    log "int8: no $real (ESPNetv2 weights, CamVid) or bikes.mp4: real-frame rows skipped"
  fi
}

step_summary() {
  log "summary: $engines_out/summary.md"
  python scripts/engines_summary.py "$out" > "$engines_out/summary.md"
  cat "$engines_out/summary.md"
}

for name in "${steps[@]}"; do
  "step_$name"
done
log "done: $out (section 13 tables: $engines_out/summary.md)"
