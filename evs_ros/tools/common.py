"""What every ``evs`` command shares.

One options path into the typed config, sizes, JSON, hardware info and the one-line error
convention. Commands import only this module and the library.

The options path (the same for every command)::

    --params YAML        a ROS-style params file (config/evs.yaml format): every setting
    --set KEY=VALUE      one dotted setting, repeatable (--set flow.scale=0.5)
    --backend SPEC, --refiner CKPT, --device D, --engine E, --operating-point NAME,
    --flow-threads N, --inference-threads N
                         shortcuts for model.backend, model.refiner, model.device,
                         model.engine, operating_point.preset and runtime.*; unset unless given

Precedence: the typed defaults < ``--params`` < ``--set`` < shortcut flags. Errors are one line
on stderr and exit code 2 (:func:`fail`).
"""

import argparse
import json
import os
import platform
import sys
from dataclasses import replace
from typing import Dict, List, Optional, Sequence, Tuple

from evs_ros import errors
from evs_ros.data.json_values import json_safe
from evs_ros.config import (
    ENGINES, OPERATING_POINTS, EvsConfig, OperatingPoint, config_from_flat, load_yaml,
    operating_point, spec_usage,
)

USER_ERRORS = errors.USER_ERRORS
"""Exceptions that are the user's to fix: one line, exit code 2 (no traceback)."""
SHORTCUTS = {
    'backend': 'model.backend', 'refiner': 'model.refiner', 'device': 'model.device',
    'engine': 'model.engine', 'operating_point': 'operating_point.preset',
    'flow_threads': 'runtime.flow_threads', 'inference_threads': 'runtime.inference_threads',
}


def add_config_arguments(parser: argparse.ArgumentParser, operating_point_flag: bool = True,
                         threads: bool = True, model: bool = True) -> None:
    """Declare ``--params``, ``--set`` and the shortcut flags (all unset by default)."""
    group = parser.add_argument_group('configuration (evs_ros.config; defaults < --params < '
                                      '--set < shortcuts)')
    group.add_argument('--params', '--config', dest='params', metavar='YAML',
                       help='ROS-style params file, e.g. config/evs.yaml (every setting)')
    group.add_argument('--set', dest='settings', action='append', default=[],
                       metavar='KEY=VALUE', help='one setting, e.g. --set flow.scale=0.5 '
                       '(repeatable; names as in config/evs.yaml)')
    if model:
        group.add_argument('--backend', metavar='SPEC',
                           help=f'network SPEC (model.backend): {spec_usage()}')
        group.add_argument('--refiner', metavar='CKPT', help="Refiner checkpoint, 'default' "
                           "(shipped) or '' / none (no Refiner)")
        group.add_argument('--device', choices=('auto', 'cpu', 'cuda'), help='model.device')
        group.add_argument('--engine', choices=ENGINES, help='model.engine: auto (OpenVINO on a '
                           'CPU, TensorRT or torch CUDA on NVIDIA), torch (the reference), '
                           'openvino, onnxruntime or tensorrt')
    if operating_point_flag:
        group.add_argument('--operating-point', metavar='NAME',
                           help='operating_point.preset: EVS01..EVS14, ADAPTIVE or PERFRAME')
    if threads:
        group.add_argument('--flow-threads', type=int, metavar='N',
                           help='runtime.flow_threads (cv2.setNumThreads)')
        group.add_argument('--inference-threads', type=int, metavar='N',
                           help='runtime.inference_threads (torch.set_num_threads)')
        group.add_argument('--no-tune-allocator', dest='tune_allocator', action='store_false',
                           help='keep glibc malloc defaults (see evs_ros.pipeline.allocator)')


def parse_settings(items: Sequence[str]) -> Dict[str, str]:
    """``['flow.scale=0.5', ...]`` -> ``{'flow.scale': '0.5'}``; ValueError naming the format."""
    settings = {}
    for item in items or ():
        key, sep, value = item.partition('=')
        if not sep or not key.strip():
            raise ValueError(f'--set {item!r} is not KEY=VALUE, e.g. --set flow.scale=0.5')
        settings[key.strip()] = value.strip()
    return settings


