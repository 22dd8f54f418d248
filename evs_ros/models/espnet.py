"""ESPNetv2 (Mehta, Rastegari, Shapiro, Hajishirzi, CVPR 2019) as a keyframe network (paper §3.2).

A real-time segmentation network trained on Cityscapes by its authors (sacmehta/EdgeNets, MIT
licence; 0.79 M parameters at width s = 2.0). Our own definition from the ESPNetv2 paper, with
module names that match the published state_dicts so they load with ``strict=True``:

- **EESP unit** (paper §3.1, Fig. 2c): REDUCE with a group point-wise conv to ``n = out / K``
  channels (``proj_1x1``, K = 4 groups), SPLIT into K depth-wise dilated 3x3 convs with growing
  dilation (``spp_dw``, dilations from the level's receptive-field limit), hierarchical feature
  fusion (HFF: branch k adds branch k-1 before concatenation), MERGE with BN + PReLU
  (``br_after_cat``) and a group point-wise conv (``conv_1x1_exp``), plus a residual when shapes
  allow and a PReLU (``module_act``).
- **Strided EESP** (paper Fig. 3, ``DownSampler``): a stride-2 EESP concatenated with a 3x3
  average pooling of the input, plus the input image pooled to the same size and projected
  (input reinforcement, ``inp_reinf``), then PReLU (``act``).
- **Encoder** (the ImageNet network without levels 5): ``level1`` (3x3 conv, stride 2, 1/2),
  ``level2_0`` (1/4), ``level3_0`` + 3 EESP (1/8), ``level4_0`` + 7 EESP (1/16).
- **Segmentation head** of the segmentation variant: an efficient pyramid pooling module
  (``bu_dec_l1`` .. ``l4``: project to a few channels, one depth-wise 3x3 conv per scale
  2.0 / 1.5 / 1.0 / 0.5 / 0.1 of the map, channel shuffle, grouped 3x3 + point-wise merge) at
  each of levels 4, 3, 2, 1, decoding bottom-up with x2 bilinear upsampling; encoder maps join
  through ``EfficientPWConv`` (a grouped 3x3 conv gated by a global-pooling sigmoid) and
  BN + PReLU (``bu_br_l*``). The logits come out at 1/2 of the input.

Preprocessing as the authors trained and evaluated it: RGB, ``/255``, ImageNet mean
(0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225); their evaluation resizes a 2048x1024
Cityscapes frame to 1024x512 (training: random scales 0.5-2.0 of the full frame, 1024x512 crops),
so the network sees streets at HALF the Cityscapes camera's scale (``TRAINED_SHORT_SIDE``).
Inputs are padded bottom/right with the mean colour to a multiple of 16 (the decoder adds maps
of levels 1/16 .. 1/2 whose sizes must halve exactly) and outputs cropped back.

Outputs: 20 channels, the 19 Cityscapes train classes in trainId order plus ``background`` (the
ignore label during training), published as the 19 trainIds (background dropped, the 19
probabilities renormalised: :func:`evs_ros.data.classes.class_mapping`). Low-level features for
the Refiner: the level-3 encoder output (1/8 of the input; 256 channels at s = 2.0), the
counterpart of ICNet's ``conv3_1`` (the encoder before its deepest, most expensive stage).

Adaptive average pooling with sizes that do not divide (the pyramid's 1.5 and 0.1 scales) has no
ONNX operator; :func:`adaptive_avg_pool2d` computes the same windows with average pooling and
gathers when the network is being exported, and with ``F.adaptive_avg_pool2d`` otherwise.
"""

import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evs_ros.data.classes import class_mapping
from evs_ros.data.labels import CLASS_NAMES

# Encoder channels of levels 1-4 per published width s (the EdgeNets ImageNet configs; levels 5
# and the classifier belong to the classification network only).
LEVEL_CHANNELS = {0.5: (16, 32, 64, 128), 1.0: (32, 64, 128, 256), 1.25: (32, 80, 160, 320),
                  1.5: (32, 96, 192, 384), 2.0: (32, 128, 256, 512)}
