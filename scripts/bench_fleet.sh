#!/usr/bin/env bash
# docs/benchmarks.md section 15, on one machine:
#   1. evs fleet on a local Ray instance with 1 and then 2 workers on the same bags: 8 bags of 100
#      frames and one of 400 (chunked at 4 s) of a real 640x272 street clip, default network and
#      operating point; $OUT/fleet_{1,2}w/fleet_report.{json,md} and the ratio;
#   2. a worker's cost per frame besides the network at 2048x1024 (scripts/bench_fleet_io.py):
#      $OUT/io_2048.json.
# Usage: bash scripts/bench_fleet.sh [evs fleet options]   (OUT=out/bench_fleet by default)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
out="${OUT:-$repo/out/bench_fleet}"
# shellcheck disable=SC1091
source scripts/env.sh
rm -rf "$out" && mkdir -p "$out"
cd "$out"  # Ray workers put the driver's directory on sys.path: not the source tree
python "$repo/scripts/make_fleet_bags.py" "$out/bags" --bags 8 --frames 100 --long-frames 400
for workers in 1 2; do
  evs fleet "$out/bags" "$out/fleet_${workers}w" --workers "$workers" --no-dashboard \
    --chunk-s 4 "$@"
done
python - "$out" <<'PY'
import json, sys
out = sys.argv[1]
runs = {w: json.load(open(f'{out}/fleet_{w}w/fleet_report.json')) for w in (1, 2)}
for w, r in runs.items():
    print(f"{w} worker(s): {r['frames']} frames in {r['wall_s']:.1f} s (start-up "
          f"{r['startup_s']:.1f} s) = {r['frames_per_s']:.2f} frames/s, "
          f"{r['frames_per_s_after_startup']:.2f} after start-up; per worker "
          f"{r['frames_per_s_per_worker']:.2f} frames/s; {r['chunks']} label tasks")
for key in ('frames_per_s', 'frames_per_s_after_startup'):
    print(f"2 workers / 1 worker, {key}: {runs[2][key] / runs[1][key]:.2f}x")
PY
python "$repo/scripts/make_fleet_bags.py" "$out/bags_2048" --bags 1 --frames 20 --long-frames 0 \
  --size 2048x1024
python "$repo/scripts/bench_fleet_io.py" "$out/bags_2048/drive_00" --json "$out/io_2048.json"
