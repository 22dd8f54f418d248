"""Training losses: ICNet's cascade label guidance and the Refiner's mask-weighted cross entropy.

ICNet: cross entropy at the three cascade outputs against nearest-downsampled trainIds (255 =
ignore), weighted 1.0 (``conv6_cls``, 1/4), 0.4 (``sub24_out``, 1/8) and 0.16 (``sub4_out``, 1/16)
as the ICNet reference training (lambda3, lambda2, lambda1). Refiner: cross entropy weighted by
IAM's mask M plus ``outside_weight``: eq. 4 only uses P_refiner where M > 0, and an unweighted
loss is dominated by the many pixels where the warped labels are already right. Its targets are
class ids or, with soft targets (the teacher network's probabilities), distributions: the cross
entropy is then ``-sum_c q_c log p_c`` (the KL divergence to the teacher plus its entropy).
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


def masked_soft_loss(logits: torch.Tensor, target_probs: torch.Tensor, mask: torch.Tensor,
                     outside_weight: float) -> torch.Tensor:
    """Soft cross entropy ``-sum_c q_c log p_c`` weighted by ``mask + outside_weight``.

    Args:
        logits: (N, C, h', w') logits (resized bilinearly to the mask).
        target_probs: (N, C, h, w) float target distributions at the mask's resolution; pixels
            whose distribution sums to 0 are ignored (one-hot ground truth of ignored pixels).
        mask: (N, h, w) float IAM mask in [0, 1].
    """
    size = mask.shape[-2:]
    if logits.shape[-2:] != size:
        logits = F.interpolate(logits.float(), size=size, mode='bilinear', align_corners=True)
    if target_probs.shape[-2:] != size:
        raise ValueError(f'soft targets of {tuple(target_probs.shape[-2:])} for a mask of '
                         f'{tuple(size)}')
    target_probs = target_probs.float()
    per_pixel = -(target_probs * F.log_softmax(logits.float(), dim=1)).sum(dim=1)
    weights = (mask.float() + outside_weight) * (target_probs.sum(dim=1) > 0.5)
    return (per_pixel * weights).sum() / weights.sum().clamp_min(1e-6)


def refiner_loss(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                 outside_weight: float) -> torch.Tensor:
    """Compute the Refiner's loss for class ids or distributions.

    :func:`masked_segmentation_loss` for int64 (N, h, w) class ids, :func:`masked_soft_loss` for
    float (N, C, h, w) distributions.
    """
    if target.is_floating_point():
        return masked_soft_loss(logits, target, mask, outside_weight)
    return masked_segmentation_loss(logits, target, mask, outside_weight)
