"""``evs convert caffe IN.caffemodel OUT.pt``: official ICNet Caffe weights -> evs_ros checkpoint.

Reads the caffemodel without Caffe (:mod:`evs_ros.models.caffe`), supports the ``bnnomerge``
(separate BN layers) and ``merged`` (BN folded into conv bias) variants, and writes a checkpoint
that ``icnet:OUT.pt`` loads. ``evs weights get icnet-cityscapes`` downloads and converts the
official file in one step.
"""

import os

from evs_ros.models.caffe import VARIANTS, CaffeFormatError, convert_caffe
from evs_ros.tools import common


def add_arguments(parser) -> None:
    """Declare the options of ``evs convert``."""
    parser.add_argument('source', choices=['caffe'], help='weights format to convert from')
    parser.add_argument('input', help='ICNet .caffemodel')
    parser.add_argument('output', help='evs_ros checkpoint to write (.pt)')
    parser.add_argument('--variant', choices=VARIANTS, default='auto',
                        help='bnnomerge = separate BN layers, merged = BN folded into biases')


def run(args) -> int:
    """Convert; one line and exit code 2 on a missing or malformed file."""
    try:
        if not os.path.isfile(args.input):
            raise FileNotFoundError(f'{args.input!r} does not exist')
        variant = convert_caffe(args.input, args.output, args.variant)
    except (CaffeFormatError,) + common.USER_ERRORS as error:
        return common.fail('convert', error)
    print(f'wrote {args.output} ({variant} Caffe weights; use --backend icnet:{args.output})')
    return 0
