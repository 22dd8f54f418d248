"""``evs convert caffe IN.caffemodel OUT.pt``: official ICNet Caffe weights -> evs_ros checkpoint.

Reads the caffemodel without Caffe (``evs_ros/models/caffe.py``), supports the ``bnnomerge``
(separate BN layers) and ``merged`` (BN folded into conv bias) variants, and writes a checkpoint
that ``icnet:OUT.pt`` loads.
"""

import hashlib
import os

from evs_ros.models.caffe import VARIANTS, CaffeFormatError, icnet_from_caffemodel
from evs_ros.models.checkpoint import save_checkpoint

OFFICIAL_MD5 = {'6da59a72a254862106420983a7723624':
                'icnet_cityscapes_train_30k_bnnomerge.caffemodel'}


def file_md5(path: str) -> str:
    """Hex md5 of a file, read in 1 MiB chunks."""
    digest = hashlib.md5()
    with open(path, 'rb') as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def convert_caffe(in_path: str, out_path: str, variant: str = 'auto') -> str:
    """Convert ``in_path`` to an evs_ros checkpoint at ``out_path``; returns the variant used."""
    network, used_variant = icnet_from_caffemodel(in_path, variant)
    md5 = file_md5(in_path)
    meta = {'source': os.path.basename(in_path), 'source_md5': md5, 'caffe_variant': used_variant,
            'official': OFFICIAL_MD5.get(md5, '')}
    config = {'num_classes': network.num_classes, 'width_mult': 1.0,
              'aux_heads': network.sub4_out is not None}
    save_checkpoint(out_path, 'icnet', config, network, meta=meta)
    return used_variant


def add_arguments(parser) -> None:
    parser.add_argument('source', choices=['caffe'], help='weights format to convert from')
    parser.add_argument('input', help='ICNet .caffemodel')
    parser.add_argument('output', help='evs_ros checkpoint to write (.pt)')
    parser.add_argument('--variant', choices=VARIANTS, default='auto',
                        help='bnnomerge = separate BN layers, merged = BN folded into biases')


def run(args) -> int:
    if not os.path.isfile(args.input):
        print(f'evs convert: {args.input!r} does not exist')
        return 1
    try:
        variant = convert_caffe(args.input, args.output, args.variant)
    except CaffeFormatError as error:
        print(f'evs convert: {error}')
        return 1
    print(f'wrote {args.output} ({variant} Caffe weights; use --backend icnet:{args.output})')
    return 0
