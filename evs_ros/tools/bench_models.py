"""``evs bench models``: cost per frame of the keyframe networks and of their Refiner, per engine.

Networks (``--networks``): ICNet at each ``--widths`` (1.0 = the official size, 0.5 = shipped),
SegFormer-B0..B5 with the published shapes (``evs_ros.models.hf_random``) and ESPNetv2 at width
s = 2.0 / 1.0 (``espnet-s2``, ``espnet-s1``), with random weights (speed does not depend on
them; seeded, so their engine graphs are cached once); or any network a backend SPEC names, with
its real weights (``icnet:default``, ``espnet:PATH``, ``weights:NAME``, ``hf:MODEL``; ``auto`` is
what ``model.backend: auto`` resolves to). ``--sizes`` are network input sizes: a SPEC network
is timed at them whatever its training scale (``model.input_short_side`` scales a camera frame
to the network input before this call). Each network's Refiner is the shipped
architecture (residual head) taking that network's feature channels; its width is ICNet's, or
``--refiner-width`` for the other networks (the default of ``evs train refiner``).

Engines (``--engines``): ``torch`` (eager, the reference), ``openvino``, ``onnxruntime``,
``tensorrt`` and ``auto`` (what ``model.engine: auto`` picks here); not installed ones are skipped
with one line. ``--dynamic`` adds rows with one dynamic-shape graph per network (networks whose
graph has dynamic axes: the hf families) next to the static per-shape graphs the engines use.

Every engine of a (network, size, threads) case times ``predict`` / ``refine`` (numpy in and out,
as the pipeline calls them) in turns, one call each per round, so that load changes on a shared
machine hit them alike. JSON rows carry ``network``, ``engine`` (and ``engine_used``: what ran),
``size``, ``threads``, ``network_ms`` / ``refiner_ms`` (medians), their p90, the speed-up
against torch eager of the same case, and ``build_s`` (export + compile of a new shape). Usage::

    evs bench models --out docs/bench/models.json --networks icnet,segformer-b0,espnet-s2 \
        --engines torch,openvino,onnxruntime,auto
"""

import argparse
import gc
import json
import os
import time
from typing import Callable, Dict, List, Tuple

import numpy as np
import torch

from evs_ros.pipeline.stats import percentiles
from evs_ros.tools import common

NETWORKS = 'icnet,segformer-b0,segformer-b2'
ENGINES = 'torch,openvino,onnxruntime,auto'
NUM_CLASSES = 19
COLUMNS = ('network', 'width', 'input', 'threads', 'engine', 'network ms p50', 'network ms p90',
           'x torch', 'Refiner ms p50', 'Refiner ms p90', 'x torch', 'graph build s')


def _sync(cuda: bool) -> None:
    if cuda:
        torch.cuda.synchronize()


def _time_interleaved(functions: Dict[str, Callable[[], object]], repeats: int, warmup: int,
                      cuda: bool) -> Dict[str, List[float]]:
    """Return the ms of each function, called in turns (one call each per round) after warm-up."""
    for _ in range(warmup):
        for function in functions.values():
            function()
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            _sync(cuda)
            start = time.perf_counter()
            function()
            _sync(cuda)
            times[name].append((time.perf_counter() - start) * 1000.0)
    return times


def _time_ms(function: Callable[[], object], repeats: int, warmup: int,
             cuda: bool) -> List[float]:
    return _time_interleaved({'f': function}, repeats, warmup, cuda)['f']


def build_network(name: str, width_mult: float, device: str, fp16: bool = False):
    """Return (SegmentationModel, parameter count) of ``name``, on torch.

    ``name`` is 'icnet' at ``width_mult``, 'segformer-bN' or 'espnet-sN' (random weights, seed 0,
    19 classes) or a backend SPEC (its own weights); half precision on CUDA with ``fp16``.
    """
    torch.manual_seed(0)
    if is_spec(name):
        return _load_spec(name, device, fp16)
    if name == 'icnet':
        from evs_ros.models.icnet import ICNet, IcnetModel
        network = ICNet(NUM_CLASSES, width_mult, aux_heads=False)
        return IcnetModel(network, device, fp16), _parameters(network)
    if name.startswith('espnet-s'):
        from evs_ros.models.espnet import ESPNetv2, EspnetModel
        network = ESPNetv2(float(name[len('espnet-s'):]), NUM_CLASSES + 1)
        return EspnetModel(network.eval(), device, fp16), _parameters(network)
    from evs_ros.models.hf import HfSegmentationModel, Preprocessing
    from evs_ros.models.hf_random import random_segformer
    network = random_segformer(name)
    return HfSegmentationModel(network, 'segformer', Preprocessing(), device, fp16), \
        _parameters(network)


