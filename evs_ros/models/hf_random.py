"""SegFormer networks with the published shapes and random weights, for speed benchmarks.

Speed does not depend on the weights, so ``evs bench models`` and ``scripts/bench_networks.sh``
time SegFormer-B0..B5 built from ``transformers.SegformerConfig`` without any download. The shapes
are those of the published MiT encoders and all-MLP decoders (SegFormer paper, arXiv 2105.15203,
Table 6; the ``nvidia/segformer-bX-finetuned-cityscapes-1024-1024`` configs): every variant has
4 stages with strides 4/2/2/2, attention heads 1/2/5/8, spatial reduction 8/4/2/1 and MLP ratio 4.
The classes are the 19 Cityscapes classes, so the network publishes Cityscapes trainIds.

Accuracy figures of such a network mean nothing: its weights are random.
"""

import json
import os
from typing import Dict

from evs_ros.data.labels import CLASS_NAMES

SEGFORMER_SHAPES: Dict[str, Dict[str, object]] = {
    'b0': {'hidden_sizes': [32, 64, 160, 256], 'depths': [2, 2, 2, 2], 'decoder': 256},
    'b1': {'hidden_sizes': [64, 128, 320, 512], 'depths': [2, 2, 2, 2], 'decoder': 256},
    'b2': {'hidden_sizes': [64, 128, 320, 512], 'depths': [3, 4, 6, 3], 'decoder': 768},
    'b3': {'hidden_sizes': [64, 128, 320, 512], 'depths': [3, 4, 18, 3], 'decoder': 768},
    'b4': {'hidden_sizes': [64, 128, 320, 512], 'depths': [3, 8, 27, 3], 'decoder': 768},
    'b5': {'hidden_sizes': [64, 128, 320, 512], 'depths': [3, 6, 40, 3], 'decoder': 768},
}
"""Variant -> channels per stage, blocks per stage and decoder width (SegFormer Table 6)."""
RANDOM_MARKER = 'RANDOM_WEIGHTS.txt'
"""File that :func:`save_random_segformer` writes next to the weights (benchmarks say so)."""
# The processor of the Cityscapes SegFormers: ImageNet mean/std on RGB in [0, 1].
CITYSCAPES_PROCESSOR = {
    'image_processor_type': 'SegformerImageProcessor', 'do_resize': True,
    'size': {'height': 1024, 'width': 1024}, 'do_rescale': True, 'rescale_factor': 1 / 255,
    'do_normalize': True, 'image_mean': [0.485, 0.456, 0.406],
    'image_std': [0.229, 0.224, 0.225], 'do_reduce_labels': False}


def segformer_variant(name: str) -> str:
    """'segformer-b2', 'B2' or 'b2' -> 'b2'; ValueError listing the variants otherwise."""
    variant = name.lower()
    if variant.startswith('segformer-'):
        variant = variant[len('segformer-'):]
    if variant not in SEGFORMER_SHAPES:
        raise ValueError(f'unknown SegFormer variant {name!r}; expected one of '
                         f'{", ".join("segformer-" + v for v in SEGFORMER_SHAPES)}')
    return variant


def segformer_config(variant: str):
    """``transformers.SegformerConfig`` of ``variant`` ('b0' .. 'b5') with Cityscapes labels."""
    import transformers
    shape = SEGFORMER_SHAPES[segformer_variant(variant)]
    id2label = dict(enumerate(CLASS_NAMES))
    return transformers.SegformerConfig(
        num_channels=3, num_encoder_blocks=4, hidden_sizes=list(shape['hidden_sizes']),
        depths=list(shape['depths']), num_attention_heads=[1, 2, 5, 8], sr_ratios=[8, 4, 2, 1],
        patch_sizes=[7, 3, 3, 3], strides=[4, 2, 2, 2], mlp_ratios=[4, 4, 4, 4],
        decoder_hidden_size=int(shape['decoder']), num_labels=len(id2label), id2label=id2label,
        label2id={name: index for index, name in id2label.items()},
        architectures=['SegformerForSemanticSegmentation'])


def random_segformer(variant: str, seed: int = 0):
    """Random-init ``SegformerForSemanticSegmentation`` of ``variant`` (eval mode, float32)."""
    import torch
    import transformers
    torch.manual_seed(seed)
    network = transformers.SegformerForSemanticSegmentation(segformer_config(variant))
    return network.eval()


def save_random_segformer(variant: str, directory: str, seed: int = 0) -> str:
    """Write a random SegFormer of ``variant`` in the ``save_pretrained`` layout; return it.

    The layout (config.json, model.safetensors, preprocessor_config.json) loads as
    ``hf:DIRECTORY``.
    """
    network = random_segformer(variant, seed)
    network.save_pretrained(directory)
    with open(os.path.join(directory, 'preprocessor_config.json'), 'w',
              encoding='utf-8') as stream:
        json.dump(CITYSCAPES_PROCESSOR, stream, indent=2)
    with open(os.path.join(directory, RANDOM_MARKER), 'w', encoding='utf-8') as stream:
        stream.write(f'SegFormer-{segformer_variant(variant).upper()} with random weights '
                     f'(seed {seed}) and the published shapes, written by evs_ros for speed '
                     'benchmarks: its labels mean nothing.\n')
    return directory


def has_random_weights(spec: str) -> bool:
    """Tell whether ``spec`` is ``hf:DIR`` of a folder written by :func:`save_random_segformer`."""
    if not spec.startswith('hf:'):
        return False
    return os.path.isfile(os.path.join(os.path.expanduser(spec[len('hf:'):]),
                                       RANDOM_MARKER))