def explicit_settings(args: argparse.Namespace) -> Dict[str, object]:
    """Return the dotted settings given on the command line: ``--set`` then the shortcut flags."""
    values: Dict[str, object] = dict(parse_settings(getattr(args, 'settings', ())))
    for flag, name in SHORTCUTS.items():
        value = getattr(args, flag, None)
        if value is not None:
            values[name] = value
    if str(values.get('model.refiner', 'x')).lower() in ('', 'none', "''"):
        values['model.refiner'] = ''
    return values


def build_config(args: argparse.Namespace) -> EvsConfig:
    """Return the typed config from ``--params``, ``--set`` and the shortcut flags, in order."""
    base = load_yaml(args.params) if getattr(args, 'params', None) else EvsConfig()
    return config_from_flat(explicit_settings(args), base)


def apply_threads(config: EvsConfig, tune_allocator: bool = True) -> None:
    """Apply the thread counts of ``config.runtime`` and the allocator settings to this process.

    For an offline command; torch's threads only once a backend imported it.
    """
    import cv2

    from evs_ros.pipeline.allocator import tune_allocator as tune
    if tune_allocator:
        tune()
    cv2.setNumThreads(config.runtime.flow_threads)
    if 'torch' in sys.modules:
        sys.modules['torch'].set_num_threads(config.runtime.inference_threads)


def parse_operating_points(names: Optional[Sequence[str]]) -> List[OperatingPoint]:
    """Preset names (``EVS05``, ``evs5``, ``ADAPTIVE``, ``PERFRAME``; 'all' = every preset).

    ``NAME@T`` is the preset with ``adaptive_threshold`` T (e.g. ``ADAPTIVE@0.03``), so one run
    can sweep the adaptive policy's threshold. Comma lists are accepted.
    """
    if not names or [n.lower() for n in names] == ['all']:
        return list(OPERATING_POINTS.values())
    items = [item.strip() for name in names for item in name.split(',') if item.strip()]
    return [_operating_point_with_threshold(item) for item in items]


def with_explicit_fields(ops: Sequence[OperatingPoint], settings: Dict[str, object]
                         ) -> List[OperatingPoint]:
    """Return each preset of a sweep with the explicit ``operating_point.FIELD`` values on top.

    ``--set operating_point.downscale=0.5`` applies to every listed preset, as it does to the one
    preset of a single run; ValueError naming a bad value.
    """
    fields = {name: value for name, value in settings.items()
              if name.startswith('operating_point.')
              and name not in ('operating_point.preset', 'operating_point.name')}
    if not fields:
        return list(ops)
    return [config_from_flat(fields, replace(EvsConfig(), operating_point=op)).operating_point
            for op in ops]


def _operating_point_with_threshold(text: str) -> OperatingPoint:
    name, _, threshold = text.partition('@')
    op = operating_point(name)
    if not threshold:
        return op
    if not op.adaptive:
        raise ValueError(f'{text!r}: @THRESHOLD only applies to adaptive operating points '
                         '(ADAPTIVE)')
    try:
        value = float(threshold)
    except ValueError:
        raise ValueError(f'{text!r}: threshold {threshold!r} is not a number '
                         '(e.g. ADAPTIVE@0.03)') from None
    return replace(op, name=f'{op.name}@{threshold}', adaptive_threshold=value)


def parse_size(text: Optional[str], order: str = 'wh', minimum: int = 16
               ) -> Optional[Tuple[int, int]]:
    """'2048x1024' -> (2048, 1024) (``order='wh'``; 'hw' reads HEIGHTxWIDTH); None for ''."""
    if not text:
        return None
    first, _, second = text.strip().lower().partition('x')
    names = 'WIDTHxHEIGHT' if order == 'wh' else 'HEIGHTxWIDTH'
    if not (first.isdigit() and second.isdigit()) or min(int(first), int(second)) < minimum:
        raise ValueError(f'size {text!r} is not {names} (each >= {minimum}), e.g. '
                         f'{"2048x1024" if order == "wh" else "1024x2048"}')
    return int(first), int(second)


