"""The Refiner (paper §3.5, Fig. 4): a shallower ICNet that reuses warped keyframe features.

ICNet spends most of its time in the 1/32 trunk (``conv3_2`` .. ``conv5_4_k1``). The Refiner
replaces that trunk by the keyframe's low-level features F (``conv3_1``, 1/16 of the input) warped
to the current frame, keeps ICNet's cheap branches on the current image, and also sees the warped
probabilities:

- ``stem_sub2``: the image shrunk x2 through three stride-2 3x3 convs -> 1/16 (light 1/2 stem);
- ``fuse_sub4``: concat(stem, warped F) -> 1x1 + dilated 3x3 -> coarse map at 1/16;
- ``conv1_sub1`` .. ``conv3_sub1``: ICNet's full-resolution branch -> 1/8;
- ``cff``: ICNet's cascade feature fusion of the coarse map with the 1/8 branch;
- ``head``: concat(fusion, warped probabilities shrunk to 1/8) -> 3x3 at 1/8, upsampled x2 ->
  1x1 ``cls`` logits at 1/4 (the 3x3 runs at 1/8 to keep the Refiner cheap).
- ``residual`` (our addition, not in the paper): the logits are ``prior_scale * log(P_warped)``
  plus the ``cls`` output, and ``cls`` starts at zero, so an untrained Refiner returns P_warped
  exactly and training learns corrections to it. Without it the Refiner had to re-predict every
  class from a shallow trunk and was worse than the warped probabilities inside the IAM mask
  (docs/benchmarks.md, Table 1). Checkpoints without the key load as ``residual=False``.

All internal resizes are Caffe-style bilinear with align_corners, like ICNet.
"""

from typing import Dict, Optional, Sequence

import numpy as np
import torch
from torch import nn

from evs_ros.models.icnet import (CascadeFeatureFusion, ConvBN, caffe_shrink, caffe_zoom,
                                  check_image, preprocess_bgr, resize_to, scaled_channels,
                                  place_network)


