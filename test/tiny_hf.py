"""Tiny random-init Hugging Face segmentation models saved with ``save_pretrained``, for tests.

SegFormer, UperNet-ConvNeXt, Mask2Former and MaskFormer with Swin.

``save_tiny_model(family, directory, ...)`` writes ``config.json``, ``model.safetensors`` and,
for SegFormer and Mask2Former, a ``preprocessor_config.json`` (written as JSON here: transformers'
image processors need pillow, and from some 5.x versions torchvision, which evs_ros does not
install); the result loads with ``hf:DIRECTORY``. ``save_old_way`` writes a checkpoint as the
published hub ones were written (transformers 4 key names, ``pytorch_model.bin``, the 2021
preprocessor config, the weights transformers 5 added but old checkpoints lack left out). Models
build in well under a second.
"""

import importlib.util
import json
import os
import re
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


def processor_config(family: str) -> Optional[dict]:
    """Return ``family``'s ``preprocessor_config.json`` as transformers 5 writes it, or None.

    UperNet and MaskFormer get none (ImageNet defaults).
    """
    if family not in ('segformer', 'mask2former'):
        return None
    config = {'do_normalize': True, 'do_rescale': True, 'do_resize': True,
              'image_mean': list(PROCESSOR_MEAN), 'image_std': list(PROCESSOR_STD),
              'rescale_factor': 1.0 / 255.0, 'resample': 2}
    if family == 'segformer':
        return dict(config, image_processor_type='SegformerImageProcessor', do_reduce_labels=False,
                    size={'height': 512, 'width': 512})
    return dict(config, image_processor_type='Mask2FormerImageProcessor', ignore_index=255,
                size={'shortest_edge': 800, 'longest_edge': 1333}, size_divisor=32)


def processor_config_2021(family: str) -> dict:
    """Return ``preprocessor_config.json`` as the published checkpoints have it.

    SegFormer (2021, SegformerFeatureExtractor) and Mask2Former (transformers' detectron2
    converter): no ``do_rescale``, an int ``size``, ``reduce_labels``, Mask2Former's
    ``size_divisibility``.
    """
    config = {'do_normalize': True, 'do_resize': True, 'image_mean': list(PROCESSOR_MEAN),
              'image_std': list(PROCESSOR_STD), 'reduce_labels': False, 'resample': 2}
    if family == 'segformer':
        return dict(config, feature_extractor_type='SegformerFeatureExtractor', size=1024)
    if family == 'mask2former':
        return dict(config, feature_extractor_type='MaskFormerFeatureExtractor', size=1024,
                    max_size=2048, ignore_index=255, num_labels=19, size_divisibility=32)
    raise ValueError(f'no 2021 processor config for {family!r}')


def reference_processor(directory: str):
    """Return transformers' own image processor for a saved tiny model.

    It needs pillow (some 5.x versions also torchvision): raises ImportError when this
    environment cannot build it.
    """
    import transformers
    try:
        return transformers.AutoImageProcessor.from_pretrained(directory)
    except ValueError as error:  # 5.20: "None of these classes could be imported"
        if 'could be imported' not in str(error) and 'dependencies' not in str(error):
            raise
        raise ImportError(str(error)) from error


def _write_json(directory: str, name: str, data: dict) -> None:
    with open(os.path.join(directory, name), 'w', encoding='utf-8') as stream:
        json.dump(data, stream, indent=2, sort_keys=True)


def save_tiny_model(family: str, directory, num_labels: int = 5,
                    id2label: Optional[Dict[int, str]] = None,
                    predict_class: Optional[int] = None) -> str:
    """Build, optionally bias (:func:`always_predict`) and save a tiny model; returns the dir."""
    directory = str(directory)
    network = build_tiny_model(family, num_labels, id2label)
    if predict_class is not None:
        always_predict(network, family, predict_class)
    network.save_pretrained(directory)
    processor = processor_config(family)
    if processor is not None:
        _write_json(directory, 'preprocessor_config.json', processor)
    assert os.path.isfile(os.path.join(directory, 'config.json'))
    return directory


