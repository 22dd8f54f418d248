"""Training losses: ICNet's cascade label guidance and the Refiner's mask-weighted cross entropy.

ICNet: cross entropy at the three cascade outputs against nearest-downsampled trainIds (255 =
ignore), weighted 1.0 (``conv6_cls``, 1/4), 0.4 (``sub24_out``, 1/8) and 0.16 (``sub4_out``, 1/16)
as the ICNet reference training (lambda3, lambda2, lambda1). Refiner: cross entropy weighted by
IAM's mask M plus ``outside_weight``: eq. 4 only uses P_refiner where M > 0, and an unweighted
loss is dominated by the many pixels where the warped labels are already right.
"""

from typing import Dict

import torch
import torch.nn.functional as F

from evs_ros.data.labels import IGNORE

CASCADE_WEIGHTS = {'logits': 1.0, 'logits_sub24': 0.4, 'logits_sub4': 0.16}


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross entropy of (N, C, h, w) logits vs (N, H, W) int64 labels shrunk (nearest) to h x w."""
    small = F.interpolate(labels[:, None].float(), size=logits.shape[-2:], mode='nearest')
    return F.cross_entropy(logits.float(), small[:, 0].long(), ignore_index=IGNORE)


def masked_segmentation_loss(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
                             outside_weight: float) -> torch.Tensor:
    """Cross entropy weighted by ``mask + outside_weight``, at the mask's resolution.

    Args:
        logits: (N, C, h', w') logits (resized bilinearly to the mask).
        labels: (N, H, W) int64 trainIds (nearest-shrunk to the mask; 255 = ignore).
        mask: (N, h, w) float IAM mask in [0, 1].
    """
    size = mask.shape[-2:]
    if logits.shape[-2:] != size:
        logits = F.interpolate(logits.float(), size=size, mode='bilinear', align_corners=True)
    small = F.interpolate(labels[:, None].float(), size=size, mode='nearest')[:, 0].long()
    per_pixel = F.cross_entropy(logits.float(), small, ignore_index=IGNORE, reduction='none')
    weights = (mask.float() + outside_weight) * (small != IGNORE)
    return (per_pixel * weights).sum() / weights.sum().clamp_min(1e-6)


def cascade_loss(outputs: Dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """Compute ICNet's cascade label guidance: weighted sum over the 1/4, 1/8 and 1/16 outputs."""
    return sum(weight * segmentation_loss(outputs[key], labels)
               for key, weight in CASCADE_WEIGHTS.items())
