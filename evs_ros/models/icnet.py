"""ICNet (Zhao et al., ECCV 2018), the keyframe network of EVS (paper §3.2, §4.3.2).

The topology follows the official Cityscapes deploy prototxt layer by layer
(``reference/icnet/icnet_cityscapes_bnnomerge.prototxt``): a half-width dilated ResNet-50 trunk at
1/2 resolution (``conv1_1_3x3_s2`` .. ``conv3_1``), shrunk again by 2 (``conv3_1_sub4``) for the
dilated ``conv3_2`` .. ``conv5_3`` at 1/32, a pyramid pooling module whose bins are SUMMED with
``conv5_3``, two cascade feature fusion units (``sub24_sum``, ``sub12_sum``) and the light
full-resolution branch ``conv1_sub1`` .. ``conv3_sub1``. Module attribute names are the prototxt
layer names where possible; ``prototxt_name_map()`` maps every ConvBN/Conv module path to its
Caffe layer name for the weight loader (``evs_ros/models/caffe.py``).

Caffe Interp = ``F.interpolate(mode='bilinear', align_corners=True)``; its size rules are
shrink ``(n - 1) // s + 1`` and zoom ``(n - 1) * z + 1``. For inputs of size 32k+1 (like the
official 1025x2049) every fused pair has equal sizes exactly as in Caffe; for other sizes the
upsampled tensor is interpolated to its partner's size. Output pixel ``i`` of the 1/4 logits sits
on input pixel ``4 i`` (align-corners geometry); the features F (``conv3_1``) sit on ``16 i``.
"""

import math
from typing import Dict, Optional, Tuple

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

# Caffe's mean over BGR channels; inputs are BGR minus these means, not divided by 255.
BGR_MEAN = (103.939, 116.779, 123.68)
PYRAMID_BINS = (1, 2, 3, 6)
# Pooling geometry of the deploy prototxt for conv5_3 of size 33x65 (input 1025x2049):
# bins -> (kernel_h, kernel_w, stride_h, stride_w).
DEPLOY_POOL_GEOMETRY = {1: (33, 65, 33, 65), 2: (17, 33, 16, 32), 3: (13, 25, 10, 20),
                        6: (8, 15, 5, 10)}
DEPLOY_POOL_INPUT = (33, 65)
# Bottleneck layout of the trunk: (stage, blocks, mid channels, out channels, dilation).
TRUNK_STAGES = ((2, 3, 32, 128, 1), (3, 4, 64, 256, 1), (4, 6, 128, 512, 2),
                (5, 3, 256, 1024, 4))


def scaled_channels(channels: int, width_mult: float) -> int:
    """Channels of a reduced-width variant: ``channels * width_mult`` rounded to 8 (min 8)."""
    return max(8, int(round(channels * width_mult / 8.0)) * 8)