def is_spec(name: str) -> bool:
    """Tell a backend SPEC (``espnet:PATH``, ``auto``) from a random network's name."""
    return ':' in name or name == 'auto'


def _load_spec(spec: str, device: str, fp16: bool):
    """(SegmentationModel on torch, parameter count) of a backend SPEC, its own weights."""
    from evs_ros.models.backends import load_backend
    from evs_ros.models.loading import resolve_backend_spec
    model = load_backend(resolve_backend_spec(spec), device, fp16)
    if getattr(model, 'runner', None) is None or not hasattr(model, 'device'):
        raise ValueError(f'--networks {spec}: it has no torch graph for the engines to run')
    network = getattr(model, 'network', None)
    return model, (_parameters(network) if network is not None else None)


def build_refiner(channels: int, width_mult: float, device: str, fp16: bool = False,
                  num_classes: int = NUM_CLASSES):
    """Return the shipped Refiner architecture (residual head) with random weights (seed 1).

    For ``channels`` features and ``num_classes`` classes.
    """
    from evs_ros.models.refiner import RefinerNet, TorchRefiner
    torch.manual_seed(1)
    return TorchRefiner(RefinerNet(num_classes, channels, width_mult, residual=True), device,
                        fp16)


def _parameters(network: torch.nn.Module) -> int:
    return int(sum(parameter.numel() for parameter in network.parameters()))


def resolve_engine(engine: str, device_type: str) -> str:
    """Return what ``engine`` runs here ('auto' resolved); ImportError/ValueError if it cannot."""
    from evs_ros.models.engines import choose_engine
    return choose_engine(engine, device_type)[0]


def _on_engine(model, engine: str, device_type: str, precision: str = 'fp32',
               dynamic: bool = False):
    """Return a copy of ``model`` (same network) whose graph runs on ``engine``, ``precision``."""
    import copy
    from evs_ros.models.graph import use_engine
    twin = copy.copy(model)
    use_engine(twin, engine, precision, device_type, dynamic=dynamic)
    return twin


def _build_s(*models) -> float:
    return round(sum(sum(getattr(model.runner, 'built', {}).values()) for model in models), 2)


def _used(model) -> str:
    from evs_ros.models.graph import engine_name
    return engine_name(model)


