"""``evs export``: write an ICNet checkpoint as TorchScript or ONNX at a fixed input size.

The exported graph and how to load it back: :mod:`evs_ros.models.export`.
"""

from evs_ros.models.export import FORMATS, export_network
from evs_ros.tools import common


def add_arguments(parser) -> None:
    """Declare the options of ``evs export``."""
    parser.add_argument('--backend', required=True,
                        help='icnet:CHECKPOINT, icnet:MODEL.caffemodel or icnet:default')
    parser.add_argument('--format', choices=FORMATS, required=True)
    parser.add_argument('--out', required=True, help='output file (.pt / .onnx)')
    parser.add_argument('--size', default='513x1025', help='network input HxW in pixels')


def run(args) -> int:
    """Export the network; one line on a bad SPEC or size."""
    from evs_ros.models.backends import DEFAULT_ICNET, load_icnet
    kind, _, path = args.backend.partition(':')
    try:
        if kind != 'icnet' or not path:
            raise ValueError(f'only icnet:... backends can be exported, got {args.backend!r}')
        model = load_icnet(DEFAULT_ICNET if path == 'default' else path, device='cpu')
        size = common.parse_size(args.size, order='hw', minimum=2)
    except common.USER_ERRORS as error:
        return common.fail('export', error)
    export_network(model.network, args.out, args.format, size, model.class_names)
    print(f'wrote {args.format} {args.out} (input {size[0]}x{size[1]}, '
          f'{model.num_classes} classes)')
    return 0
