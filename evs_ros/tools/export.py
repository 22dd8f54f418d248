"""``evs export``: write an ICNet checkpoint as TorchScript or ONNX at a fixed input size.

The exported graph takes ``image`` float32 (1, 3, H, W) BGR in [0, 255], subtracts ICNet's means,
pads to the next 32k+1 size, and returns ``probs`` (1, C, (H-1)//4+1, (W-1)//4+1) softmax and
``features`` (1, Cf, (H-1)//16+1, (W-1)//16+1). Load it back with ``torchscript:FILE`` or
``onnx:FILE`` (``evs_ros/models/backends.py``).
"""

import json
import warnings
from typing import Tuple

import torch
from torch import nn
import torch.nn.functional as F

from evs_ros.models.backends import META_FILE, split_spec
from evs_ros.models.icnet import BGR_MEAN, output_size, padded_size

FORMATS = ('torchscript', 'onnx')
ONNX_OPSET = 17


class ExportWrapper(nn.Module):
    """Raw BGR image -> (probs, features) around an ICNet, for one fixed input size."""

    def __init__(self, network: nn.Module, input_size: Tuple[int, int]):
        super().__init__()
        self.network = network.eval()
        self.input_size = tuple(input_size)
        self.register_buffer('mean', torch.tensor(BGR_MEAN, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor):
        """image float32 (1, 3, H, W) BGR [0, 255] -> probs (1, C, h, w), features (1, Cf, ...)."""
        height, width = self.input_size
        data = F.pad(image - self.mean, (0, padded_size(width) - width,
                                         0, padded_size(height) - height))
        out = self.network(data)
        probs = torch.softmax(out['logits'], dim=1)
        probs = probs[:, :, :output_size(height, 4), :output_size(width, 4)]
        features = out['features'][:, :, :output_size(height, 16), :output_size(width, 16)]
        return probs, features


def parse_size(text: str) -> Tuple[int, int]:
    """'HxW' -> (H, W) in pixels."""
    try:
        height, width = (int(part) for part in text.lower().split('x'))
    except ValueError:
        raise ValueError(f'--size {text!r} must look like HxW, e.g. 512x1024') from None
    if height < 2 or width < 2:
        raise ValueError(f'--size {text!r} is too small')
    return height, width


def export_network(network: nn.Module, out_path: str, fmt: str, input_size: Tuple[int, int],
                   class_names=None) -> None:
    """Export an ICNet (CPU, float32) to ``out_path`` as ``fmt`` ('torchscript' | 'onnx')."""
    if fmt not in FORMATS:
        raise ValueError(f'format {fmt!r}; expected one of {FORMATS}')
    wrapper = ExportWrapper(network.cpu().float(), input_size).eval()
    example = torch.zeros((1, 3) + tuple(input_size))
    with warnings.catch_warnings():  # tracer warnings about sizes baked in: intended here
        warnings.simplefilter('ignore')
        _export(wrapper, example, out_path, fmt, class_names)


def _export(wrapper: ExportWrapper, example: torch.Tensor, out_path: str, fmt: str,
            class_names) -> None:
    network, input_size = wrapper.network, wrapper.input_size
    if fmt == 'torchscript':
        with torch.no_grad():
            traced = torch.jit.trace(wrapper, example, check_trace=False)
        meta = {'input_size': list(input_size), 'num_classes': int(network.num_classes),
                'class_names': list(class_names or [])}
        torch.jit.save(traced, out_path, _extra_files={META_FILE: json.dumps(meta)})
        return
    torch.onnx.export(wrapper, (example,), out_path, input_names=['image'],
                      output_names=['probs', 'features'], opset_version=ONNX_OPSET,
                      dynamo=False, do_constant_folding=True)


def add_arguments(parser) -> None:
    parser.add_argument('--backend', required=True,
                        help='icnet:CHECKPOINT, icnet:MODEL.caffemodel or icnet:default')
    parser.add_argument('--format', choices=FORMATS, required=True)
    parser.add_argument('--out', required=True, help='output file (.pt / .onnx)')
    parser.add_argument('--size', default='513x1025', help='network input HxW in pixels')


def run(args) -> int:
    kind, _ = split_spec(args.backend)
    if kind != 'icnet':
        raise SystemExit(f'evs export: only icnet:... backends can be exported, got {kind!r}')
    from evs_ros.models.backends import load_icnet, DEFAULT_ICNET
    path = args.backend.split(':', 1)[1]
    model = load_icnet(DEFAULT_ICNET if path == 'default' else path, device='cpu')
    size = parse_size(args.size)
    export_network(model.network, args.out, args.format, size, model.class_names)
    print(f'wrote {args.format} {args.out} (input {size[0]}x{size[1]}, '
          f'{model.num_classes} classes)')
    return 0