CITYSCAPES_WIDTHS = (0.5, 1.0, 1.5, 2.0)
"""Widths with published Cityscapes checkpoints (EdgeNets segmentation model zoo)."""
BRANCHES = 4  # K, parallel branches of every EESP unit
EESP_REPEATS = (3, 7)  # EESP units after the strided units of levels 3 and 4
RECEPTIVE_LIMITS = (13, 11, 9, 7)  # largest effective kernel per level 2..4 (paper Table 1)
PYRAMID_SCALES = (2.0, 1.5, 1.0, 0.5, 0.1)
PYRAMID_MIN_SIZE = 5
INPUT_MULTIPLE = 16
OUTPUT_STRIDE = 2
FEATURE_STRIDE = 8
TRAINED_SHORT_SIDE = 512
"""Short side of the frames the Cityscapes checkpoints were evaluated at (1024x512)."""
MEAN_RGB = (0.485, 0.456, 0.406)
STD_RGB = (0.229, 0.224, 0.225)
CITYSCAPES_20 = tuple(CLASS_NAMES) + ('background',)
"""Output channels of the Cityscapes checkpoints (EdgeNets CITYSCAPE_CLASS_LIST)."""


class ConvBnAct(nn.Module):
    """Conv (no bias) + BN (+ PReLU): the ``conv``/``bn``/``act`` unit of the encoder."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1,
                 act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, (kernel - 1) // 2, bias=False,
                              groups=groups)
        self.bn = nn.BatchNorm2d(out_ch)
        if act:
            self.act = nn.PReLU(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return self.act(x) if hasattr(self, 'act') else x


class BnAct(nn.Module):
    """BN + PReLU (``bn``/``act``): the normalisation after EESP's concatenation."""

    def __init__(self, channels: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.act = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(x))


