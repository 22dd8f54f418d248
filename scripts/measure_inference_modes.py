#!/usr/bin/env python3
"""What the network's input scale, sliding windows and bilinear upsampling change, per frame.

docs/benchmarks.md section 14. Runs the per-frame network (PERFRAME, through ``evaluate``: the
same pipeline, scoring and class mapping as ``evs eval``) once per mode of ``config.model``
(``input_short_side``, ``window``, ``upsample``) on:

- a real network (default ESPNetv2 s=2.0, trained at short side 512 on 512x1024 crops) on the
  real labelled frames of ``--real``: CamVid val (101 frames, 480x360, scored in CamVid's 11
  classes through the Cityscapes trainId table) and three 2048x1024 Cityscapes val frames (the
  two ``cityscapes_snippets`` annotated frames, decoded from H.264, and
  ``frankfurt_000001_058914``; scored in the 19 classes present);
- the shipped synthetic ICNet (trained on 257x513 crops of 1024x512 frames) on ``--synth``
  held-out synthetic snippets at 1024x512 (the synthetic benchmark).

Usage (from the repository root, after ``source scripts/env.sh``)::

    python scripts/measure_inference_modes.py --out out/inference_modes
        [--real ../shared/real] [--backend espnet:PATH] [--synth 30] [--threads 2]

Writes ``OUT/inference_modes.json`` and ``OUT/inference_modes.md``. ms/frame is the pipeline's
wall time per scored frame in one process (network + labels), for ratios within one run.
``--only upsampling`` times the keyframe labels alone (nearest vs bilinear, median of 7, one
thread) on the real network's probabilities for a 2048x1024 Cityscapes frame and a 480x360
CamVid frame at the training scale, against a full bilinear resize of every class.
"""

import argparse
import json
import os
import sys
import time
from dataclasses import replace

DEFAULT_REAL = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'shared',
                            'real')
ESPNET = 'weights/espnetv2_s_2.0_city_1024x512.pth'
SINGLE_FRAME = ('cityscapes/frankfurt_000001_058914_leftImg8bit.png',
                'cityscapes/frankfurt_000001_058914_gtFine_color.png')
# (label, model.input_short_side, model.window, model.upsample)
REAL_MODES = (
    ('camera scale, whole, nearest', -1, '', 'nearest'),
    ('camera scale, whole, bilinear', -1, '', 'bilinear'),
    ('camera scale, 512x1024 windows, nearest', -1, '512x1024', 'nearest'),
    ('camera scale, 512x1024 windows, bilinear', -1, '512x1024', 'bilinear'),
    ('training scale (512), whole, nearest', 0, '', 'nearest'),
    ('training scale (512), whole, bilinear', 0, '', 'bilinear'),
    ('short side 480, whole, nearest', 480, '', 'nearest'),
    ('short side 480, whole, bilinear', 480, '', 'bilinear'),
)
SYNTH_MODES = (
    ('camera scale, whole, nearest', -1, '', 'nearest'),
    ('camera scale, whole, bilinear', -1, '', 'bilinear'),
    ('camera scale, 257x513 windows, nearest', -1, '257x513', 'nearest'),
    ('camera scale, 257x513 windows, bilinear', -1, '257x513', 'bilinear'),
)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='out/inference_modes')
    parser.add_argument('--real', default=os.environ.get('EVS_REAL_DATA', DEFAULT_REAL))
    parser.add_argument('--backend', default='', help='real network SPEC (default: ESPNetv2 '
                        's=2.0 from --real)')
    parser.add_argument('--synth', type=int, default=30, help='synthetic snippets (0 = skip)')
    parser.add_argument('--threads', type=int, default=2, help='torch threads')
    parser.add_argument('--only', nargs='*',
                        choices=('camvid', 'cityscapes', 'synthetic', 'upsampling'))
    return parser.parse_args(argv)