def bench_network(name: str, width_mult: float, refiner_width: float, size_wh: Tuple[int, int],
                  device: str, repeats: int, warmup: int, batch: int = 1,
                  engines: Tuple[str, ...] = ('torch',), dynamic: bool = False,
                  precisions: Tuple[str, ...] = ('fp32',)) -> List[Dict[str, object]]:
    """One row per engine and precision.

    Latency of ``predict`` of one network and of ``refine`` of its Refiner at (W, H); with
    ``batch`` > 1 also ms per frame of ``batch`` frames in one ``predict_batch`` call (networks
    that have it; runtime.keyframe_batch).
    """
    width, height = size_wh
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    model, parameters = build_network(name, width_mult, device)
    channels = int(model.feature_channels or 0)
    refiner = build_refiner(channels, refiner_width, device, num_classes=int(model.num_classes))
    cuda = model.device.type == 'cuda'
    prediction = model.predict(image)  # the Refiner gets inputs of the real shapes
    cases, aliases = _engine_cases(name, width_mult, refiner_width, model, refiner, device,
                                   engines, precisions, dynamic)
    for _, net, ref in cases.values():  # the first call of a shape builds its graph (untimed)
        net.predict(image)
        ref.refine(image, prediction.probs, prediction.features)
    functions = {}
    for key, (_, net, ref) in cases.items():
        functions[('network', key)] = lambda net=net: net.predict(image)
        functions[('refiner', key)] = lambda ref=ref: ref.refine(
            image, prediction.probs, prediction.features)
    times = _time_interleaved(functions, repeats, warmup, cuda)
    rows = []
    for key, (precision, net, ref) in cases.items():
        row = {'network': name, 'width_mult': width_mult if name == 'icnet' else None,
               'parameters': parameters, 'size': f'{width}x{height}', 'input_wh': [width, height],
               'feature_channels': channels, 'refiner_width_mult': refiner_width,
               'engine': key, 'engine_used': _used(net), 'refiner_engine_used': _used(ref),
               'precision': precision,
               'graphs': 'dynamic' if key.endswith(' dynamic') else 'static',
               'build_s': _build_s(net, ref)}
        for part in ('network', 'refiner'):
            summary = percentiles(times[(part, key)], (50, 90), digits=1)
            row[f'{part}_ms'], row[f'{part}_ms_p90'] = summary['p50'], summary['p90']
        row['refiner_speedup_vs_network'] = round(row['network_ms'] /
                                                  max(row['refiner_ms'], 1e-6), 2)
        if batch > 1 and hasattr(net, 'predict_batch'):
            batch_ms = _time_ms(lambda: net.predict_batch([image] * batch), repeats, warmup,
                                cuda)
            row['batch'] = batch
            row['network_batch_ms_per_frame'] = round(float(np.median(batch_ms)) / batch, 1)
        rows.append(row)
    for label, (target, precision) in aliases.items():  # 'auto': the row of what it runs
        row = dict(next(row for row in rows if row['engine'] == target), engine=label)
        rows.insert(rows.index(next(r for r in rows if r['engine'] == target)) + 1, row)
    _add_speedups(rows)
    del cases, functions
    gc.collect()  # the sessions of big inputs hold gigabytes: free them before the next case
    return rows


def _engine_cases(name, width_mult, refiner_width, model, refiner, device, engines, precisions,
                  dynamic) -> Dict[str, tuple]:
    """(``{label: (precision, network, Refiner)}``, ``{label: (label it repeats, precision)}``).

    Each engine at each precision it runs (others skipped with one line), plus a dynamic-shape
    graph with ``dynamic``; an engine already measured under another name (``auto``) is not timed
    twice (one set of sessions fewer in memory) but reported with that one's times.
    """
    from evs_ros.models.engines import choose_precision
    device_type = model.device.type
    cases, aliases, measured = {}, {}, {}
    for precision in precisions:
        base, base_refiner = model, refiner
        if precision == 'fp16' and device_type == 'cuda':  # torch fp16: half networks
            base = build_network(name, width_mult, device, fp16=True)[0]
            base_refiner = build_refiner(refiner.feature_channels, refiner_width, device, True,
                                         int(refiner.num_classes))
        for engine in engines:
            used = resolve_engine(engine, device_type)
            chosen, note = choose_precision(used, precision, device_type)
            if chosen != precision:
                print(f'evs bench models: skipping {engine} {precision}: {note}', flush=True)
                continue
            label = engine if precision == 'fp32' else f'{engine} {precision}'
            if (used, precision) in measured:
                aliases[label] = (measured[(used, precision)], precision)
                continue
            measured[(used, precision)] = label
            source = base if used == 'torch' else model
            source_refiner = base_refiner if used == 'torch' else refiner
            cases[label] = (precision, _on_engine(source, used, device_type, precision),
                            _on_engine(source_refiner, used, device_type, precision))
            if dynamic and used not in ('torch', 'tensorrt') and getattr(
                    model.runner.module, 'dynamic_axes', None):
                cases[f'{label} dynamic'] = (
                    precision, _on_engine(model, used, device_type, precision, True),
                    _on_engine(refiner, used, device_type, precision))
    return cases, aliases


def _add_speedups(rows: List[Dict[str, object]]) -> None:
    """``network_speedup_vs_torch`` / ``refiner_speedup_vs_torch`` against the torch row."""
    torch_row = next((row for row in rows if row['engine'] == 'torch'), None)  # fp32
    for row in rows:
        for part in ('network', 'refiner'):
            row[f'{part}_speedup_vs_torch'] = (
                None if torch_row is None else
                round(torch_row[f'{part}_ms'] / max(row[f'{part}_ms'], 1e-6), 2))