class DepthwiseDilated(nn.Module):
    """Depth-wise 3x3 conv with dilation ``d`` and ``stride`` (``conv``): one EESP branch."""

    def __init__(self, channels: int, stride: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride, dilation, dilation, channels,
                              bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def branch_dilations(receptive_limit: int, branches: int = BRANCHES) -> List[int]:
    """Dilations of an EESP unit's branches, ascending.

    Branch k would have an effective kernel of ``3 + 2k`` (dilation ``k + 1``); kernels beyond the
    level's ``receptive_limit`` fall back to a plain 3x3, which the sort puts first.
    """
    kernels = sorted(k if k <= receptive_limit else 3 for k in (3 + 2 * i for i in
                                                                range(branches)))
    return [(kernel - 1) // 2 for kernel in kernels]


class EESP(nn.Module):
    """Extremely efficient spatial pyramid unit (paper §3.1, Fig. 2c).

    Args:
        in_ch: input channels.
        out_ch: output channels (a multiple of ``branches``).
        stride: 2 in the strided unit of a down-sampler (then the output skips the residual
            and the final PReLU: the down-sampler applies its own).
        receptive_limit: largest effective kernel of the branches.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, receptive_limit: int = 7,
                 branches: int = BRANCHES):
        super().__init__()
        if out_ch % branches:
            raise ValueError(f'EESP: {out_ch} output channels do not split into {branches} '
                             'branches')
        width = out_ch // branches
        self.stride = stride
        self.proj_1x1 = ConvBnAct(in_ch, width, 1, groups=branches)
        self.spp_dw = nn.ModuleList(DepthwiseDilated(width, stride, d)
                                    for d in branch_dilations(receptive_limit, branches))
        self.conv_1x1_exp = ConvBnAct(out_ch, out_ch, 1, groups=branches, act=False)
        self.br_after_cat = BnAct(out_ch)
        self.module_act = nn.PReLU(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_ch, H, W) -> (N, out_ch, H / stride, W / stride)."""
        reduced = self.proj_1x1(x)  # (N, n, H, W)
        fused = [self.spp_dw[0](reduced)]
        for branch in self.spp_dw[1:]:  # hierarchical feature fusion
            fused.append(branch(reduced) + fused[-1])
        merged = self.conv_1x1_exp(self.br_after_cat(torch.cat(fused, dim=1)))
        if self.stride == 2:
            return merged
        if merged.shape == x.shape:
            merged = merged + x
        return self.module_act(merged)


class DownSampler(nn.Module):
    """Strided EESP + average pooling + input reinforcement (paper Fig. 3): halves the size.

    Args:
        in_ch: input channels.
        out_ch: output channels (``in_ch`` of them come from the average pooling).
        receptive_limit: the strided EESP unit's largest effective kernel.
    """

    def __init__(self, in_ch: int, out_ch: int, receptive_limit: int):
        super().__init__()
        self.eesp = EESP(in_ch, out_ch - in_ch, 2, receptive_limit)
        self.inp_reinf = nn.Sequential(ConvBnAct(3, 3, 3), ConvBnAct(3, out_ch, 1, act=False))
        self.act = nn.PReLU(out_ch)

    def forward(self, x: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Map (N, in_ch, H, W) and the pooled image (N, 3, H/2, W/2) to (N, out_ch, H/2, W/2)."""
        pooled = F.avg_pool2d(x, 3, 2, 1)  # (N, in_ch, H/2, W/2), padding counted as Caffe
        out = torch.cat([pooled, self.eesp(x)], dim=1)
        return self.act(out + self.inp_reinf(image))


class ChannelShuffle(nn.Module):
    """Interleave the channels of ``groups`` equal groups (no parameters)."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        x = x.reshape(batch, self.groups, channels // self.groups, height, width)
        return x.transpose(1, 2).reshape(batch, channels, height, width)


class ConvBnActSeq(nn.Module):
    """Conv + BN (+ PReLU) held in ``cbr`` (a Sequential): the decoder's unit."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, groups: int = 1):
        super().__init__()
        self.cbr = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, kernel, 1, (kernel - 1) // 2, bias=False, groups=groups),
            nn.BatchNorm2d(out_ch), nn.PReLU(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cbr(x)


class BnActSeq(nn.Module):
    """BN + PReLU held in ``br`` (a Sequential): the decoder's normalisation."""

    def __init__(self, channels: int):
        super().__init__()
        self.br = nn.Sequential(nn.BatchNorm2d(channels), nn.PReLU(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.br(x)


class EfficientPyramidPooling(nn.Module):
    """The decoder's pyramid: project, one depth-wise 3x3 per scale, shuffle, merge.

    Args:
        in_ch: input channels.
        proj_ch: channels of the projection and of each scale's branch.
        out_ch: output channels.
        last: the network's last layer (a biased 1x1 giving logits, no final BN + PReLU).
    """

    def __init__(self, in_ch: int, proj_ch: int, out_ch: int, last: bool = False):
        super().__init__()
        count = len(PYRAMID_SCALES)
        self.projection_layer = ConvBnActSeq(in_ch, proj_ch, 1)
        self.stages = nn.ModuleList(nn.Conv2d(proj_ch, proj_ch, 3, 1, 1, bias=False,
                                              groups=proj_ch) for _ in PYRAMID_SCALES)
        self.merge_layer = nn.Sequential(
            BnActSeq(proj_ch * count), ChannelShuffle(count),
            ConvBnActSeq(proj_ch * count, proj_ch, 3, groups=proj_ch),
            nn.Conv2d(proj_ch, out_ch, 1, bias=last))
        self.last = last
        if not last:
            self.br = BnActSeq(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_ch, H, W) -> (N, out_ch, H, W)."""
        x = self.projection_layer(x)  # (N, proj_ch, H, W)
        size = tuple(int(v) for v in x.shape[-2:])
        branches = [self._branch(stage, x, scale, size)
                    for stage, scale in zip(self.stages, PYRAMID_SCALES)]
        out = self.merge_layer(torch.cat(branches, dim=1))
        return out if self.last else self.br(out)

    @staticmethod
    def _branch(stage: nn.Module, x: torch.Tensor, scale: float, size: Tuple[int, int]):
        scaled = tuple(max(PYRAMID_MIN_SIZE, int(math.ceil(v * scale))) for v in size)
        if scale < 1.0:
            pooled = stage(adaptive_avg_pool2d(x, scaled))
            return F.interpolate(pooled, size, mode='bilinear', align_corners=True)
        if scale > 1.0:
            zoomed = stage(F.interpolate(x, scaled, mode='bilinear', align_corners=True))
            return adaptive_avg_pool2d(zoomed, size)
        return stage(x)


class EfficientPWConv(nn.Module):
    """A grouped 3x3 conv (``expansion_layer``) gated per channel: encoder maps join the decoder.

    The gate is a sigmoid of the globally pooled input (``wt_layer``).
    """

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.wt_layer = nn.Sequential(nn.AdaptiveAvgPool2d(1),
                                      nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.Sigmoid())
        self.expansion_layer = ConvBnActSeq(in_ch, out_ch, 3, groups=math.gcd(in_ch, out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expansion_layer(x) * self.wt_layer(x)


class Encoder(nn.Module):
    """The ESPNetv2 encoder up to level 4 (attribute names of the published ``base_net``)."""

    def __init__(self, channels: Sequence[int]):
        super().__init__()
        c1, c2, c3, c4 = channels
        self.level1 = ConvBnAct(3, c1, 3, 2)
        self.level2_0 = DownSampler(c1, c2, RECEPTIVE_LIMITS[0])
        self.level3_0 = DownSampler(c2, c3, RECEPTIVE_LIMITS[1])
        self.level3 = nn.ModuleList(EESP(c3, c3, 1, RECEPTIVE_LIMITS[2])
                                    for _ in range(EESP_REPEATS[0]))
        self.level4_0 = DownSampler(c3, c4, RECEPTIVE_LIMITS[2])
        self.level4 = nn.ModuleList(EESP(c4, c4, 1, RECEPTIVE_LIMITS[3])
                                    for _ in range(EESP_REPEATS[1]))

    def forward(self, data: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """(N, 3, H, W), H and W multiples of 16 -> maps at 1/2, 1/4, 1/8 and 1/16."""
        out_l1 = self.level1(data)  # (N, c1, H/2, W/2)
        image_l2 = F.avg_pool2d(F.avg_pool2d(data, 3, 2, 1), 3, 2, 1)  # (N, 3, H/4, W/4)
        out_l2 = self.level2_0(out_l1, image_l2)  # (N, c2, H/4, W/4)
        image_l3 = F.avg_pool2d(image_l2, 3, 2, 1)
        out_l3 = self.level3_0(out_l2, image_l3)  # (N, c3, H/8, W/8)
        for unit in self.level3:
            out_l3 = unit(out_l3)
        image_l4 = F.avg_pool2d(image_l3, 3, 2, 1)
        out_l4 = self.level4_0(out_l3, image_l4)  # (N, c4, H/16, W/16)
        for unit in self.level4:
            out_l4 = unit(out_l4)
        return out_l1, out_l2, out_l3, out_l4


class ESPNetv2(nn.Module):
    """ESPNetv2 for semantic segmentation (module docstring).

    Args:
        width: the width multiplier s, a key of ``LEVEL_CHANNELS``.
        num_classes: output channels (20 for the Cityscapes checkpoints).
        decoder_base: decoder channel unit (16 for Cityscapes and PASCAL, 32 for COCO).
    """

    def __init__(self, width: float = 2.0, num_classes: int = 20, decoder_base: int = 16):
        super().__init__()
        if width not in LEVEL_CHANNELS:
            raise ValueError(f'ESPNetv2 width s={width} is not one of '
                             f'{", ".join(str(w) for w in LEVEL_CHANNELS)}')
        self.width, self.num_classes = float(width), int(num_classes)
        channels = LEVEL_CHANNELS[width]
        self.feature_channels = channels[2]
        self.base_net = Encoder(channels)
        planes = (4 * decoder_base, 3 * decoder_base, 2 * decoder_base)
        proj = min(num_classes // 2, decoder_base)
        self.bu_dec_l1 = EfficientPyramidPooling(channels[3], proj, planes[0])
        self.bu_dec_l2 = EfficientPyramidPooling(planes[0], proj, planes[1])
        self.bu_dec_l3 = EfficientPyramidPooling(planes[1], proj, planes[2])
        self.bu_dec_l4 = EfficientPyramidPooling(planes[2], proj, num_classes, last=True)
        self.merge_enc_dec_l2 = EfficientPWConv(channels[2], planes[0])
        self.merge_enc_dec_l3 = EfficientPWConv(channels[1], planes[1])
        self.merge_enc_dec_l4 = EfficientPWConv(channels[0], planes[2])
        self.bu_br_l2 = nn.Sequential(nn.BatchNorm2d(planes[0]), nn.PReLU(planes[0]))
        self.bu_br_l3 = nn.Sequential(nn.BatchNorm2d(planes[1]), nn.PReLU(planes[1]))
        self.bu_br_l4 = nn.Sequential(nn.BatchNorm2d(planes[2]), nn.PReLU(planes[2]))

    def forward(self, data: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Segment a batch.

        Args:
            data: float (N, 3, H, W) normalised RGB (see :func:`preprocess_bgr`), H and W
                multiples of 16.

        Returns:
            dict with ``logits`` (N, num_classes, H/2, W/2) and ``features`` (N, Cf, H/8, W/8),
            the level-3 encoder output.
        """
        out_l1, out_l2, out_l3, out_l4 = self.base_net(data)
        decoded = self.bu_dec_l1(out_l4)  # (N, 64, H/16, W/16)
        decoded = self._join(decoded, self.merge_enc_dec_l2(out_l3), self.bu_br_l2,
                             self.bu_dec_l2)  # (N, 48, H/8, W/8)
        decoded = self._join(decoded, self.merge_enc_dec_l3(out_l2), self.bu_br_l3,
                             self.bu_dec_l3)  # (N, 32, H/4, W/4)
        logits = self._join(decoded, self.merge_enc_dec_l4(out_l1), self.bu_br_l4,
                            self.bu_dec_l4)  # (N, classes, H/2, W/2)
        return {'logits': logits, 'features': out_l3}

    @staticmethod
    def _join(decoded, encoded, norm, pyramid):
        """Upsample the decoder x2, add the projected encoder map, normalise, decode."""
        decoded = F.interpolate(decoded, scale_factor=2.0, mode='bilinear', align_corners=True)
        return pyramid(norm(decoded + encoded))


def adaptive_avg_pool2d(x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Average-pool ``x`` adaptively to ``size``, exportable to ONNX for any sizes.

    While exporting (ONNX or ``torch.export``), windows that do not divide evenly are averaged
    along each axis by stride-1 average pooling and a gather of the windows' starts (window i of
    n -> m covers ``[floor(i n / m), ceil((i + 1) n / m))``, as PyTorch's adaptive pooling);
    otherwise PyTorch's own op.
    """
    if not _exporting():
        return F.adaptive_avg_pool2d(x, size)
    for axis, out_size in ((2, size[0]), (3, size[1])):
        x = _adaptive_mean_along(x, axis, int(out_size))
    return x


def _exporting() -> bool:
    onnx_export = getattr(torch.onnx, 'is_in_onnx_export', lambda: False)()
    compiler = getattr(torch, 'compiler', None)
    compiling = bool(compiler and getattr(compiler, 'is_exporting', lambda: False)())
    return bool(onnx_export or compiling or torch.jit.is_tracing())


def _adaptive_mean_along(x: torch.Tensor, axis: int, out_size: int) -> torch.Tensor:
    in_size = int(x.shape[axis])
    if in_size == out_size:
        return x
    if in_size % out_size == 0:  # even windows: a plain average pooling
        factor = in_size // out_size
        kernel = (factor, 1) if axis == 2 else (1, factor)
        return F.avg_pool2d(x, kernel, kernel)
    # Uneven windows: one stride-1 average pooling per window length, the windows' starts
    # gathered from it (engines run pooling and gathers fast; a cumulative sum they do not).
    starts = [(i * in_size) // out_size for i in range(out_size)]
    lengths = [-(-((i + 1) * in_size) // out_size) - start for i, start in enumerate(starts)]
    pieces, order = [], []
    for length in sorted(set(lengths)):
        kernel = (length, 1) if axis == 2 else (1, length)
        pooled = F.avg_pool2d(x, kernel, 1)
        windows = [i for i in range(out_size) if lengths[i] == length]
        index = torch.tensor([starts[i] for i in windows], device=x.device)
        pieces.append(pooled.index_select(axis, index))
        order += windows
    if len(pieces) == 1:
        return pieces[0]
    inverse = torch.tensor(sorted(range(out_size), key=order.__getitem__), device=x.device)
    return torch.cat(pieces, dim=axis).index_select(axis, inverse)


def preprocess_bgr(image_bgr: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) BGR -> float (N, 3, H, W) RGB ``(x / 255 - mean) / std``."""
    rgb = image_bgr.permute(0, 3, 1, 2).flip(1).float() / 255.0
    mean = torch.tensor(MEAN_RGB, device=rgb.device).view(1, 3, 1, 1)
    std = torch.tensor(STD_RGB, device=rgb.device).view(1, 3, 1, 1)
    return (rgb - mean) / std


def network_from_state_dict(state: Dict[str, torch.Tensor]) -> ESPNetv2:
    """Build the ESPNetv2 that ``state`` (a published state_dict) belongs to and load it strictly.

    The width s, the classes and the decoder's channel unit are read off the tensors' shapes.

    Raises:
        ValueError: ``state`` is not an ESPNetv2 segmentation state_dict, or does not match the
            architecture exactly (names the first differing tensor).
    """
    state = {key[len('module.'):] if key.startswith('module.') else key: value
             for key, value in state.items()}
    try:
        level_channels = (int(state['base_net.level1.conv.weight'].shape[0]),
                          int(state['base_net.level2_0.act.weight'].shape[0]),
                          int(state['base_net.level3_0.act.weight'].shape[0]),
                          int(state['base_net.level4_0.act.weight'].shape[0]))
        num_classes = int(state['bu_dec_l4.merge_layer.3.weight'].shape[0])
        decoder_base = int(state['bu_dec_l1.merge_layer.3.weight'].shape[0]) // 4
    except KeyError as error:
        raise ValueError(f'not an ESPNetv2 segmentation state_dict (no {error.args[0]})') \
            from None
    width = next((w for w, c in LEVEL_CHANNELS.items() if c == level_channels), None)
    if width is None:
        raise ValueError(f'ESPNetv2 level channels {level_channels} match no published width')
    network = ESPNetv2(width, num_classes, decoder_base)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(f'ESPNetv2 s={width}: the weights do not match the architecture: '
                         f'{str(error).splitlines()[1].strip()}') from None
    return network


def load_espnet_network(path: str) -> ESPNetv2:
    """Return the network of a published ESPNetv2 checkpoint file (a plain state_dict)."""
    state = torch.load(path, map_location='cpu', weights_only=True)
    if isinstance(state, dict) and 'state_dict' in state and isinstance(state['state_dict'],
                                                                        dict):
        state = state['state_dict']
    if not isinstance(state, dict):
        raise ValueError(f'{path}: expected an ESPNetv2 state_dict, got {type(state).__name__}')
    try:
        return network_from_state_dict(state)
    except ValueError as error:
        raise ValueError(f'{path}: {error}') from None


def class_names_for(num_classes: int) -> Optional[Tuple[str, ...]]:
    """Return the channel names of a checkpoint with ``num_classes`` outputs (None: unknown)."""
    return CITYSCAPES_20 if num_classes == len(CITYSCAPES_20) else None


class EspnetModel:
    """ESPNetv2 as a ``SegmentationModel`` (``evs_ros/models/base.py``): numpy in, numpy out.

    The network runs through ``runner`` (torch eager, or an engine: ``evs_ros/models/graph.py``).

    Any input size works: the frame is padded bottom/right (mean colour) to a multiple of 16 and
    the outputs are cropped back to ``ceil(H / 2) x ceil(W / 2)`` (probabilities) and
    ``ceil(H / 8) x ceil(W / 8)`` (features) cells.

    Attributes:
        num_classes: published classes (19 Cityscapes trainIds for the Cityscapes checkpoints).
        class_names: their names.
        feature_channels: channels Cf of ``Prediction.features``.
        trained_short_side: short side (px) of the frames the checkpoint was evaluated at.
    """

    trained_short_side = TRAINED_SHORT_SIDE
    graph_name = 'espnet'

    def __init__(self, network: ESPNetv2, device: str = 'auto', fp16: bool = False,
                 network_names: Optional[Sequence[str]] = None):
        from evs_ros.models.graph import ProbsAndFeatures, TorchRunner
        from evs_ros.models.icnet import place_network
        self.network, self.device, self.fp16 = place_network(network, device, fp16)
        self.runner = TorchRunner(ProbsAndFeatures(self.network))
        names = network_names or class_names_for(network.num_classes)
        self.mapping = class_mapping(None if names is None else tuple(names),
                                     network.num_classes)
        self.num_classes = self.mapping.num_classes
        self.class_names = tuple(self.mapping.names)
        self.feature_channels = network.feature_channels
        self._source_index = (None if self.mapping.source_index is None else
                              torch.as_tensor(self.mapping.source_index, device=self.device))

    def predict(self, image_bgr: np.ndarray):
        """Segment one uint8 (H, W, 3) BGR frame -> ``Prediction``.

        Returns:
            Prediction with probs float32 (C, ceil(H/2), ceil(W/2)) summing to 1 over C (published
            class order) and features float32 (Cf, ceil(H/8), ceil(W/8)).
        """
        return self.predict_batch([image_bgr])[0]

    def predict_batch(self, images_bgr: Sequence[np.ndarray]):
        """:meth:`predict` for frames of one size in one network call; a list of Predictions."""
        from evs_ros.models.base import Prediction
        from evs_ros.models.icnet import check_image
        height, width = check_image(images_bgr[0])
        data = torch.cat([self.prepare(image) for image in images_bgr])
        probs, features = self.runner(data)  # torch eager or an engine (models/graph.py)
        with torch.inference_mode():
            probs = self.publish(probs.float().to(self.device))
            features = features.float()
        rows, cols = -(-height // OUTPUT_STRIDE), -(-width // OUTPUT_STRIDE)
        probs = probs[:, :, :rows, :cols].cpu().numpy()
        rows, cols = -(-height // FEATURE_STRIDE), -(-width // FEATURE_STRIDE)
        features = features[:, :, :rows, :cols].cpu().numpy()
        return [Prediction(probs=p, features=f) for p, f in zip(probs, features)]

    def prepare(self, image_bgr: np.ndarray) -> torch.Tensor:
        """uint8 (H, W, 3) BGR -> normalised padded (1, 3, Hp, Wp) RGB tensor on the device."""
        image = torch.from_numpy(np.ascontiguousarray(image_bgr)).to(self.device)
        data = preprocess_bgr(image[None])
        height, width = data.shape[-2:]
        pad_h, pad_w = (-height) % INPUT_MULTIPLE, (-width) % INPUT_MULTIPLE
        if pad_h or pad_w:
            data = F.pad(data, (0, pad_w, 0, pad_h))  # zeros = the mean colour
        return data.half() if self.fp16 else data

    def publish(self, probs: torch.Tensor) -> torch.Tensor:
        """(N, C_network, h, w) softmax -> (N, C, h, w) in published class order."""
        if self._source_index is None:
            return probs
        probs = probs.index_select(1, self._source_index)
        if self.mapping.dropped:
            probs = probs / probs.sum(dim=1, keepdim=True).clamp_min(1e-12)
        return probs


def load_espnet(path: str, device: str = 'auto', fp16: bool = False) -> EspnetModel:
    """``EspnetModel`` from a published ESPNetv2 state_dict file (backend ``espnet:PATH``)."""
    return EspnetModel(load_espnet_network(path), device, fp16)
