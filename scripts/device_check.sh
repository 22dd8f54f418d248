#!/usr/bin/env bash
# GPU check of the inference engines (issue 18), for a machine with CUDA (never needed by CI).
# It runs WITHOUT set-up: the machine's own python3 with PYTHONPATH=<repo> (no venv, no colcon,
# no ROS wheels, no network). It needs torch with CUDA, numpy, OpenCV and PyYAML; TensorRT,
# onnxruntime(-gpu), openvino and pytest are used when importable, and each engine or step that
# cannot run says so in one line. Every step has a timeout cut from one budget: the whole check
# takes under 4 minutes (BUDGET_S, default 210 s, plus the machine's Python start-up).
#   0. versions: python, torch, CUDA, the GPU, every engine and ONNX Runtime's providers;
#   1. the real networks on the GPU with torch CUDA, fp32 and fp16, at 1024x512 and 2048x1024:
#      the shipped ICNet (icnet:default) and ESPNetv2 s2 with its published Cityscapes weights
#      (espnet:$EVS_ESPNET), each with a Refiner, and 4 keyframes in one call (--batch 4);
#   2. the same on the GPU engines installed here (TensorRT fp32/fp16, ONNX Runtime's CUDA
#      provider), one run per size so that a slow TensorRT build leaves the first size's rows;
#   3. the CPU engines of this machine against torch (ONNX Runtime, OpenVINO where installed),
#      4 threads, 1024x512;
#   4. fp16 vs fp32 labels of both real networks on synthetic street frames (agreement, ms);
#   5. the CUDA / fp16 / TensorRT tests (pytest -k "cuda or fp16 or tensorrt") with what is left.
# Results go to $OUT (default out/device_check): JSON + markdown per step (models_*.json/.md,
# fp16_agreement.json, versions.json), device_check.log and summary.md (every table in one file).
# Engine graphs are built in a temporary cache, never in $OUT.
# ESPNetv2's weights: EVS_ESPNET=PATH (espnetv2_s_2.0_city_1024x512.pth), else
# ../shared/real/weights/ or data_cache/device/ when there; without them ESPNetv2 s2 runs with
# random weights (same arithmetic, so the same times; step 4 then skips it).
# Usage: bash scripts/device_check.sh              (from the repository root; PYTHON=python3.12)
#        QUICK=1 DEVICE=cpu bash scripts/device_check.sh   a dry run of the script itself on a
#        machine without a GPU (256x128, 2 repeats; GPU steps run on the CPU)
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
out="${OUT:-$repo/out/device_check}"
python_bin="${PYTHON:-python3}"
mkdir -p "$out"
exec > >(tee "$out/device_check.log") 2>&1
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
export XDG_CACHE_HOME="${XDG_CACHE_HOME_CHECK:-$(mktemp -d)}"  # engine graphs: not in $OUT
export PYTHONUNBUFFERED=1 EVS_FLEET=0
start=$(date +%s)
total_s="${BUDGET_S:-210}"
step() { printf '\n== %s (%s s)\n' "$*" "$(( $(date +%s) - start ))"; }
budget() {  # budget S: S seconds, or what is left of total_s when that is less (min 1)
  local left=$(( total_s - ($(date +%s) - start) ))
  [ "$left" -lt "$1" ] && echo $(( left > 1 ? left : 1 )) || echo "$1"
}
evs=("$python_bin" -m evs_ros.tools.cli)
device="${DEVICE:-cuda}"
if [ "${QUICK:-0}" = 1 ]; then
  sizes="${SIZES:-256x128,384x192}" cpu_size="${CPU_SIZE:-256x128}" repeats="${REPEATS:-2}"
  warmup=1
else
  sizes="${SIZES:-1024x512,2048x1024}" cpu_size="${CPU_SIZE:-1024x512}" repeats="${REPEATS:-30}"
  warmup=5
fi
has() { "$python_bin" -c "import $1" > /dev/null 2>&1; }

espnet="${EVS_ESPNET:-}"
if [ -z "$espnet" ]; then
  for candidate in "$repo/../shared/real/weights/espnetv2_s_2.0_city_1024x512.pth" \
                   "$repo/data_cache/device/espnetv2_s_2.0_city_1024x512.pth"; do
    [ -f "$candidate" ] && { espnet="$candidate"; break; }
  done
fi
if [ -n "$espnet" ] && [ -f "$espnet" ]; then
  espnet_spec="espnet:$espnet"
else
  echo "(no ESPNetv2 weights at '${espnet}' (EVS_ESPNET=PATH): ESPNetv2 s2 runs with random" \
       "weights, same arithmetic)"
  espnet_spec="espnet-s2" espnet=""
fi
networks="icnet:default,$espnet_spec"

step "0. versions"
"$python_bin" - "$out/versions.json" "$device" <<'EOF'
import json, platform, sys
import torch
from evs_ros.models.engines import engine_versions
info = {'python': platform.python_version(), 'torch': torch.__version__,
        'cuda': torch.version.cuda, 'cuda_available': torch.cuda.is_available(),
        'gpu': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        'engines': engine_versions()}
try:
    import onnxruntime
    info['onnxruntime_providers'] = onnxruntime.get_available_providers()
except ImportError:
    pass