def parse_networks(text: str) -> List[str]:
    """Parse 'icnet,segformer-b0,espnet-s2' (and SPECs) into names.

    ValueError naming the choices for an unknown one.
    """
    from evs_ros.models.hf_random import segformer_variant
    names = []
    for item in (part.strip() for part in text.split(',') if part.strip()):
        if is_spec(item):
            names.append(item)
            continue
        item = item.lower()
        if item == 'icnet' or item in ('espnet-s2', 'espnet-s1'):
            names.append(item)
        else:
            names.append(f'segformer-{segformer_variant(item)}')
    if not names:
        raise ValueError(f'--networks {text!r} names no network, e.g. {NETWORKS}')
    return names


def parse_precisions(text: str) -> List[str]:
    """'fp32,fp16' -> ['fp32', 'fp16']; ValueError for an unknown name."""
    from evs_ros.config import PRECISIONS
    items = [item.strip().lower() for item in text.split(',') if item.strip()]
    bad = [item for item in items if item not in PRECISIONS or item in ('auto', 'int8')]
    if not items or bad:
        raise ValueError(f'--precisions {text!r}: use fp32, fp16 or bf16 (int8 needs '
                         'calibration frames: evs bench --set model.precision=int8)')
    return items


def parse_engines(text: str, device_type: str) -> List[str]:
    """'torch,openvino,auto' -> the engines that run here (one line for each skipped one).

    ValueError for an unknown name.
    """
    from evs_ros.config import ENGINES as KNOWN
    engines = []
    for item in (part.strip().lower() for part in text.split(',') if part.strip()):
        if item not in KNOWN:
            raise ValueError(f'--engines {text!r}: {item!r} is not one of {", ".join(KNOWN)}')
        try:
            resolve_engine(item, device_type)
        except (ImportError, ValueError) as error:
            print(f'evs bench models: skipping engine {item}: {error}', flush=True)
            continue
        engines.append(item)
    if not engines:
        raise ValueError(f'--engines {text!r}: none of them runs here')
    return engines


def parse_threads(text: str) -> List[int]:
    """'1,2' -> [1, 2]; ValueError naming the format otherwise."""
    items = [item.strip() for item in text.split(',') if item.strip()]
    if not items or not all(item.isdigit() and int(item) > 0 for item in items):
        raise ValueError(f'--threads {text!r} is not a comma list of thread counts, e.g. 1,2')
    return [int(item) for item in items]


def markdown_table(rows: List[Dict[str, object]]) -> List[str]:
    """Return one markdown row per measurement (ms medians and p90s, x torch).

    With a batch column when any row was batched.
    """
    batched = next((row['batch'] for row in rows if 'batch' in row), None)
    columns = COLUMNS + ((f'network ms per frame, {batched} in one call',) if batched else ())
    lines = ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
    for row in rows:
        width = '' if row['width_mult'] is None else row['width_mult']
        engine = (row['engine'] if row['engine'].startswith(row['engine_used'])
                  else row['engine_used'] if row['engine_used'].startswith(row['engine'])
                  else f"{row['engine']} ({row['engine_used']})")
        cells = (_short(row['network']), width, row['size'], row['threads'], engine,
                 row['network_ms'], row['network_ms_p90'], _times(row, 'network'),
                 row['refiner_ms'], row['refiner_ms_p90'], _times(row, 'refiner'),
                 row['build_s'] or '-')
        if batched:
            cells += (row.get('network_batch_ms_per_frame', '-'),)
        lines.append('| ' + ' | '.join(str(cell) for cell in cells) + ' |')
    return lines


def _short(network: str) -> str:
    """Return a network's name for a table: a SPEC's file without its folder."""
    kind, sep, rest = network.partition(':')
    return f'{kind}:{os.path.basename(rest)}' if sep and os.sep in rest else network


def _times(row: Dict[str, object], part: str) -> str:
    speedup = row.get(f'{part}_speedup_vs_torch')
    return '-' if speedup is None else f'{speedup}x'