def caffe_shrink(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Caffe Interp with ``shrink_factor``: size ``(n - 1) // factor + 1``, align_corners."""
    height, width = x.shape[-2:]
    size = ((height - 1) // factor + 1, (width - 1) // factor + 1)
    return F.interpolate(x, size=size, mode='bilinear', align_corners=True)


def caffe_zoom(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Caffe Interp with ``zoom_factor``: size ``(n - 1) * factor + 1``, align_corners."""
    height, width = x.shape[-2:]
    size = ((height - 1) * factor + 1, (width - 1) * factor + 1)
    return F.interpolate(x, size=size, mode='bilinear', align_corners=True)


def resize_to(x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Caffe Interp with explicit ``height``/``width`` (align_corners); no-op when equal."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode='bilinear', align_corners=True)


class ConvBN(nn.Sequential):
    """Caffe ``Convolution`` (no bias) + ``BN`` (+ ``ReLU`` when ``relu``): one prototxt unit."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1,
                 dilation: int = 1, relu: bool = True):
        padding = dilation * (kernel - 1) // 2
        layers = [nn.Conv2d(in_ch, out_ch, kernel, stride, padding, dilation, bias=False),
                  nn.BatchNorm2d(out_ch, eps=1e-5)]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class Bottleneck(nn.Module):
    """ResNet bottleneck ``convS_B_1x1_reduce`` -> ``_3x3`` -> ``_1x1_increase`` (+ ``_1x1_proj``).

    Like the prototxt, the stride sits on the 1x1 reduce conv and the sum is followed by a ReLU.
    """

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int, stride: int = 1,
                 dilation: int = 1, project: bool = False):
        super().__init__()
        self.reduce = ConvBN(in_ch, mid_ch, 1, stride)             # convS_B_1x1_reduce
        self.conv3x3 = ConvBN(mid_ch, mid_ch, 3, 1, dilation)      # convS_B_3x3
        self.increase = ConvBN(mid_ch, out_ch, 1, relu=False)      # convS_B_1x1_increase
        self.proj = ConvBN(in_ch, out_ch, 1, stride, relu=False) if project else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.proj is None else self.proj(x)
        return F.relu(shortcut + self.increase(self.conv3x3(self.reduce(x))))


def pool_geometry(size: int, bins: int) -> Tuple[int, int]:
    """Average-pool (kernel, stride) giving exactly ``bins`` cells over ``size`` pixels.

    Heights follow the deploy prototxt (33 -> k/s 33/33, 17/16, 13/10, 8/5): stride
    ``(size - 1) // bins`` and the kernel covering the rest. Sizes below ``bins`` get (1, 1), i.e.
    ``size`` cells, which is what adaptive pooling would give (and it still exports to ONNX).
    """
    if bins == 1:
        return size, size
    if size < bins:
        return 1, 1
    stride = max(1, (size - 1) // bins)
    return size - (bins - 1) * stride, stride


class PyramidPoolingSum(nn.Module):
    """``conv5_3_pool{1,2,3,6}`` + ``_interp`` summed with ``conv5_3`` (``conv5_3_sum``).

    Pool kernels are fixed ints computed from the feature size (the deploy values at 33x65), so a
    traced/exported model uses plain AvgPool like the prototxt.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = int(x.shape[-2]), int(x.shape[-1])
        out = x
        for bins in PYRAMID_BINS:
            out = out + resize_to(self._pool(x, bins, height, width), (height, width))
        return out

    @staticmethod
    def _pool(x: torch.Tensor, bins: int, height: int, width: int) -> torch.Tensor:
        if (height, width) == DEPLOY_POOL_INPUT:
            kernel_h, kernel_w, stride_h, stride_w = DEPLOY_POOL_GEOMETRY[bins]
            return F.avg_pool2d(x, (kernel_h, kernel_w), (stride_h, stride_w))
        geom_h, geom_w = pool_geometry(height, bins), pool_geometry(width, bins)
        return F.avg_pool2d(x, (geom_h[0], geom_w[0]), (geom_h[1], geom_w[1]))


class CascadeFeatureFusion(nn.Module):
    """CFF unit (ICNet §3.3): dilated 3x3 on the upsampled coarse map + 1x1 projection, sum, ReLU.

    The x2 upsampling (``conv5_4_interp`` / ``sub24_sum_interp``) happens in the caller because its
    output also feeds the auxiliary ``sub4_out`` / ``sub24_out`` heads.
    """

    def __init__(self, coarse_ch: int, fine_ch: int, out_ch: int):
        super().__init__()
        self.conv_coarse = ConvBN(coarse_ch, out_ch, 3, 1, 2, relu=False)  # conv_sub4 / conv_sub2
        self.proj_fine = ConvBN(fine_ch, out_ch, 1, relu=False)  # conv3_1_sub2_proj / _sub1_proj

    def forward(self, coarse_up: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        coarse_up = resize_to(coarse_up, fine.shape[-2:])
        return F.relu(self.proj_fine(fine) + self.conv_coarse(coarse_up))


class ICNet(nn.Module):
    """ICNet for Cityscapes-style semantic segmentation (deploy prototxt topology).

    Args:
        num_classes: output classes of ``conv6_cls`` (19 for Cityscapes trainIds).
        width_mult: channel multiplier; 1.0 = the official network, 0.25-0.5 = the reduced-width
            CPU variants (same topology, every hidden width scaled and rounded to 8).
        aux_heads: build ``sub4_out`` / ``sub24_out`` (cascade label guidance, training only).
    """

    def __init__(self, num_classes: int = 19, width_mult: float = 1.0, aux_heads: bool = True):
        super().__init__()
        if num_classes < 1 or width_mult <= 0:
            raise ValueError(f'ICNet needs num_classes >= 1 and width_mult > 0, got '
                             f'{num_classes}, {width_mult}')
        self.num_classes = num_classes
        self.width_mult = width_mult

        def ch(channels: int) -> int:
            return scaled_channels(channels, width_mult)

        self.conv1_1_3x3_s2 = ConvBN(3, ch(32), 3, 2)
        self.conv1_2_3x3 = ConvBN(ch(32), ch(32), 3)
        self.conv1_3_3x3 = ConvBN(ch(32), ch(64), 3)
        in_ch = ch(64)
        for stage, blocks, mid, out, dilation in TRUNK_STAGES:
            for block in range(1, blocks + 1):
                stride = 2 if (stage, block) == (3, 1) else 1
                setattr(self, f'conv{stage}_{block}',
                        Bottleneck(in_ch, ch(mid), ch(out), stride, dilation, project=block == 1))
                in_ch = ch(out)
        self.feature_channels = ch(256)  # conv3_1, the low-level features F of the Refiner
        self.pyramid = PyramidPoolingSum()  # conv5_3_pool* + conv5_3_sum
        self.conv5_4_k1 = ConvBN(ch(1024), ch(256), 1)
        self.cff_sub24 = CascadeFeatureFusion(ch(256), ch(256), ch(128))
        self.conv1_sub1 = ConvBN(3, ch(32), 3, 2)
        self.conv2_sub1 = ConvBN(ch(32), ch(32), 3, 2)
        self.conv3_sub1 = ConvBN(ch(32), ch(64), 3, 2)
        self.cff_sub12 = CascadeFeatureFusion(ch(128), ch(64), ch(128))
        self.conv6_cls = nn.Conv2d(ch(128), num_classes, 1)
        self.sub4_out = nn.Conv2d(ch(256), num_classes, 1) if aux_heads else None
        self.sub24_out = nn.Conv2d(ch(128), num_classes, 1) if aux_heads else None

    def trunk_half(self, data_sub2: torch.Tensor) -> torch.Tensor:
        """1/2-resolution branch up to ``conv3_1``: (N,3,h,w) -> F (N,Cf,~h/8,~w/8)."""
        x = self.conv1_3_3x3(self.conv1_2_3x3(self.conv1_1_3x3_s2(data_sub2)))
        x = F.max_pool2d(x, 3, 2, 1, ceil_mode=True)  # pool1_3x3_s2 (Caffe rounds up)
        for block in range(1, 4):
            x = getattr(self, f'conv2_{block}')(x)
        return self.conv3_1(x)

    def trunk_quarter(self, conv3_1: torch.Tensor) -> torch.Tensor:
        """``conv3_1_sub4`` .. ``conv5_4_k1`` at 1/32 of the input."""
        x = caffe_shrink(conv3_1, 2)  # conv3_1_sub4
        for stage, blocks, _, _, _ in TRUNK_STAGES[1:]:
            for block in range(2 if stage == 3 else 1, blocks + 1):
                x = getattr(self, f'conv{stage}_{block}')(x)
        return self.conv5_4_k1(self.pyramid(x))

    def forward(self, data: torch.Tensor, return_aux: bool = False) -> Dict[str, torch.Tensor]:
        """Run the cascade.

        Args:
            data: float (N, 3, H, W) BGR minus ``BGR_MEAN`` (Caffe ``data`` / ``data_sub1``).
            return_aux: also return the cascade-label-guidance logits.

        Returns:
            dict with ``logits`` (N, C, ~H/4, ~W/4) (``conv6_cls``), ``features`` F =
            ``conv3_1`` (N, Cf, ~H/16, ~W/16) and, with ``return_aux``, ``logits_sub4``
            (N, C, ~H/16, ~W/16) and ``logits_sub24`` (N, C, ~H/8, ~W/8).
        """
        conv3_1 = self.trunk_half(caffe_shrink(data, 2))  # data_sub2 -> conv3_1
        conv5_4 = self.trunk_quarter(conv3_1)
        conv5_4_interp = resize_to(caffe_zoom(conv5_4, 2), conv3_1.shape[-2:])
        sub24_sum = self.cff_sub24(conv5_4_interp, conv3_1)
        conv3_sub1 = self.conv3_sub1(self.conv2_sub1(self.conv1_sub1(data)))
        sub24_sum_interp = resize_to(caffe_zoom(sub24_sum, 2), conv3_sub1.shape[-2:])
        sub12_sum = self.cff_sub12(sub24_sum_interp, conv3_sub1)
        logits = self.conv6_cls(caffe_zoom(sub12_sum, 2))  # sub12_sum_interp -> conv6_cls
        out = {'logits': logits, 'features': conv3_1}
        if return_aux:
            if self.sub4_out is None:
                raise ValueError('return_aux=True needs an ICNet built with aux_heads=True')
            out['logits_sub4'] = self.sub4_out(conv5_4_interp)
            out['logits_sub24'] = self.sub24_out(sub24_sum_interp)
        return out


def prototxt_name_map(model: ICNet) -> Dict[str, str]:
    """Map each parametrised module path of ``model`` to its Caffe layer name.

    Returns:
        ``{'conv2_1.reduce': 'conv2_1_1x1_reduce', 'cff_sub24.conv_coarse': 'conv_sub4', ...}``;
        ConvBN paths carry a Conv2d at ``.0`` and the BN at ``.1`` (Caffe layer ``NAME/bn``).
    """
    names = {name: name for name in ('conv1_1_3x3_s2', 'conv1_2_3x3', 'conv1_3_3x3',
                                     'conv5_4_k1', 'conv1_sub1', 'conv2_sub1', 'conv3_sub1',
                                     'conv6_cls')}
    for stage, blocks, _, _, _ in TRUNK_STAGES:
        for block in range(1, blocks + 1):
            prefix = f'conv{stage}_{block}'
            names.update({f'{prefix}.reduce': f'{prefix}_1x1_reduce',
                          f'{prefix}.conv3x3': f'{prefix}_3x3',
                          f'{prefix}.increase': f'{prefix}_1x1_increase'})
            if block == 1:
                names[f'{prefix}.proj'] = f'{prefix}_1x1_proj'
    names.update({'cff_sub24.conv_coarse': 'conv_sub4', 'cff_sub24.proj_fine': 'conv3_1_sub2_proj',
                  'cff_sub12.conv_coarse': 'conv_sub2', 'cff_sub12.proj_fine': 'conv3_sub1_proj'})
    if model.sub4_out is not None:
        names.update({'sub4_out': 'sub4_out', 'sub24_out': 'sub24_out'})
    return names


def preprocess_bgr(image_bgr: torch.Tensor) -> torch.Tensor:
    """uint8/float (N, H, W, 3) BGR in [0, 255] -> float (N, 3, H, W) minus ``BGR_MEAN``."""
    mean = torch.tensor(BGR_MEAN, dtype=torch.float32, device=image_bgr.device)
    return (image_bgr.float() - mean).permute(0, 3, 1, 2).contiguous()


def padded_size(size: int, multiple: int = 32) -> int:
    """Smallest ``multiple * k + 1 >= size``: the sizes where ICNet matches Caffe exactly."""
    return multiple * max(1, math.ceil((size - 1) / multiple)) + 1


def output_size(size: int, stride: int) -> int:
    """Return the output cells at ``stride`` covering ``size`` input pixels.

    Align-corners: cell i = pixel ``stride * i``.
    """
    return (size - 1) // stride + 1


def select_device(device: str = 'auto') -> torch.device:
    """'auto' -> CUDA when available else CPU; 'cpu' / 'cuda' / 'cuda:N' as given."""
    if device == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if device.startswith('cuda') and not torch.cuda.is_available():
        raise ValueError(f'device={device!r} but CUDA is not available; use device=cpu or auto')
    return torch.device(device)


def place_network(network: nn.Module, device: str = 'auto', fp16: bool = False):
    """Move ``network`` to ``device`` in eval mode, in half precision when ``fp16`` and on CUDA.

    Returns:
        (network, torch.device, whether fp16 is in use).
    """
    torch_device = select_device(device)
    half = bool(fp16 and torch_device.type == 'cuda')
    network = network.to(torch_device).eval()
    return (network.half() if half else network), torch_device, half


class IcnetModel:
    """ICNet as a ``SegmentationModel`` (``evs_ros/models/base.py``): numpy in, numpy out.

    Any input size works: the frame is padded (bottom/right, with the mean colour) to the next
    32k+1 size where ICNet matches Caffe, and outputs are cropped back to
    ``(H - 1) // 4 + 1`` (probs) and ``(H - 1) // 16 + 1`` (features) cells. The network runs
    through ``runner`` (torch eager here; an engine after
    :func:`evs_ros.models.loading.load_models`, ``evs_ros/models/graph.py``).
    """

    graph_name = 'icnet'

    def __init__(self, network: ICNet, device: str = 'auto', fp16: bool = False,
                 class_names: Optional[Tuple[str, ...]] = None):
        from evs_ros.models.graph import ProbsAndFeatures, TorchRunner
        self.network, self.device, self.fp16 = place_network(network, device, fp16)
        self.num_classes = network.num_classes
        self.feature_channels = network.feature_channels
        self.class_names = class_names
        self.runner = TorchRunner(ProbsAndFeatures(self.network))

    def predict(self, image_bgr):
        """Segment one uint8 (H, W, 3) BGR frame -> ``Prediction``.

        Returns:
            Prediction with probs float32 (C, (H-1)//4+1, (W-1)//4+1) softmax over C and features
            float32 (Cf, (H-1)//16+1, (W-1)//16+1) (``conv3_1``).
        """
        return self.predict_batch([image_bgr])[0]

    def predict_batch(self, images_bgr):
        """Run :meth:`predict` on frames of one size in one network call.

        Keyframes of several cameras on a GPU (``runtime.keyframe_batch``); returns a list of
        ``Prediction``.
        """
        from evs_ros.models.base import Prediction
        height, width = check_image(images_bgr[0])
        data = torch.cat([self.prepare(image) for image in images_bgr])
        probs, features = self.runner(data)
        probs = probs[:, :, :output_size(height, 4), :output_size(width, 4)]
        features = features[:, :, :output_size(height, 16), :output_size(width, 16)]
        probs, features = probs.float().cpu().numpy(), features.float().cpu().numpy()
        return [Prediction(probs=p, features=f) for p, f in zip(probs, features)]

    def prepare(self, image_bgr) -> torch.Tensor:
        """uint8 (H, W, 3) BGR -> padded preprocessed (1, 3, Hp, Wp) tensor on the device."""
        height, width = image_bgr.shape[:2]
        image = torch.from_numpy(np.ascontiguousarray(image_bgr)).to(self.device)
        data = preprocess_bgr(image[None])
        pad_h, pad_w = padded_size(height) - height, padded_size(width) - width
        data = F.pad(data, (0, pad_w, 0, pad_h))  # zeros = the mean colour
        return data.half() if self.fp16 else data


def check_image(image_bgr) -> Tuple[int, int]:
    """Validate a uint8 (H, W, 3) frame and return (H, W); ValueError naming the fix otherwise."""
    shape = getattr(image_bgr, 'shape', None)
    if shape is None or len(shape) != 3 or shape[2] != 3:
        raise ValueError(f'expected a (H, W, 3) BGR image, got shape {shape}')
    if str(image_bgr.dtype) != 'uint8':
        raise ValueError(f'expected a uint8 BGR image, got dtype {image_bgr.dtype}')
    if shape[0] < 2 or shape[1] < 2:
        raise ValueError(f'image {shape[1]}x{shape[0]} is too small (need at least 2x2)')
    return int(shape[0]), int(shape[1])