# transformers 5 name -> transformers 4 name, per family (from transformers 5's
# conversion_mapping.py, read backwards); no-ops where the installed version already saves the
# old names (5.20 and 5.25 do, except Swin's new final norm).
_SWIN = r'(pixel_level_module\.encoder\.)'
TRANSFORMERS4_NAMES = {
    'segformer': [
        (r'stages\.(\d+)\.patch_embeddings\.', r'encoder.patch_embeddings.\1.'),
        (r'stages\.(\d+)\.blocks\.', r'encoder.block.\1.'),
        (r'stages\.(\d+)\.layer_norm', r'encoder.layer_norm.\1'),
        (r'attention\.q_proj', 'attention.self.query'),
        (r'attention\.k_proj', 'attention.self.key'),
        (r'attention\.v_proj', 'attention.self.value'),
        (r'attention\.sequence_reduction\.sequence_reduction', 'attention.self.sr'),
        (r'attention\.sequence_reduction\.layer_norm', 'attention.self.layer_norm'),
        (r'attention\.o_proj', 'attention.output.dense'),
        (r'mlp\.fc1', 'mlp.dense1'), (r'mlp\.fc2', 'mlp.dense2'),
        (r'layernorm_before', 'layer_norm_1'), (r'layernorm_after', 'layer_norm_2'),
        (r'decode_head\.linear_projections', 'decode_head.linear_c'),
    ],
    'mask2former': [
        (_SWIN + r'swin\.(embeddings|encoder)\.', r'\1\2.'),
        (_SWIN + r'(.*)attention\.q_proj', r'\1\2attention.self.query'),
        (_SWIN + r'(.*)attention\.k_proj', r'\1\2attention.self.key'),
        (_SWIN + r'(.*)attention\.v_proj', r'\1\2attention.self.value'),
        (_SWIN + r'(.*)attention\.relative_position_bias\.relative_position_bias_table',
         r'\1\2attention.self.relative_position_bias_table'),
        (_SWIN + r'(.*)attention\.o_proj', r'\1\2attention.output.dense'),
        (_SWIN + r'(.*)mlp\.fc1', r'\1\2intermediate.dense'),
        (_SWIN + r'(.*)mlp\.fc2', r'\1\2output.dense'),
    ],
}
# Weights transformers 5 has and the published checkpoints lack (the model marks them ignorable).
NOT_IN_OLD_CHECKPOINTS = {'mask2former': r'swin\.layernorm\.', 'segformer': None}


def transformers4_state_dict(state_dict: Dict[str, torch.Tensor], family: str
                             ) -> Dict[str, torch.Tensor]:
    """``state_dict`` with transformers 4 key names, without the weights old checkpoints lack."""
    renamed = {}
    dropped = NOT_IN_OLD_CHECKPOINTS[family]
    for key, value in state_dict.items():
        if dropped and re.search(dropped, key):
            continue
        for pattern, replacement in TRANSFORMERS4_NAMES[family]:
            key = re.sub(pattern, replacement, key)
        renamed[key] = value
    return renamed


def save_old_way(family: str, directory, num_labels: int = 5,
                 id2label: Optional[Dict[int, str]] = None,
                 predict_class: Optional[int] = None) -> str:
    """Return a tiny model saved as the published hub checkpoints were.

    ``pytorch_model.bin`` with transformers 4 key names (Swin's relative-position index buffers
    included, its new final norm left out), ``config.json`` and the 2021
    ``preprocessor_config.json``. Returns the dir.
    """
    from safetensors.torch import load_file
    directory = str(directory)
    save_tiny_model(family, directory, num_labels, id2label, predict_class)
    weights = os.path.join(directory, 'model.safetensors')
    state_dict = transformers4_state_dict(load_file(weights), family)
    if family == 'mask2former':
        state_dict.update(_swin_position_index_buffers(family, num_labels, id2label))
    os.remove(weights)
    torch.save(state_dict, os.path.join(directory, 'pytorch_model.bin'))
    _write_json(directory, 'preprocessor_config.json', processor_config_2021(family))
    return directory


def _swin_position_index_buffers(family, num_labels, id2label) -> Dict[str, torch.Tensor]:
    """Return each Swin block's ``relative_position_index`` buffer, as transformers 4 saved it."""
    network = build_tiny_model(family, num_labels, id2label)
    buffers = {}
    for name, buffer in network.named_buffers():
        if name.endswith('relative_position_index') and 'pixel_level_module.encoder.' in name:
            old = re.sub(r'swin\.encoder\.', 'encoder.', name)
            buffers[re.sub(r'attention\..*relative_position_index',
                           'attention.self.relative_position_index', old)] = buffer.clone()
    return buffers
