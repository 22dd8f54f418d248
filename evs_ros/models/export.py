"""Export an ICNet as TorchScript or ONNX at a fixed input size (``evs export``).

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

from evs_ros.models.backends import META_FILE
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
        """Map image float32 (1, 3, H, W) BGR [0, 255] to probs (1, C, h, w), features."""
        height, width = self.input_size
        data = F.pad(image - self.mean, (0, padded_size(width) - width,
                                         0, padded_size(height) - height))
        out = self.network(data)
        probs = torch.softmax(out['logits'], dim=1)
        probs = probs[:, :, :output_size(height, 4), :output_size(width, 4)]
        features = out['features'][:, :, :output_size(height, 16), :output_size(width, 16)]
        return probs, features


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