def cityscapes_frames(real: str):
    """The three 2048x1024 Cityscapes val frames as EvalSnippets (one scored frame each)."""
    import cv2

    from evs_ros.evaluation.snippets import EvalSnippet, read_ground_truth, snippet_source
    snippets, _, _ = snippet_source('video:' + os.path.join(real, 'cityscapes_snippets'))
    for snippet in snippets:
        index = snippet.annotated_index  # PERFRAME runs the annotated frame only
        yield replace(snippet, frames=[snippet.frames[index]], annotated_index=0)
    image = cv2.imread(os.path.join(real, SINGLE_FRAME[0]), cv2.IMREAD_COLOR)
    yield EvalSnippet(name='frankfurt_000001_058914', frames=[image],
                      gt_labels=read_ground_truth(os.path.join(real, SINGLE_FRAME[1])),
                      annotated_index=0)


def synthetic(count: int):
    from evs_ros.data.synth import snippet_seed
    from evs_ros.evaluation.snippets import SYNTH_TEST_SPLIT, synthetic_snippets
    seeds = [snippet_seed(SYNTH_TEST_SPLIT, 0, index) for index in range(count)]
    for snippet in synthetic_snippets(seeds, (1024, 512)):
        index = snippet.annotated_index
        yield replace(snippet, frames=[snippet.frames[index]], annotated_index=0)


def measure(backend: str, modes, snippets, kind: str):
    """{mode label: {miou, pixel_accuracy, per_class_iou, ms_per_frame, frames}}."""
    from evs_ros.config import EvsConfig, ModelConfig
    from evs_ros.evaluation import evaluate, model_class_names
    from evs_ros.evaluation.snippets import scoring_for
    from evs_ros.models.loading import load_models
    snippets = list(snippets)
    results = {}
    for label, short_side, window, upsample in modes:
        model_config = ModelConfig(backend=backend, refiner='', device='cpu',
                                   input_short_side=short_side, window=window,
                                   upsample=upsample)
        model, _ = load_models(model_config, need_refiner=False)
        config = replace(EvsConfig(), model=model_config)
        scoring = scoring_for(kind, model_class_names(model))
        evaluate(snippets[:1], model, None, (), config, scoring=scoring)  # warm-up
        start = time.perf_counter()
        report = evaluate(snippets, model, None, (), config, scoring=scoring)
        wall_s = time.perf_counter() - start
        entry = report['operating_points'][0]
        results[label] = {'miou': entry['miou'], 'pixel_accuracy': entry['pixel_accuracy'],
                          'per_class_iou': entry['per_class_iou'], 'frames': entry['frames'],
                          'ms_per_frame': round(1000.0 * wall_s / max(1, entry['frames']), 1),
                          'input_short_side': short_side, 'window': window,
                          'upsample': upsample}
        print(f'{kind:>10} | {label:<42} | mIoU {100 * entry["miou"]:5.1f} | '
              f'{results[label]["ms_per_frame"]:7.1f} ms/frame', flush=True)
    return results


