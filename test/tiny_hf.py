"""Tiny random-init Hugging Face segmentation models saved with ``save_pretrained``, for tests.

SegFormer, UperNet-ConvNeXt, Mask2Former and MaskFormer with Swin.

``save_tiny_model(family, directory, ...)`` writes ``config.json``, ``model.safetensors`` and,
for SegFormer and Mask2Former, a ``preprocessor_config.json`` written by the family's image
processor; the result loads with ``hf:DIRECTORY``. Models build in well under a second.
"""

import importlib.util
import os
from typing import Dict, Optional

import torch

HAS_SCIPY = importlib.util.find_spec('scipy') is not None  # Mask2Former/MaskFormer need it
FAMILIES = ('segformer', 'upernet', 'mask2former', 'maskformer')
# First-stage channels (the Refiner's features) of the tiny configs below.
FEATURE_CHANNELS = {'segformer': 8, 'upernet': 8, 'mask2former': 8, 'maskformer': 8}
# The processor written next to each family's weights (None: none, ImageNet defaults).
PROCESSOR_MEAN = (0.5, 0.4, 0.3)
PROCESSOR_STD = (0.2, 0.25, 0.3)


def _labels(num_labels: int, id2label: Optional[Dict[int, str]]):
    id2label = id2label or {index: f'class_{index}' for index in range(num_labels)}
    return {'num_labels': len(id2label), 'id2label': dict(id2label),
            'label2id': {name: index for index, name in id2label.items()}}


def _swin(transformers):
    return transformers.SwinConfig(embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                                   window_size=4,
                                   out_features=['stage1', 'stage2', 'stage3', 'stage4'])


def build_tiny_model(family: str, num_labels: int = 5,
                     id2label: Optional[Dict[int, str]] = None):
    """Random-init (seed 0) network of ``family`` with the given labels."""
    import transformers
    torch.manual_seed(0)
    labels = _labels(num_labels, id2label)
    if family == 'segformer':
        config = transformers.SegformerConfig(
            num_channels=3, num_encoder_blocks=4, depths=[1, 1, 1, 1],
            hidden_sizes=[8, 16, 24, 32], num_attention_heads=[1, 1, 1, 1],
            decoder_hidden_size=32, **labels)
        return transformers.SegformerForSemanticSegmentation(config)
    if family == 'upernet':
        backbone = transformers.ConvNextConfig(
            num_channels=3, hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1],
            out_features=['stage1', 'stage2', 'stage3', 'stage4'])
        config = transformers.UperNetConfig(backbone_config=backbone, hidden_size=16,
                                            use_auxiliary_head=False, **labels)
        return transformers.UperNetForSemanticSegmentation(config)
    if family == 'mask2former':
        config = transformers.Mask2FormerConfig(
            backbone_config=_swin(transformers), feature_size=32, mask_feature_size=32,
            hidden_dim=32, encoder_feedforward_dim=32, dim_feedforward=32, encoder_layers=1,
            decoder_layers=2, num_queries=6, num_attention_heads=2, **labels)
        return transformers.Mask2FormerForUniversalSegmentation(config)
    if family == 'maskformer':
        decoder = {'model_type': 'detr', 'd_model': 32, 'encoder_layers': 1,
                   'decoder_layers': 1, 'encoder_attention_heads': 2,
                   'decoder_attention_heads': 2, 'encoder_ffn_dim': 32, 'decoder_ffn_dim': 32,
                   'num_queries': 6}
        config = transformers.MaskFormerConfig(
            backbone_config=_swin(transformers), fpn_feature_size=32, mask_feature_size=32,
            num_queries=6, decoder_config=decoder, **labels)
        return transformers.MaskFormerForInstanceSegmentation(config)
    raise ValueError(f'unknown family {family!r}')


def classifier_of(network, family: str) -> torch.nn.Module:
    """Return the layer whose bias decides the predicted class (per pixel or per query)."""
    if family in ('mask2former', 'maskformer'):
        return network.class_predictor  # (C + 1) outputs, the last one = no object
    return network.decode_head.classifier


def always_predict(network, family: str, class_index: int) -> None:
    """Make ``network`` predict ``class_index`` everywhere: classifier weights 0, one bias up."""
    layer = classifier_of(network, family)
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()
        layer.bias[class_index] = 20.0


def processor_for(family: str):
    """Return the image processor saved next to ``family``'s tiny models, or None."""
    import transformers
    if family == 'segformer':
        return transformers.SegformerImageProcessor(image_mean=list(PROCESSOR_MEAN),
                                                    image_std=list(PROCESSOR_STD))
    if family == 'mask2former':
        return transformers.Mask2FormerImageProcessor(image_mean=list(PROCESSOR_MEAN),
                                                      image_std=list(PROCESSOR_STD))
    return None


def save_tiny_model(family: str, directory, num_labels: int = 5,
                    id2label: Optional[Dict[int, str]] = None,
                    predict_class: Optional[int] = None) -> str:
    """Build, optionally bias (:func:`always_predict`) and save a tiny model; returns the dir."""
    directory = str(directory)
    network = build_tiny_model(family, num_labels, id2label)
    if predict_class is not None:
        always_predict(network, family, predict_class)
    network.save_pretrained(directory)
    processor = processor_for(family)
    if processor is not None:
        processor.save_pretrained(directory)
    assert os.path.isfile(os.path.join(directory, 'config.json'))
    return directory
