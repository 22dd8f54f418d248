#!/usr/bin/env bash
# GPU check, for a machine with CUDA (never needed by CI). It runs WITHOUT set-up: the machine's
# own python3 with PYTHONPATH=<repo> (no venv, no colcon, no ROS wheels, no network). It needs
# torch with CUDA, numpy, OpenCV and PyYAML; transformers, onnxruntime(-gpu), openvino, tensorrt,
# pytest and matplotlib are used when importable, and each step says in one line what it skips.
# Under 8 minutes on an H200:
#   0. versions: torch, the GPU, every engine (JSON);
#   1. the CUDA/fp16/TensorRT tests (pytest -k "cuda or fp16 or tensorrt"), when pytest is there;
#   2. the networks on the GPU, per engine and precision: ICNet 1.0 and 0.5, SegFormer-B0,
#      ESPNetv2-s2 with their Refiners at 2048x1024 and 1024x512, torch CUDA fp32/fp16 next to
#      TensorRT fp32/fp16 and ONNX Runtime CUDA where installed, and 4 keyframes in one call
#      (evs bench models --device cuda --engines torch,tensorrt,onnxruntime,auto --batch 4);
#   3. the CPU engines of this machine against torch (ONNX Runtime, OpenVINO where installed),
#      4 threads, 1024x512 (evs bench models --device cpu);
#   4. fp16 vs fp32: ICNet ms per frame and label agreement on synthetic street frames;
#   5. the operating points on the GPU (evs bench --engine auto: the synchronous pipeline and the
#      runtime, 3 synthetic snippets at 2048x1024, random full-width ICNet).
# Results go to $OUT (default out/device_check): JSON + markdown per step, device_check.log and
# summary.md (every markdown table in one file). Engine graphs are cached in a temporary folder.
# Usage: bash scripts/device_check.sh     (from the repository root; PYTHON=python3.12 to pick;
#        DEVICE=cpu SIZES=256x128 CPU_SIZE=256x128 REPEATS=2 OPS_SIZE=256x128 SNIPPETS=1 for a
#        quick dry run of the script itself where there is no GPU)
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
out="${OUT:-$repo/out/device_check}"
python_bin="${PYTHON:-python3}"
mkdir -p "$out"
exec > >(tee "$out/device_check.log") 2>&1
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
export XDG_CACHE_HOME="${XDG_CACHE_HOME_CHECK:-$(mktemp -d)}"  # engine graphs: not in $OUT
export PYTHONUNBUFFERED=1
start=$(date +%s)
total_s=470  # every step's timeout is cut to what is left of this: the whole check < 8 min
step() { printf '\n== %s (%s s)\n' "$*" "$(( $(date +%s) - start ))"; }
budget() {  # budget S: S seconds, or what is left of total_s when that is less (min 1)
  local left=$(( total_s - ($(date +%s) - start) ))
  [ "$left" -lt "$1" ] && echo $(( left > 1 ? left : 1 )) || echo "$1"
}
evs=("$python_bin" -m evs_ros.tools.cli)
device="${DEVICE:-cuda}"  # DEVICE=cpu: a dry run of this script on a machine without a GPU
sizes="${SIZES:-2048x1024,1024x512}" cpu_size="${CPU_SIZE:-1024x512}" repeats="${REPEATS:-20}"
ops_size="${OPS_SIZE:-2048x1024}" snippets="${SNIPPETS:-3}"  # smaller for a dry run
has() { "$python_bin" -c "import $1" > /dev/null 2>&1; }

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
    raise SystemExit('no CUDA device: nothing to check (DEVICE=cpu for a dry run)')
EOF
[ $? -eq 0 ] || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
for engine in tensorrt onnxruntime openvino; do
  has "$engine" || echo "(${engine} is not installed: its rows are skipped)"
done

step "1. CUDA / fp16 / TensorRT tests"
if has pytest; then
  timeout "$(budget 45)" "$python_bin" -m pytest -q -p no:cacheprovider -k "cuda or fp16 or tensorrt" \
    test/test_models_icnet.py test/test_models_engines.py || echo "(some tests failed, see above)"
else
  echo "(pytest is not installed: tests skipped)"
fi

step "2. networks per engine and precision on the GPU, 2048x1024 and 1024x512"
networks=icnet
has transformers && networks="$networks,segformer-b0" || echo "(no transformers: no SegFormer)"
networks="$networks,espnet-s2"
timeout "$(budget 120)" "${evs[@]}" bench models --device "$device" --networks "$networks" --widths 1.0,0.5 \
  --sizes "$sizes" --threads 1 --repeats "$repeats" --warmup 5 --batch 4 \
  --engines torch,tensorrt,onnxruntime,auto --precisions fp32,fp16 \
  --out "$out/models_cuda.json" || echo "(step 2 failed or timed out)"