def _median_ms(function, repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(1000.0 * (time.perf_counter() - start))
    return round(sorted(times)[len(times) // 2], 1)


def upsampling_cost(backend: str, real: str):
    """ms of the keyframe labels per upsampling, on the real network's own probabilities."""
    import cv2
    import numpy as np

    from evs_ros.config import ModelConfig
    from evs_ros.models.loading import load_models
    from evs_ros.pipeline.network_input import (input_short_side, network_scale,
                                                resize_for_network)
    from evs_ros.pipeline.state import PropagationState
    cv2.setNumThreads(1)
    model, _ = load_models(ModelConfig(backend=backend, refiner='', device='cpu'), False)
    frames = {'Cityscapes 2048x1024': os.path.join(real, SINGLE_FRAME[0]),
              'CamVid 480x360': os.path.join(real, 'camvid', 'val', sorted(os.listdir(
                  os.path.join(real, 'camvid', 'val')))[0])}
    rows = {}
    for name, path in frames.items():
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        camera_hw = image.shape[:2]
        scale = network_scale(camera_hw, 1.0, input_short_side(model))
        prediction = model.predict(resize_for_network(image, scale))
        probs = prediction.probs
        full = np.ascontiguousarray(probs.transpose(1, 2, 0))
        rows[name] = {
            'probs': f'{probs.shape[0]}x{probs.shape[1]}x{probs.shape[2]}',
            'nearest_ms': _median_ms(lambda: PropagationState.from_prediction(prediction, camera_hw)),
            'bilinear_ms': _median_ms(
                lambda: PropagationState.from_prediction(prediction, camera_hw, 'bilinear')),
            'full_resize_ms': _median_ms(lambda: np.argmax(cv2.resize(
                full, camera_hw[::-1], interpolation=cv2.INTER_LINEAR), axis=-1)),
            'network_ms': _median_ms(lambda: model.predict(resize_for_network(image, scale)),
                                     3)}
        print(name, rows[name], flush=True)
    return rows


def markdown(report) -> str:
    lines = ['# Input scale, sliding windows and upsampling, per frame', '',
             f"Real network `{report['backend']}`; synthetic: `icnet:default`. "
             f"Host: {report['host']}.", '']
    for kind, results in report['results'].items():
        lines += [f'## {kind}', '', '| mode | mIoU % | pixel acc % | ms/frame |',
                  '|---|---:|---:|---:|']
        for label, entry in results.items():
            lines.append(f"| {label} | {100 * entry['miou']:.1f} | "
                         f"{100 * entry['pixel_accuracy']:.1f} | {entry['ms_per_frame']:.0f} |")
        lines.append('')
    if report.get('label_upsampling_ms'):
        lines += ['## Keyframe labels, ms (median of 7, one thread)', '',
                  '| frame | probabilities | network | nearest | bilinear (ours) | '
                  'full bilinear resize |', '|---|---|---:|---:|---:|---:|']
        for name, row in report['label_upsampling_ms'].items():
            lines.append(f"| {name} | {row['probs']} | {row['network_ms']:.0f} | "
                         f"{row['nearest_ms']:.1f} | {row['bilinear_ms']:.1f} | "
                         f"{row['full_resize_ms']:.1f} |")
        lines.append('')
    return '\n'.join(lines)


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    import torch

    from evs_ros.evaluation.snippets import snippet_source
    from evs_ros.tools.common import cpu_model
    torch.set_num_threads(args.threads)
    backend = args.backend or 'espnet:' + os.path.join(args.real, ESPNET)
    only = set(args.only or ('camvid', 'cityscapes', 'synthetic', 'upsampling'))
    results = {}
    if 'camvid' in only:
        snippets, _, _ = snippet_source('camvid:' + os.path.join(args.real, 'camvid'))
        results['CamVid val (101 frames, 480x360, 11 classes)'] = measure(
            backend, REAL_MODES, snippets, 'camvid')
    if 'cityscapes' in only:
        results['Cityscapes val frames (3, 2048x1024, 19 classes)'] = measure(
            backend, REAL_MODES, cityscapes_frames(args.real), 'video')
    if 'synthetic' in only and args.synth:
        results[f'Synthetic benchmark ({args.synth} frames, 1024x512)'] = measure(
            'icnet:default', SYNTH_MODES, synthetic(args.synth), 'synthetic')
    report = {'backend': backend, 'host': f'{cpu_model()}, {os.cpu_count()} cores, '
              f'{args.threads} torch threads', 'results': results}
    if 'upsampling' in only:
        torch.set_num_threads(1)
        report['label_upsampling_ms'] = upsampling_cost(backend, args.real)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, 'inference_modes.json'), 'w', encoding='utf-8') as stream:
        json.dump(report, stream, indent=2)
    with open(os.path.join(args.out, 'inference_modes.md'), 'w', encoding='utf-8') as stream:
        stream.write(markdown(report) + '\n')
    print(f'wrote {args.out}/inference_modes.json and .md')
    return 0


if __name__ == '__main__':
    sys.exit(main())