def parse_sizes(text: str, order: str = 'wh') -> List[Tuple[int, int]]:
    """Comma list of sizes, e.g. '2048x1024,1024x512'."""
    return [parse_size(item, order) for item in text.split(',') if item.strip()]


def write_json(path: str, data) -> None:
    """Write ``data`` as indented JSON, creating the directory; NaN and infinity become null."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as stream:
        json.dump(json_safe(data), stream, indent=2, allow_nan=False)
        stream.write('\n')


def write_text(path: str, text: str) -> None:
    """Write ``text`` (a markdown report), creating the directory."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as stream:
        stream.write(text if text.endswith('\n') else text + '\n')


def cpu_model() -> str:
    """Return the CPU's model name from /proc/cpuinfo (else platform.processor())."""
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as info:
            for line in info:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown CPU'


def hardware_info(model=None) -> Dict[str, object]:
    """CPU, cores, load, library versions, thread counts and the network's device (if any).

    What absolute times in a report must be read against.
    """
    import cv2
    import numpy
    info = {'cpu': cpu_model(), 'cores': os.cpu_count(), 'machine': platform.machine(),
            'python': platform.python_version(), 'numpy': numpy.__version__,
            'opencv': cv2.__version__, 'opencv_threads': cv2.getNumThreads(), 'torch': None,
            'torch_threads': None, 'device': str(getattr(model, 'device', 'cpu')), 'gpu': None,
            'load_average_1min': round(os.getloadavg()[0], 2) if hasattr(os, 'getloadavg')
            else None}
    torch = sys.modules.get('torch')
    if torch is not None:
        info.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
        if torch.cuda.is_available():
            info['gpu'] = torch.cuda.get_device_name(0)
    return info


def hardware_line(info: Dict[str, object]) -> str:
    """'AMD EPYC ..., 2 cores (GPU name)' for markdown headers."""
    gpu = f", GPU {info['gpu']}" if info.get('gpu') else ''
    return f"{info['cpu']}, {info['cores']} cores{gpu}"


def fail(command: str, error: BaseException) -> int:
    """Print ``evs COMMAND: error: ...`` (one line) and return exit code 2."""
    print(f'evs {command}: error: {errors.one_line(error)}', file=sys.stderr)
    return 2


def add_snippet_arguments(parser: argparse.ArgumentParser) -> None:
    """--data/--split (Cityscapes layout) or --synth-snippets (rendered on the fly)."""
    group = parser.add_argument_group('snippets')
    group.add_argument('--data', metavar='ROOT',
                       help='Cityscapes-layout dataset root (leftImg8bit_sequence + gtFine), '
                            'camvid:ROOT (CamVid, every frame labelled; scored in its 11 classes)'
                            ', video:DIR (snippets as CITY_SEQ_FIRST.mp4 + the annotated '
                            "frame's gtFine file), images:DIR (single labelled frames) or "
                            'clips:VIDEO[,VIDEO|DIR...] (unlabelled: agreement with the '
                            'per-frame network)')
    group.add_argument('--split', default='val', help='split of --data (default: %(default)s)')
    group.add_argument('--synth-snippets', type=int, metavar='N',
                       help="render N held-out synthetic snippets (split 'test') on the fly")
    group.add_argument('--synth-seed', type=int, default=0,
                       help='base seed of the synthetic snippets (default: %(default)s)')
    group.add_argument('--max-snippets', type=int, metavar='N', help='use at most N snippets')
    group.add_argument('--resolution', metavar='WxH',
                       help='resize frames (and labels) to WIDTHxHEIGHT')