def write_markdown(report: Dict[str, object], path: str) -> None:
    """Return the table with its hardware line."""
    hardware = report['hardware']
    versions = ', '.join(f'{name} {version}' for name, version in report['engines'].items()
                         if version)
    lines = ['# evs bench models', '',
             f"Hardware: {common.hardware_line(hardware)}, device {hardware['device']}; "
             f'{versions}. Random weights (networks named by a SPEC: their own), '
             f'{NUM_CLASSES} classes; median and p90 of '
             f"{report['repeats']} calls after {report['warmup']} warm-up, the engines of a "
             'case called in turns. x torch: speed-up against torch eager in the same case; '
             'graph build s: export + compile of the shape (network and Refiner, first use '
             'only, cached on disk after).', '',
             *markdown_table(report['rows'])]
    common.write_text(path, '\n'.join(lines))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``evs bench models``."""
    parser.add_argument('--out', default='bench_models.json', help='JSON results')
    parser.add_argument('--markdown', metavar='FILE',
                        help='markdown table (default: --out with .md)')
    parser.add_argument('--networks', default=NETWORKS,
                        help='comma list of icnet, segformer-b0 .. segformer-b5, espnet-s2, '
                             'espnet-s1 (random weights) or backend SPECs with their own '
                             'weights (icnet:default, espnet:PATH, weights:NAME, auto; '
                             'default: %(default)s)')
    parser.add_argument('--engines', default='torch',
                        help='comma list of torch, openvino, onnxruntime, tensorrt, auto '
                             f'(default: %(default)s; all: {ENGINES})')
    parser.add_argument('--dynamic', action='store_true',
                        help='also one dynamic-shape graph per engine (hf networks)')
    parser.add_argument('--precisions', default='fp32',
                        help='comma list of fp32, fp16, bf16 (each engine at each one it runs; '
                             'default: %(default)s)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', default='1,2', help='comma-separated thread counts')
    parser.add_argument('--widths', default='1.0,0.5,0.25', help='ICNet width multipliers')
    parser.add_argument('--refiner-width', type=float, default=0.5,
                        help='width of the Refiner of networks other than ICNet')
    parser.add_argument('--sizes', default='1024x512,2048x1024', help='WxH list')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--batch', type=int, default=1, metavar='N',
                        help='also time N frames in one predict_batch call, ms per frame '
                             '(networks that have it: ICNet; runtime.keyframe_batch)')


def _cases(args: argparse.Namespace):
    """(network, width) pairs in report order: ICNet per width, then the others."""
    widths = [float(width) for width in args.widths.split(',') if width.strip()]
    for name in parse_networks(args.networks):
        for width in (widths if name == 'icnet' else [None]):
            yield name, width


def run(args: argparse.Namespace) -> int:
    """Time every thread count x size x network x engine; write JSON and markdown."""
    from evs_ros.models.engines import engine_versions
    from evs_ros.models.icnet import select_device
    try:
        sizes = common.parse_sizes(args.sizes)
        cases = list(_cases(args))
        threads = parse_threads(args.threads)
        if args.batch < 1:
            raise ValueError(f'--batch {args.batch}: must be at least 1 (frames in one call)')
        engines = parse_engines(args.engines, select_device(args.device).type)
        precisions = parse_precisions(args.precisions)
    except common.USER_ERRORS as error:
        return common.fail('bench models', error)
    rows = []
    for count in threads:
        torch.set_num_threads(count)
        for size_wh in sizes:
            for name, width in cases:
                refiner_width = width if name == 'icnet' else args.refiner_width
                for row in bench_network(name, width or 1.0, refiner_width, size_wh,
                                         args.device, args.repeats, args.warmup, args.batch,
                                         tuple(engines), args.dynamic, tuple(precisions)):
                    row['threads'] = count
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    report = {'hardware': {**common.hardware_info(), 'device': args.device},
              'engines': engine_versions(), 'repeats': args.repeats, 'warmup': args.warmup,
              'rows': rows}
    common.write_json(args.out, report)
    markdown = args.markdown or f'{os.path.splitext(args.out)[0]}.md'
    write_markdown(report, markdown)
    print('\n'.join(markdown_table(rows)))
    print(f'wrote {args.out} and {markdown}')
    return 0
