#!/usr/bin/env bash
# GPU check, for a machine with CUDA (never needed by CI). Under 8 minutes after set-up:
#   1. the CUDA/fp16 tests (pytest -m "not ros" -k "cuda or fp16");
#   2. per-frame ms/Hz of the full-width ICNet (official size) and the Refiner at 2048x1024,
#      and 4 keyframes in one call (evs bench models --device cuda --batch 4; runtime.keyframe_batch);
#   3. fp16 vs fp32: ICNet ms per frame and label agreement on synthetic street frames;
#   4. the operating points through the synchronous pipeline and the runtime on the GPU
#      (evs bench, 3 synthetic snippets at 2048x1024, random full-width ICNet).
# Results go to $OUT (default out/device_check): JSON + markdown per step, device_check.log.
# Usage: bash scripts/device_check.sh        (from the repository root)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
out="${OUT:-$repo/out/device_check}"
mkdir -p "$out"
exec > >(tee "$out/device_check.log") 2>&1
start=$(date +%s)
step() { printf '\n== %s (%s s)\n' "$*" "$(( $(date +%s) - start ))"; }

step "set-up"
# Ray (evs fleet) cannot be installed on the GPU machine; nothing below needs it.
EVS_FLEET=0 bash scripts/setup.sh > "$out/setup.log" 2>&1 || { tail -30 "$out/setup.log"; exit 1; }
# shellcheck disable=SC1091
source scripts/env.sh
python - <<'EOF'
import torch
print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-')
if not torch.cuda.is_available():
    raise SystemExit('no CUDA device: nothing to check')
EOF
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true

step "1. CUDA / fp16 tests"
EVS_REQUIRE_INSTALLED=1 timeout 240 pytest -q -m "not ros" -k "cuda or fp16" test || true

step "2. networks on the GPU at 2048x1024 and 1024x512"
timeout 180 evs bench models --device cuda --networks icnet --widths 1.0,0.5 \
  --sizes 2048x1024,1024x512 --threads 1 --repeats 20 --warmup 5 --batch 4 \
  --out "$out/models_cuda.json" || true

step "3. fp16 vs fp32: speed and agreement of ICNet labels"
timeout 120 python - "$out/fp16_agreement.json" <<'EOF'
import json, sys, time
import numpy as np, torch
from evs_ros.data.synth import SynthConfig, render_snippet
from evs_ros.models.icnet import ICNet, IcnetModel
torch.manual_seed(0)
network = ICNet(19, 1.0, aux_heads=False).eval()
frames = [f.image_bgr for f in render_snippet(SynthConfig(width=2048, height=1024,
                                                           num_frames=3, seed=2000000))]
fp32 = IcnetModel(network, 'cuda', fp16=False)
fp16 = IcnetModel(ICNet(19, 1.0, aux_heads=False).eval(), 'cuda', fp16=True)
fp16.network.load_state_dict(fp32.network.state_dict())
fp16.network.half()
agreement, max_prob = [], []
for frame in frames:
    a, b = fp32.predict(frame), fp16.predict(frame)
    agreement.append(float((a.probs.argmax(0) == b.probs.argmax(0)).mean()))
    max_prob.append(float(np.abs(a.probs - b.probs).max()))


def median_ms(model, frame, repeats=20):
    for _ in range(3):
        model.predict(frame)
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        model.predict(frame)
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000.0)
    return float(np.median(times))


result = {'label_agreement': agreement, 'max_abs_prob_diff': max_prob,
          'fp32_ms': median_ms(fp32, frames[0]), 'fp16_ms': median_ms(fp16, frames[0]),
          'note': 'random full-width ICNet at 2048x1024 (weights do not change the arithmetic)'}
json.dump(result, open(sys.argv[1], 'w'), indent=2)
print(result)
EOF

step "4. operating points on the GPU (sync + runtime), 3 snippets at 2048x1024"
python - "$out/icnet_full.pt" <<'EOF'
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
timeout 300 evs bench --out "$out/ops_cuda" --synth-snippets 3 --resolution 2048x1024 \
  --figure-propagations 0 --device cuda --backend "icnet:$out/icnet_full.pt" \
  --refiner "$out/icnet_full_refiner.pt" \
  --operating-points EVS03 EVS05 EVS07 EVS10 EVS12 EVS14 || true

step "done in $(( $(date +%s) - start )) s; results in $out"
