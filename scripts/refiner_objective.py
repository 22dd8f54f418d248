"""Does a Refiner beat "R off" on the frames it learns from, and on others? (issue 17, 12b).

``python scripts/refiner_objective.py REFINER BACKEND CACHE SAMPLES SOURCE [SOURCE...]``
draws SAMPLES (keyframe, frame) pairs per source exactly as ``evs train refiner --targets
teacher`` does (the same propagation, IAM, 384x768 samples, seed 0) and prints, inside IAM's mask
(pixels weighted by M), how often the teacher's label is matched by the warped keyframe labels
(R off), by P_refiner, and by eq. 4's blend, plus the training loss of R off and of R. A source
is a Cityscapes-layout ROOT or clips:VIDEO, as ``--data``.
"""

import sys

import numpy as np
import torch

from evs_ros.config import ModelConfig
from evs_ros.models.backends import load_refiner
from evs_ros.models.loading import load_models, network_record
from evs_ros.training.data import RefinerPairs
from evs_ros.training.losses import refiner_loss
from evs_ros.training.sources import load_sequences
from evs_ros.training.teacher_cache import TeacherCache


def main(refiner_path, backend, cache_dir, samples, *sources):
    torch.set_num_threads(2)
    teacher, _ = load_models(ModelConfig(backend=backend, refiner='', device='cpu'), False)
    refiner = load_refiner(refiner_path, device='cpu')
    cache = TeacherCache(teacher, cache_dir, network_record(backend)['sha256'])
    for source in sources:
        pairs = RefinerPairs(load_sequences([source], 'train', cache_dir), (384, 768), cache,
                             max_gap=5, targets='teacher')
        torch.manual_seed(0)
        chosen = torch.randperm(len(pairs))[:int(samples)].tolist()
        sums = np.zeros(5)
        for item in chosen:
            data, probs, features, mask, target = pairs[item]
            with torch.inference_mode():
                logits = refiner.network(data[None], probs[None],
                                         features[None] if features.numel() else None)['logits']
                logits = torch.nn.functional.interpolate(logits, size=mask.shape, mode='bilinear',
                                                         align_corners=True)
            refined = torch.softmax(logits, 1)[0]
            blended = mask * refined + (1 - mask) * probs
            weight = mask.sum().item()
            for slot, guess in enumerate((probs, refined, blended)):
                sums[slot] += ((guess.argmax(0) == target).float() * mask).sum().item()
            sums[3] += weight
            prior = torch.log(probs.clamp_min(1e-4))[None]
            sums[4] += (refiner_loss(logits, target[None], mask[None], 0.1).item()
                        - refiner_loss(prior, target[None], mask[None], 0.1).item())
        off, r_only, blend, weight, loss_delta = sums
        print(f'{source}: {len(chosen)} samples, mask weight {weight:.0f} px; inside the mask the '
              f'teacher agrees with R off {100 * off / weight:.1f} %, P_refiner '
              f'{100 * r_only / weight:.1f} %, eq. 4 blend {100 * blend / weight:.1f} %; '
              f'loss(R) - loss(R off) {loss_delta / len(chosen):+.3f}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main(*sys.argv[1:]))