json.dump(info, open(sys.argv[1], 'w'), indent=2)
print(json.dumps(info))
if not info['cuda_available'] and sys.argv[2] != 'cpu':
    raise SystemExit('no CUDA device: nothing to check (QUICK=1 DEVICE=cpu for a dry run)')
EOF
[ $? -eq 0 ] || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
gpu_engines=$("$python_bin" - "$device" <<'EOF'
import sys
from evs_ros.models.engines import choose_engine
usable = []
for engine in ('tensorrt', 'onnxruntime'):
    try:
        choose_engine(engine, 'cuda' if sys.argv[1] == 'cuda' else 'cpu')
        usable.append(engine)
    except (ImportError, ValueError) as error:
        print(f'({engine} on the GPU is skipped: {error})', file=sys.stderr)
print(','.join(usable))
EOF
)

bench_models() {  # bench_models NAME SECONDS ARGS...: evs bench models -> $out/NAME.json/.md
  local name="$1" seconds="$2"
  shift 2
  timeout "$(budget "$seconds")" "${evs[@]}" bench models --networks "$networks" \
    --refiner-width 0.5 --out "$out/$name.json" "$@" || echo "($name failed or timed out)"
}

step "1. torch on the GPU, fp32 and fp16, $sizes: $networks"
bench_models models_gpu_torch 70 --device "$device" --sizes "$sizes" --threads 1 \
  --repeats "$repeats" --warmup "$warmup" --batch 4 --engines torch --precisions fp32,fp16

step "2. the GPU engines installed here (${gpu_engines:-none}) next to torch"
if [ -n "$gpu_engines" ]; then
  for size in ${sizes//,/ }; do
    bench_models "models_gpu_engines_$size" 60 --device "$device" --sizes "$size" --threads 1 \
      --repeats "$repeats" --warmup "$warmup" --engines "torch,$gpu_engines,auto" \
      --precisions fp32,fp16
  done
else
  echo "(no GPU engine besides torch is installed: step 2 skipped)"
fi

step "3. the CPU engines of this machine vs torch, 4 threads, $cpu_size"
bench_models models_cpu 45 --device cpu --sizes "$cpu_size" --threads 4 --repeats 5 \
  --warmup 1 --engines torch,openvino,onnxruntime,auto

step "4. fp16 vs fp32 labels of the real networks on synthetic street frames"
timeout "$(budget 30)" "$python_bin" - "$out/fp16_agreement.json" "$device" "${sizes%%,*}" \
  "$espnet" <<'EOF'
import json, sys, time
import numpy as np, torch
from evs_ros.data.synth import SynthConfig, render_snippet
from evs_ros.models.backends import load_backend
out, device, size, espnet = sys.argv[1:5]
width, height = (int(v) for v in size.split('x'))
frames = [f.image_bgr for f in render_snippet(SynthConfig(width=width, height=height,
                                                           num_frames=3, seed=2000000))]
cuda = device == 'cuda'


def median_ms(model, frame, repeats=20 if cuda else 2):
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for _ in range(3 if cuda else 1):
        model.predict(frame)
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        model.predict(frame)
        sync()
        times.append((time.perf_counter() - start) * 1000.0)
    return round(float(np.median(times)), 2)


results = {'frames': f'3 synthetic street frames at {size}', 'device': device, 'networks': {}}
for spec in ['icnet:default'] + ([f'espnet:{espnet}'] if espnet else []):
    fp32, fp16 = load_backend(spec, device), load_backend(spec, device, fp16=cuda)
    agreement, max_prob = [], []
    for frame in frames:
        a, b = fp32.predict(frame), fp16.predict(frame)
        agreement.append(round(float((a.probs.argmax(0) == b.probs.argmax(0)).mean()), 5))
        max_prob.append(round(float(np.abs(a.probs - b.probs).max()), 5))
    results['networks'][spec] = {
        'fp16_on': bool(getattr(fp16, 'fp16', False)), 'label_agreement': agreement,
        'max_abs_prob_diff': max_prob, 'fp32_ms': median_ms(fp32, frames[0]),
        'fp16_ms': median_ms(fp16, frames[0])}
json.dump(results, open(out, 'w'), indent=2)
print(json.dumps(results))
EOF
[ $? -eq 0 ] || echo "(step 4 failed or timed out)"

step "5. CUDA / fp16 / TensorRT tests, with what is left of the budget"
left=$(( total_s - ($(date +%s) - start) ))
if ! has pytest; then
  echo "(pytest is not installed: tests skipped)"
elif [ "$left" -lt 20 ]; then
  echo "(${left} s left of the budget: tests skipped)"
else
  timeout "$left" "$python_bin" -m pytest -q -p no:cacheprovider -x -k "cuda or fp16 or tensorrt" \
    test/test_models_icnet.py test/test_models_engines.py || echo "(some tests failed or timed out)"
fi

{
  echo "# device check $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Networks: $networks; versions: $(cat "$out/versions.json" 2>/dev/null | tr -d '\n' | tr -s ' ')"
  for file in "$out"/models_*.md; do
    [ -f "$file" ] && { echo; echo "## $(basename "$file")"; tail -n +3 "$file"; }
  done
  [ -f "$out/fp16_agreement.json" ] && { echo; echo '## fp16 vs fp32'; echo; cat "$out/fp16_agreement.json"; }
} > "$out/summary.md"
step "done in $(( $(date +%s) - start )) s; results in $out"
