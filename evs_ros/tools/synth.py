"""``evs synth``: render the synthetic driving benchmark in the Cityscapes layout (design §6).

Example::

    evs synth --out data/synth --split train --snippets 40 --width 512 --height 256 --write-flow

Snippet i of a split uses seed ``base + SPLIT_SEED_OFFSET[split] + i``, so the splits never share
a scene; the city name is ``synth<split>``.
"""

import argparse
import json
import os
import time

from evs_ros.data.cityscapes import write_snippet
from evs_ros.data.synth import SPLIT_SEED_OFFSET, SynthConfig, render_snippet, snippet_seed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command-line options."""
    parser.add_argument('--out', required=True, help='dataset root directory')
    parser.add_argument('--split', choices=sorted(SPLIT_SEED_OFFSET), default='train')
    parser.add_argument('--snippets', type=int, default=10, help='number of snippets')
    parser.add_argument('--width', type=int, default=1024, help='image width in pixels')
    parser.add_argument('--height', type=int, default=512, help='image height in pixels')
    parser.add_argument('--frames', type=int, default=30, help='frames per snippet')
    parser.add_argument('--fps', type=float, default=17.0, help='frame rate (Cityscapes: 17)')
    parser.add_argument('--seed', type=int, default=0, help='base seed')
    parser.add_argument('--write-flow', action='store_true',
                        help='also write exact flow and visibility (flow/..._flow.npz)')


def run(args: argparse.Namespace) -> int:
    """Render and write the requested snippets; prints a JSON summary."""
    from tqdm import tqdm
    city = f'synth{args.split}'
    start = time.perf_counter()
    for index in tqdm(range(args.snippets), desc=f'synth {args.split}', unit='snippet'):
        config = SynthConfig(width=args.width, height=args.height, num_frames=args.frames,
                             fps=args.fps, seed=snippet_seed(args.split, args.seed, index))
        write_snippet(args.out, args.split, city, index, render_snippet(config),
                      write_flow=args.write_flow)
    elapsed_s = time.perf_counter() - start
    frames = args.snippets * args.frames
    print(json.dumps({'root': os.path.abspath(args.out), 'split': args.split, 'city': city,
                      'snippets': args.snippets, 'frames': frames,
                      'ms_per_frame': round(1000 * elapsed_s / max(frames, 1), 1)}))
    return 0
