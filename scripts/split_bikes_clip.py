"""Cut bikes.mp4 into the Refiner's training part and its held-out shot (lossless FFV1 AVI).

``python scripts/split_bikes_clip.py OUT_DIR`` writes ``bikes_first187.avi`` (frames 0..186: the
Refiner of ESPNetv2 trains on them) and ``bikes_heldout.avi`` (frames 187..241, the shot that
starts at the cut after frame 186 and ends at the next cut: never seen in training), once, and
prints their paths. Used by scripts/train_espnet_refiner.sh and scripts/bench_espnet_refiner.sh.
"""

import os
import sys

import cv2

from evs_ros.data.sample_clips import ensure_bikes_clip
from evs_ros.data.video import iter_video

PARTS = {'bikes_first187.avi': (0, 187), 'bikes_heldout.avi': (187, 242)}


def main(out_dir: str) -> int:
    os.makedirs(out_dir, exist_ok=True)
    wanted = {name: os.path.join(out_dir, name) for name in PARTS}
    if not all(os.path.isfile(path) for path in wanted.values()):
        frames = list(iter_video(str(ensure_bikes_clip())))
        for name, (first, end) in PARTS.items():
            height, width = frames[0].shape[:2]
            tmp_path = wanted[name] + '.tmp.avi'
            writer = cv2.VideoWriter(tmp_path, cv2.VideoWriter_fourcc(*'FFV1'), 25.0,
                                     (width, height))
            for frame in frames[first:end]:
                writer.write(frame)
            writer.release()
            os.replace(tmp_path, wanted[name])
    print(' '.join(wanted.values()))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else 'data_cache'))