step "3. CPU engines of this machine vs torch, 4 threads, 1024x512"
timeout "$(budget 75)" "${evs[@]}" bench models --device cpu --networks "$networks" --widths 0.5 \
  --sizes "$cpu_size" --threads 4 --repeats 5 --warmup 1 \
  --engines torch,openvino,onnxruntime,auto --out "$out/models_cpu.json" \
  || echo "(step 3 failed or timed out)"

step "4. fp16 vs fp32: speed and agreement of ICNet labels"
timeout "$(budget 45)" "$python_bin" - "$out/fp16_agreement.json" "$device" "$ops_size" <<'EOF'
import json, sys, time
import numpy as np, torch
from evs_ros.data.synth import SynthConfig, render_snippet
from evs_ros.models.icnet import ICNet, IcnetModel
torch.manual_seed(0)
network = ICNet(19, 1.0, aux_heads=False).eval()
width, height = (int(v) for v in sys.argv[3].split('x'))
frames = [f.image_bgr for f in render_snippet(SynthConfig(width=width, height=height,
                                                           num_frames=3, seed=2000000))]
device = sys.argv[2]
fp32 = IcnetModel(network, device, fp16=False)
fp16 = IcnetModel(ICNet(19, 1.0, aux_heads=False).eval(), device, fp16=True)
fp16.network.load_state_dict(fp32.network.state_dict())
if device == 'cuda':
    fp16.network.half()
agreement, max_prob = [], []
for frame in frames:
    a, b = fp32.predict(frame), fp16.predict(frame)
    agreement.append(float((a.probs.argmax(0) == b.probs.argmax(0)).mean()))
    max_prob.append(float(np.abs(a.probs - b.probs).max()))


def median_ms(model, frame, repeats=20 if device == 'cuda' else 2):
    sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
    for _ in range(3 if device == 'cuda' else 1):
        model.predict(frame)
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        model.predict(frame)
        sync()
        times.append((time.perf_counter() - start) * 1000.0)
    return float(np.median(times))


result = {'label_agreement': agreement, 'max_abs_prob_diff': max_prob,
          'fp32_ms': median_ms(fp32, frames[0]), 'fp16_ms': median_ms(fp16, frames[0]),
          'note': f'random full-width ICNet at {sys.argv[3]} (weights do not change the '
                  'arithmetic)'}
json.dump(result, open(sys.argv[1], 'w'), indent=2)
print(result)
EOF
[ $? -eq 0 ] || echo "(step 4 failed or timed out)"

step "5. operating points on the GPU (sync + runtime, engine auto), 3 snippets at 2048x1024"
"$python_bin" - "$out/icnet_full.pt" <<'EOF'
import sys, torch
from evs_ros.models.checkpoint import save_checkpoint
from evs_ros.models.icnet import ICNet
from evs_ros.models.refiner import RefinerNet
torch.manual_seed(0)
network = ICNet(19, 1.0, aux_heads=False)
save_checkpoint(sys.argv[1], 'icnet', {'num_classes': 19, 'width_mult': 1.0,
                                       'aux_heads': False}, network)
refiner = RefinerNet(19, network.feature_channels, 0.5, residual=True)
save_checkpoint(sys.argv[1].replace('.pt', '_refiner.pt'), 'refiner',
                {'num_classes': 19, 'feature_channels': network.feature_channels,
                 'width_mult': 0.5, 'residual': True}, refiner)
EOF
timeout "$(budget 150)" "${evs[@]}" bench --out "$out/ops_cuda" --synth-snippets "$snippets" \
  --resolution "$ops_size" \
  --figure-propagations 0 --device "$device" --engine auto --backend "icnet:$out/icnet_full.pt" \
  --refiner "$out/icnet_full_refiner.pt" \
  --operating-points EVS03 EVS05 EVS07 EVS10 EVS12 EVS14 || echo "(step 5 failed or timed out)"
rm -f "$out/icnet_full.pt" "$out/icnet_full_refiner.pt"

{
  echo "# device check $(date -u +%Y-%m-%dT%H:%MZ)"
  for file in "$out/models_cuda.md" "$out/models_cpu.md" "$out/ops_cuda/bench.md"; do
    [ -f "$file" ] && { echo; echo "## $(basename "$(dirname "$file")")/$(basename "$file")"; cat "$file"; }
  done
  [ -f "$out/fp16_agreement.json" ] && { echo; echo '## fp16 vs fp32'; cat "$out/fp16_agreement.json"; }
} > "$out/summary.md"
step "done in $(( $(date +%s) - start )) s; results in $out"