class RefinerNet(nn.Module):
    """Shallow ICNet-like network predicting P_refiner (paper Fig. 4).

    Args:
        num_classes: classes C of the probabilities it takes and predicts.
        feature_channels: channels Cf of the warped ICNet features F (0 = no features input).
        width_mult: channel multiplier of the Refiner's own layers.
        residual: predict a correction of log(P_warped) instead of logits from scratch
            (starts as the identity; see the module docstring).
    """

    PROB_FLOOR = 1e-4
    """Probabilities are clamped to this before the log of the residual prior."""

    def __init__(self, num_classes: int = 19, feature_channels: int = 256,
                 width_mult: float = 1.0, residual: bool = False):
        super().__init__()
        self.num_classes = num_classes
        self.feature_channels = feature_channels
        self.width_mult = width_mult
        self.residual = residual

        def ch(channels: int) -> int:
            return scaled_channels(channels, width_mult)

        self.stem_sub2 = nn.Sequential(ConvBN(3, ch(32), 3, 2), ConvBN(ch(32), ch(32), 3, 2),
                                       ConvBN(ch(32), ch(64), 3, 2))
        self.fuse_sub4 = nn.Sequential(ConvBN(ch(64) + feature_channels, ch(128), 1),
                                       ConvBN(ch(128), ch(128), 3, 1, 2))
        self.conv1_sub1 = ConvBN(3, ch(32), 3, 2)
        self.conv2_sub1 = ConvBN(ch(32), ch(32), 3, 2)
        self.conv3_sub1 = ConvBN(ch(32), ch(64), 3, 2)
        self.cff = CascadeFeatureFusion(ch(128), ch(64), ch(128))
        self.head = ConvBN(ch(128) + num_classes, ch(64), 3)  # at 1/8
        self.cls = nn.Conv2d(ch(64), num_classes, 1)
        if residual:
            self.prior_scale = nn.Parameter(torch.ones(1))
            nn.init.zeros_(self.cls.weight)
            nn.init.zeros_(self.cls.bias)

    def forward(self, data: torch.Tensor, probs: torch.Tensor,
                features: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Predict refined logits.

        Args:
            data: float (N, 3, H, W) BGR minus ICNet's means.
            probs: float (N, C, h, w) warped keyframe probabilities (any size, resized to 1/4).
            features: float (N, Cf, hf, wf) warped keyframe F (any size, resized to 1/16), or
                None (zeros are used when the network expects features).

        Returns:
            dict with ``logits`` (N, C, ~H/4, ~W/4); (N, C, h, w) with ``residual``.
        """
        stem = self.stem_sub2(caffe_shrink(data, 2))  # (N, c64, ~H/16, ~W/16)
        if self.feature_channels:
            if features is None:
                features = stem.new_zeros((stem.shape[0], self.feature_channels) +
                                          tuple(stem.shape[-2:]))
            stem = torch.cat([stem, resize_to(features, stem.shape[-2:])], dim=1)
        coarse = self.fuse_sub4(stem)  # (N, c128, ~H/16, ~W/16)
        conv3_sub1 = self.conv3_sub1(self.conv2_sub1(self.conv1_sub1(data)))  # ~H/8
        fused = self.cff(caffe_zoom(coarse, 2), conv3_sub1)  # (N, c128, ~H/8, ~W/8)
        probs_small = resize_to(probs.to(fused.dtype), fused.shape[-2:])  # (N, C, ~H/8, ~W/8)
        head = self.head(torch.cat([fused, probs_small], dim=1))  # (N, c64, ~H/8, ~W/8)
        logits = self.cls(caffe_zoom(head, 2))  # (N, C, ~H/4, ~W/4)
        if self.residual:  # at the resolution of probs: no resampling of the prior
            prior = torch.log(probs.to(logits.dtype).clamp_min(self.PROB_FLOOR))
            logits = resize_to(logits, prior.shape[-2:]) + self.prior_scale * prior
        return {'logits': logits}


class RefinerGraph(nn.Module):
    """The Refiner's graph (what an engine runs, ``evs_ros/models/graph.py``).

    Preprocessed image, warped probabilities (and warped features when the network takes them) ->
    ``refined`` probabilities (softmax, float32) at the shape of the warped probabilities.
    """

    output_names = ('refined',)

    def __init__(self, network: RefinerNet):
        super().__init__()
        self.network = network
        self.input_names = ('data', 'probs') + (('features',) if network.feature_channels
                                                else ())

    def forward(self, data: torch.Tensor, probs: torch.Tensor,
                features: Optional[torch.Tensor] = None) -> torch.Tensor:
        logits = self.network(data, probs, features)['logits'].float()
        return torch.softmax(resize_to(logits, probs.shape[-2:]), dim=1)


class TorchRefiner:
    """``RefinerModel`` (``evs_ros/models/base.py``) around a ``RefinerNet``: numpy in and out.

    The network runs through ``runner`` (torch eager, or an engine: ``evs_ros/models/graph.py``).
    """

    graph_name = 'refiner'

    def __init__(self, network: RefinerNet, device: str = 'auto', fp16: bool = False,
                 class_names: Optional[Sequence[str]] = None):
        from evs_ros.models.graph import TorchRunner
        self.network, self.device, self.fp16 = place_network(network, device, fp16)
        self.num_classes = network.num_classes
        self.feature_channels = network.feature_channels
        self.class_names = tuple(class_names) if class_names else None
        self.runner = TorchRunner(RefinerGraph(self.network))

    def refine(self, image_bgr: np.ndarray, probs_warped: np.ndarray,
               features_warped: Optional[np.ndarray]) -> np.ndarray:
        """Predict P_refiner: float32 (C, h, w) probabilities at the shape of ``probs_warped``.

        Args:
            image_bgr: uint8 (H, W, 3) current frame.
            probs_warped: float32 (C, h, w) warped keyframe probabilities in [0, 1].
            features_warped: float32 (Cf, hf, wf) warped keyframe features, or None (zeros
                then, for a Refiner trained with features).
        """
        refined = self.runner(*self.prepare(image_bgr, probs_warped, features_warped))[0]
        return refined[0].float().cpu().numpy()

    def prepare(self, image_bgr: np.ndarray, probs_warped: np.ndarray,
                features_warped: Optional[np.ndarray]) -> tuple:
        """Return the graph's input tensors on the device.

        Image (1, 3, H, W) minus ICNet's means, probabilities (1, C, h, w) and, when the network
        takes them, features (1, Cf, hf, wf) (1x1 zeros for None).
        """
        check_image(image_bgr)
        if probs_warped.ndim != 3 or probs_warped.shape[0] != self.num_classes:
            raise ValueError(f'probs_warped must be (C={self.num_classes}, h, w), '
                             f'got {probs_warped.shape}')
        dtype = torch.float16 if self.fp16 else torch.float32
        image = torch.from_numpy(np.ascontiguousarray(image_bgr)).to(self.device)
        data = preprocess_bgr(image[None]).to(dtype)
        probs = torch.from_numpy(np.ascontiguousarray(probs_warped)).to(self.device, dtype)[None]
        if not self.network.feature_channels:
            return data, probs
        if features_warped is None:
            features = torch.zeros((1, self.network.feature_channels, 1, 1), dtype=dtype,
                                   device=self.device)
        else:
            features = torch.from_numpy(np.ascontiguousarray(features_warped))
            features = features.to(self.device, dtype)[None]
        return data, probs, features