def add_operating_points_argument(parser: argparse.ArgumentParser) -> None:
    """``--operating-points`` (several presets, NAME@T sweeps; default: all)."""
    parser.add_argument('--operating-points', nargs='+', metavar='NAME',
                        help='presets to evaluate, e.g. EVS03 EVS07 ADAPTIVE ADAPTIVE@0.03 '
                             '(NAME@T: adaptive threshold T; default: all; the per-frame '
                             'baseline PERFRAME is always included)')


def run_evaluation(args: argparse.Namespace, size_wh, figure_propagations: int,
                   default_synth: int = 0):
    """``evs eval`` and ``evs bench``: returns (report dict, model, config)."""
    from evs_ros.evaluation import evaluate, model_class_names
    from evs_ros.evaluation.snippets import (scoring_for, snippet_source,
                                             with_perframe_labels)
    from evs_ros.models.loading import load_models
    ops = with_explicit_fields(parse_operating_points(args.operating_points),
                               explicit_settings(args))
    config = build_config(args)
    model, refiner = load_models(config.model, any(op.refine for op in ops))
    apply_threads(config, args.tune_allocator)
    snippets, count, described = snippet_source(
        args.data, args.split, args.synth_snippets or default_synth, args.synth_seed,
        args.max_snippets, size_wh)
    if described['kind'] == 'clips':  # the reference: the per-frame network's own labels
        snippets = with_perframe_labels(snippets, model)
    scoring = scoring_for(described['kind'], model_class_names(model))
    with progress_bar(count, 'evaluate', 'snippet') as bar:
        report = evaluate(snippets, model, refiner, ops, config, figure_propagations,
                          progress=lambda snippet: bar.update(1),
                          runtime=getattr(args, 'runtime', False), scoring=scoring,
                          torch_reference=getattr(args, 'torch_reference', False))
    report.update(data=described, backend=config.model.backend,
                  refiner=config.model.refiner if refiner is not None else '',
                  **engine_report(model, refiner))
    return report, model, config


def warm_up_engines(model, refiner, frame_bgr, config: EvsConfig) -> None:
    """Run the network (and the Refiner) once on ``frame_bgr`` at the network input size.

    The size the pipeline gives the network (its input scale times the operating point's D,
    :mod:`evs_ros.pipeline.network_input`), with the inference worker's threads: an engine
    builds (or opens from its cache) the graph of that shape now, not on the first camera frame
    of a measurement.
    """
    import numpy as np
    import torch

    from evs_ros.pipeline.network_input import (input_short_side, network_scale,
                                                resize_for_network)
    scale = network_scale(frame_bgr.shape[:2], config.operating_point.downscale,
                          input_short_side(model))
    image = resize_for_network(frame_bgr, scale)
    previous = torch.get_num_threads()
    torch.set_num_threads(config.runtime.inference_threads)
    try:
        prediction = model.predict(image)
        if refiner is not None:
            refiner.refine(image, np.asarray(prediction.probs, np.float32), prediction.features)
    finally:
        torch.set_num_threads(previous)


def progress_bar(total: int, desc: str, unit: str):
    """Return a tqdm bar, or a silent stand-in where tqdm is not installed (a bare GPU machine)."""
    try:
        from tqdm import tqdm
    except ImportError:
        import contextlib

        class Silent:
            def update(self, count: int = 1) -> None:
                """Nothing to show."""

        return contextlib.nullcontext(Silent())
    return tqdm(total=total, desc=desc, unit=unit)


def engine_report(model, refiner=None) -> Dict[str, object]:
    """Return what runs the networks, for reports.

    ``engine`` (the network's: ``openvino``, ``torch``, ...), its ``precision``, ``refiner_engine``
    and ``engines`` (every engine's version, None when missing).
    """
    from evs_ros.models.engines import engine_versions
    from evs_ros.models.graph import engine_name
    runner = getattr(model, 'runner', None)
    precision = ('fp16' if getattr(model, 'fp16', False) and getattr(runner, 'engine', '') ==
                 'torch' else getattr(runner, 'precision', 'fp32'))
    return {'engine': engine_name(model), 'precision': precision,
            'refiner_engine': engine_name(refiner) if refiner is not None else None,
            'engines': engine_versions()}
