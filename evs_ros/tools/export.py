"""``evs export``.

Write an ICNet checkpoint as TorchScript or ONNX at a fixed input size, or build the engine graphs
of any network ahead of time.

- ``--format torchscript|onnx --out FILE``: the exported graph and how to load it back:
  :mod:`evs_ros.models.export` (ICNet checkpoints).
- ``--format engine``: builds (or finds) the graphs that ``model.engine`` runs for the network
  and its Refiner for each camera ``--size`` at each ``--downscale`` D in the engines cache
  (``evs_ros/models/engine_cache.py``), with ``runtime.inference_threads`` threads. The frames
  the network sees are the pipeline's (:mod:`evs_ros.pipeline.network_input`): the camera frame
  scaled to ``model.input_short_side`` (the network's training scale by default) times D, cut
  into windows with ``model.window``. The node's warm-up opens these, so even its first camera
  frame at that size runs on the engine (deployment: run it once per camera resolution and
  operating point D).
"""

from evs_ros.models.export import FORMATS
from evs_ros.tools import common


def add_arguments(parser) -> None:
    """Declare the options of ``evs export``."""
    parser.add_argument('--format', choices=FORMATS + ('engine',), required=True,
                        help='torchscript or onnx (a file, ICNet), or engine (the engine '
                             'graphs of model.engine, into the engines cache)')
    parser.add_argument('--out', help='output file (.pt / .onnx; not for --format engine)')
    parser.add_argument('--size', default='513x1025',
                        help='network input HxW in pixels; --format engine: camera frame HxW, '
                             'a comma list')
    parser.add_argument('--downscale', default='1.0',
                        help='--format engine: operating point D values, a comma list (the '
                             'network input is the camera frame at its scale times D)')
    common.add_config_arguments(parser, operating_point_flag=False, threads=False)


def run(args) -> int:
    """Export the network or build its engine graphs; one line on a bad SPEC or size."""
    try:
        config = common.build_config(args)
        sizes = [common.parse_size(item, order='hw', minimum=2)
                 for item in args.size.split(',') if item.strip()]
        if not sizes:
            raise ValueError(f'--size {args.size!r} names no HxW')
        if args.format == 'engine':
            return _build_engine_graphs(config, sizes, _downscales(args.downscale))
        if not args.out:
            raise ValueError(f'--format {args.format} needs --out FILE')
        return _export_file(config.model.backend, args.format, args.out, sizes[0])
    except common.USER_ERRORS as error:
        return common.fail('export', error)


def _export_file(backend: str, fmt: str, out: str, size) -> int:
    from evs_ros.models.backends import DEFAULT_ICNET, load_icnet
    from evs_ros.models.export import export_network
    kind, _, path = backend.partition(':')
    if kind != 'icnet' or not path:
        raise ValueError(f'only icnet:... backends can be exported to a file, got {backend!r} '
                         '(--format engine builds the engine graphs of any network)')
    model = load_icnet(DEFAULT_ICNET if path == 'default' else path, device='cpu')
    export_network(model.network, out, fmt, size, model.class_names)
    print(f'wrote {fmt} {out} (input {size[0]}x{size[1]}, {model.num_classes} classes)')
    return 0


def _downscales(text: str):
    """'1.0,0.5' -> [1.0, 0.5]; ValueError unless each is in (0, 1]."""
    try:
        values = [float(item) for item in text.split(',') if item.strip()]
    except ValueError:
        values = []
    if not values or not all(0.0 < value <= 1.0 for value in values):
        raise ValueError(f'--downscale {text!r}: a comma list of D values in (0, 1], e.g. 1.0,0.5')
    return values


def _build_engine_graphs(config, sizes, downscales=(1.0,)) -> int:
    import numpy as np
    import torch

    from evs_ros.models.graph import engine_name, engine_runners
    from evs_ros.models.loading import load_models
    from evs_ros.pipeline.network_input import input_short_side, network_scale, scaled_hw
    model, refiner = load_models(config.model, bool(config.model.refiner))
    runners = engine_runners(model, refiner)
    if not runners:
        print(f'evs export: {config.model.backend} runs on {engine_name(model)}: no engine '
              'graph to build')
        return 0
    torch.set_num_threads(config.runtime.inference_threads)
    for camera_hw in sizes:
        for downscale in downscales:
            scale = network_scale(camera_hw, downscale, input_short_side(model))
            image = np.zeros(scaled_hw(camera_hw, scale) + (3,), np.uint8)
            prediction = model.predict(image)
            if refiner is not None:
                refiner.refine(image, prediction.probs, prediction.features)
    failed = [runner for runner in runners if runner.failure]
    for runner in runners:
        state = f'failed: {runner.failure}' if runner.failure else ', '.join(
            f'{shape} ({seconds} s)' for shape, seconds in runner.built.items())
        print(f'{runner.graph_name} on {runner.engine} {runner.precision}: {state}; cache '
              f'{runner.folder}')
    return 2 if failed else 0
