"""Hugging Face ``transformers`` segmentation networks as the keyframe network (paper §3.2).

SPEC ``hf:MODEL``: MODEL is a directory in the ``save_pretrained`` layout (``config.json``, the
weights, optionally ``preprocessor_config.json``) or a hub id such as
``nvidia/segformer-b0-finetuned-cityscapes-1024-1024``. Hub ids are read ONLY from the local
Hugging Face cache (:mod:`evs_ros.models.hf_hub`); nothing is ever downloaded here.

Families (``config.model_type``); probabilities P and low-level features F (the Refiner's input)
are both at 1/4 of the input:

- ``segformer`` (SegformerForSemanticSegmentation): P = softmax of ``logits``; F =
  ``hidden_states[0]``, the output of the first Mix Transformer stage (``hidden_sizes[0]``
  channels).
- ``upernet`` (UperNetForSemanticSegmentation, any backbone: ConvNeXt, Swin, ...): P = softmax of
  the ``decode_head`` logits (HF's upsampling to the input size is skipped); F =
  ``backbone(...).feature_maps[0]``, the first backbone stage.
- ``mask2former`` (Mask2FormerForUniversalSegmentation) and ``maskformer``
  (MaskFormerForInstanceSegmentation): class queries x mask queries, see
  :func:`mask_queries_to_probs`; F = ``encoder_hidden_states[0]``, the first backbone stage.

Mask2Former/MaskFormer models need ``scipy`` (transformers builds their training loss on load).

Preprocessing follows the model's ``preprocessor_config.json`` (as transformers 5 writes it, or
as the published 2021-2022 files have it): RGB order, ``do_rescale`` / ``rescale_factor``,
``do_normalize`` / ``image_mean`` / ``image_std`` and ``size_divisor`` (``size_divisibility``);
without that file ImageNet's mean/std on [0, 1] RGB are used (and a warning says so). It runs as
one multiply-add on the device, without PIL. ``size`` / ``do_resize`` are deliberately NOT
applied: the frame keeps its own resolution and aspect ratio, because the pipeline already
chooses the network input size (the operating point's downscale D) and a fixed square resize
(Cityscapes SegFormers say 1024x1024) would distort every frame of a video. Frames are padded
bottom/right (with the mean colour) to ``size_divisor`` (UperNet and Mask2Former/MaskFormer: 32
by default; SegFormer: none) and outputs cropped back to ``ceil(H / 4) x ceil(W / 4)`` cells;
cell i covers input pixels ``[4 i, 4 i + 4)``.

Classes follow :func:`evs_ros.data.classes.class_mapping` applied to ``config.id2label``: a
Cityscapes network is published in trainId order, any other one in its own order.
"""

import contextlib
import json
import logging
import os
import re
from dataclasses import dataclass
from typing import Tuple

import numpy as np
import torch

from evs_ros.errors import one_line
from evs_ros.data.classes import class_mapping
from evs_ros.models.base import Prediction
from evs_ros.models.graph import TorchRunner
from evs_ros.models.hf_hub import resolve_model_dir
from evs_ros.models.icnet import check_image, place_network

LOGGER = logging.getLogger('evs_ros')
HEAD_CLASSES = {'segformer': 'SegformerForSemanticSegmentation',
                'upernet': 'UperNetForSemanticSegmentation',
                'mask2former': 'Mask2FormerForUniversalSegmentation',
                'maskformer': 'MaskFormerForInstanceSegmentation'}
DEFAULT_SIZE_DIVISOR = {'segformer': 1, 'upernet': 32, 'mask2former': 32, 'maskformer': 32}
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
# Keys a complete checkpoint may lack without harm (buffers rebuilt at load time).
HARMLESS_MISSING = ('num_batches_tracked', 'position_ids')
IGNORE_MISSING_ATTRIBUTE = '_keys_to_ignore_on_load_missing'


@dataclass(frozen=True)
class Preprocessing:
    """How a frame becomes ``pixel_values``: ``(rgb * rescale_factor - mean) / std``.

    Attributes:
        mean_rgb: per-channel mean (after rescaling); zeros when ``do_normalize`` is false.
        std_rgb: per-channel std; ones when ``do_normalize`` is false.
        rescale_factor: multiplies the uint8 values (1/255 usually; 1.0 when ``do_rescale`` is
            false).
        size_divisor: inputs are padded bottom/right to a multiple of this.
        source: where the values come from (the file, or the ImageNet default).
    """

    mean_rgb: Tuple[float, float, float] = IMAGENET_MEAN_RGB
    std_rgb: Tuple[float, float, float] = IMAGENET_STD_RGB
    rescale_factor: float = 1.0 / 255.0
    size_divisor: int = 1
    source: str = 'ImageNet mean/std (no preprocessor_config.json)'


def _triple(value, default) -> Tuple[float, float, float]:
    if value is None:
        return default
    values = [float(v) for v in (value if isinstance(value, (list, tuple)) else [value] * 3)]
    if len(values) != 3:
        raise ValueError(f'expected 3 RGB values, got {value!r}')
    return tuple(values)


def read_preprocessing(model_dir: str, family: str) -> Preprocessing:
    """:class:`Preprocessing` from ``MODEL_DIR/preprocessor_config.json`` (see module docstring).

    ``size`` / ``do_resize`` are ignored on purpose: frames keep their resolution.
    """
    divisor = DEFAULT_SIZE_DIVISOR.get(family, 1)
    path = os.path.join(model_dir, 'preprocessor_config.json')
    if not os.path.isfile(path):
        LOGGER.warning('%s has no preprocessor_config.json: using ImageNet mean/std on RGB in '
                       '[0, 1]', model_dir)
        return Preprocessing(size_divisor=divisor)
    with open(path, 'r', encoding='utf-8') as stream:
        processor = json.load(stream)
    normalize = processor.get('do_normalize', True)
    mean = _triple(processor.get('image_mean'), IMAGENET_MEAN_RGB) if normalize else (0.0,) * 3
    std = _triple(processor.get('image_std'), IMAGENET_STD_RGB) if normalize else (1.0,) * 3
    rescale = float(processor.get('rescale_factor', 1.0 / 255.0))
    # size_divisibility: the name in the published Mask2Former/MaskFormer files (transformers 4)
    own_divisor = processor.get('size_divisor') or processor.get('size_divisibility') or 1
    return Preprocessing(mean, std, rescale if processor.get('do_rescale', True) else 1.0,
                         max(divisor, int(own_divisor)), path)


def load_hf_model(model: str, device: str = 'auto', fp16: bool = False):
    """``HfSegmentationModel`` for ``hf:MODEL`` (see module docstring); errors name the fix."""
    model_dir = resolve_model_dir(model)
    where = f'hf:{model}'
    config = _read_config(model_dir, where)
    family = _semantic_family(config, where)
    network = _load_network(model_dir, family, where)
    return HfSegmentationModel(network, family, read_preprocessing(model_dir, family), device,
                               fp16)


def _read_config(model_dir: str, where: str):
    if not os.path.isfile(os.path.join(model_dir, 'config.json')):
        raise FileNotFoundError(f'{where}: {model_dir} has no config.json; hf:MODEL needs a '
                                'directory written by save_pretrained (config.json + weights)')
    from transformers import AutoConfig
    try:
        with _quiet_transformers():
            return AutoConfig.from_pretrained(model_dir, local_files_only=True)
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f'{where}: unreadable config.json: {one_line(error)}') from error


def _semantic_family(config, where: str) -> str:
    """Return the family of ``config``; ValueError when it has no semantic segmentation head."""
    family = getattr(config, 'model_type', None)
    architectures = list(getattr(config, 'architectures', None) or ())
    supported = ', '.join(HEAD_CLASSES.values())
    if family not in HEAD_CLASSES:
        raise ValueError(f'{where} (model_type {family!r}) has no semantic segmentation head '
                         f'evs_ros can run; supported: {supported}')
    if architectures and HEAD_CLASSES[family] not in architectures:
        raise ValueError(f'{where} has no semantic segmentation head: it was saved as '
                         f'{", ".join(architectures)}, not {HEAD_CLASSES[family]}')
    return family


def _load_network(model_dir: str, family: str, where: str) -> torch.nn.Module:
    import transformers
    head_class = getattr(transformers, HEAD_CLASSES[family])
    try:
        with _quiet_transformers():
            network, info = head_class.from_pretrained(
                model_dir, local_files_only=True, output_loading_info=True, dtype=torch.float32)
    except ImportError as error:
        fix = 'pip install scipy' if 'scipy' in str(error) else one_line(error)
        raise ValueError(f'{where}: transformers cannot build {HEAD_CLASSES[family]} here: '
                         f'{fix}') from error
    except (OSError, ValueError, RuntimeError) as error:
        raise ValueError(f'{where}: cannot load the weights in {model_dir}: '
                         f'{one_line(error)}') from error
    missing = fatal_missing_keys(network, info.get('missing_keys', ()))
    if missing:
        what = ('has no semantic segmentation head'
                if any(re.search('head|class|predictor', key) for key in missing)
                else 'is incomplete')
        raise ValueError(f'{where} {what}: {len(missing)} weights of {HEAD_CLASSES[family]} are '
                         f'missing from {model_dir} (e.g. {sorted(missing)[0]})')
    return network


def fatal_missing_keys(network: torch.nn.Module, missing_keys) -> list:
    """Return the weights in ``missing_keys`` that the checkpoint must have had.

    A key is forgiven when it is a rebuilt buffer (``HARMLESS_MISSING``) or when a pattern of
    ``_keys_to_ignore_on_load_missing`` of the model or of ANY of its submodules matches it
    (``re.search``, as transformers matches them). transformers gathers those patterns only
    through nested ``PreTrainedModel`` children, so a backbone behind a plain ``nn.Module``
    (Mask2Former's Swin behind ``pixel_level_module``) has its patterns lost: the published
    Mask2Former checkpoints lack ``swin.layernorm.*``, which ``SwinBackbone`` marks as ignorable
    (its output never goes through that norm).
    """
    patterns = set()
    for module in network.modules():
        patterns.update(getattr(module, IGNORE_MISSING_ATTRIBUTE, None) or ())
    ignored = re.compile('|'.join(f'(?:{pattern})' for pattern in sorted(patterns))
                         ) if patterns else None
    return [key for key in missing_keys if not key.endswith(HARMLESS_MISSING)
            and not (ignored is not None and ignored.search(key))]


@contextlib.contextmanager
def _quiet_transformers():
    """Silence transformers' load report and progress bars while loading."""
    from transformers.utils import logging as hf_logging
    verbosity, progress = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if progress:
            hf_logging.enable_progress_bar()


class HfSegmentationModel:
    """A transformers segmentation network as a ``SegmentationModel`` (numpy in, numpy out).

    Args:
        network: a loaded ``*ForSemanticSegmentation`` / mask-query model of ``family``.
        family: ``config.model_type``, a key of ``HEAD_CLASSES``.
        preprocessing: from :func:`read_preprocessing`.
        device: 'auto', 'cpu', 'cuda' or 'cuda:N'.
        fp16: half precision (CUDA only; ignored on the CPU).

    Attributes:
        num_classes: published classes (19 for a Cityscapes network, in trainId order).
        class_names: tuple of the published class names.
        feature_channels: channels Cf of ``Prediction.features`` (first encoder stage).
        mapping: the :class:`~evs_ros.data.classes.ClassMapping` from network channels.
    """

    def __init__(self, network: torch.nn.Module, family: str, preprocessing: Preprocessing,
                 device: str = 'auto', fp16: bool = False):
        if family not in HEAD_CLASSES:
            raise ValueError(f'family {family!r} is not one of {sorted(HEAD_CLASSES)}')
        self.network, self.device, self.fp16 = place_network(network, device, fp16)
        self.family = family
        self.preprocessing = preprocessing
        config = network.config
        id2label = {int(key): name for key, name in (config.id2label or {}).items()}
        names = [id2label.get(index, f'class_{index}') for index in range(config.num_labels)]
        self.mapping = class_mapping(names, config.num_labels)
        if self.mapping.dropped:
            LOGGER.warning('%s: Cityscapes classes kept in trainId order; extra classes dropped: '
                           '%s', family, ', '.join(self.mapping.dropped))
        self.num_classes = self.mapping.num_classes
        self.class_names = tuple(self.mapping.names)
        self.feature_channels = _first_stage_channels(self.network, family)
        self._source_index = (None if self.mapping.source_index is None else
                              torch.as_tensor(self.mapping.source_index, device=self.device))
        self._scale, self._offset = _affine(preprocessing, self.device)
        self.graph_name = f'hf-{family}'
        self.runner = TorchRunner(HfGraph(self.network, family))

    def predict(self, image_bgr: np.ndarray) -> Prediction:
        """Segment one uint8 (H, W, 3) BGR frame.

        Returns:
            Prediction with probs float32 (C, ceil(H/4), ceil(W/4)) summing to 1 over C (in
            published class order) and features float32 (Cf, ceil(H/4), ceil(W/4)) from the
            first encoder stage (see the module docstring).
        """
        height, width = check_image(image_bgr)
        data = self.prepare(image_bgr)
        probs, features = self.runner(data)
        with torch.inference_mode():
            probs = self._publish(probs.float()[0].to(self.device))
            probs = _crop_cells(probs, height, width, data.shape[-2:])
            features = _crop_cells(features.float()[0], height, width, data.shape[-2:])
        return Prediction(probs=probs.cpu().numpy(), features=features.cpu().numpy())

    def prepare(self, image_bgr: np.ndarray) -> torch.Tensor:
        """Convert uint8 (H, W, 3) BGR to float (1, 3, Hp, Wp) normalised RGB on the device.

        Padded bottom/right with zeros (the mean colour) to a multiple of ``size_divisor``.
        """
        image = torch.from_numpy(np.ascontiguousarray(image_bgr)).to(self.device)
        rgb = image.permute(2, 0, 1).flip(0)[None].float()  # (1, 3, H, W) RGB in [0, 255]
        data = rgb * self._scale + self._offset
        divisor = self.preprocessing.size_divisor
        pad_h, pad_w = (-data.shape[-2]) % divisor, (-data.shape[-1]) % divisor
        if pad_h or pad_w:
            data = torch.nn.functional.pad(data, (0, pad_w, 0, pad_h))
        return data.half() if self.fp16 else data

    def _publish(self, probs: torch.Tensor) -> torch.Tensor:
        """(C_network, h, w) -> (C, h, w) in published order (see ``mapping``)."""
        if self._source_index is None:
            return probs
        probs = probs.index_select(0, self._source_index)
        if self.mapping.dropped:
            probs = probs / probs.sum(dim=0, keepdim=True).clamp_min(1e-12)
        return probs


class HfGraph(torch.nn.Module):
    """The graph of a transformers network (what an engine runs, ``evs_ros/models/graph.py``).

    Normalised padded RGB ``data`` (1, 3, Hp, Wp) -> ``probs`` (softmax over the network's own
    classes) and ``features`` (first stage), both float32 at 1/4, uncropped. Height and width may
    be dynamic in an export (``dynamic_axes``).
    """

    input_names = ('data',)
    output_names = ('probs', 'features')
    dynamic_axes = {'data': {2: 'height', 3: 'width'}, 'probs': {2: 'rows', 3: 'cols'},
                    'features': {2: 'rows', 3: 'cols'}}

    def __init__(self, network: torch.nn.Module, family: str):
        super().__init__()
        self.network, self.family = network, family

    def forward(self, data: torch.Tensor):
        probs, features = _FORWARD[self.family](self.network, data)
        return probs.float(), features.float()


def _affine(preprocessing: Preprocessing, device) -> Tuple[torch.Tensor, torch.Tensor]:
    """(1, 3, 1, 1) scale and offset with ``rgb * scale + offset`` = the normalised input."""
    mean = torch.tensor(preprocessing.mean_rgb, dtype=torch.float32)
    std = torch.tensor(preprocessing.std_rgb, dtype=torch.float32)
    scale = preprocessing.rescale_factor / std
    return scale.view(1, 3, 1, 1).to(device), (-mean / std).view(1, 3, 1, 1).to(device)


def _crop_cells(tensor: torch.Tensor, height: int, width: int, padded_hw) -> torch.Tensor:
    """Crop (C, h, w) maps of a padded input to the cells covering the H x W frame."""
    rows = -(-height * tensor.shape[-2] // int(padded_hw[0]))
    cols = -(-width * tensor.shape[-1] // int(padded_hw[1]))
    return tensor[:, :rows, :cols]


def _first_stage_channels(network: torch.nn.Module, family: str) -> int:
    if family == 'segformer':
        return int(network.config.hidden_sizes[0])
    if family == 'upernet':
        return int(network.backbone.channels[0])
    return int(network.model.pixel_level_module.encoder.channels[0])


def _segformer_forward(network, data):
    """-> probs (1, C, H/4, W/4), F = hidden_states[0] (1, hidden_sizes[0], H/4, W/4)."""
    out = network(pixel_values=data, output_hidden_states=True)
    return torch.softmax(out.logits.float(), dim=1), out.hidden_states[0]


def _upernet_forward(network, data):
    """-> probs (1, C, H/4, W/4) before HF's upsampling, F = feature_maps[0] (1, Cf, H/4, W/4)."""
    feature_maps = network.backbone(data).feature_maps
    logits = network.decode_head(feature_maps)
    return torch.softmax(logits.float(), dim=1), feature_maps[0]


def _mask_query_forward(network, data):
    """-> probs (1, C, H/4, W/4), F = encoder_hidden_states[0] (1, Cf, H/4, W/4)."""
    out = network(pixel_values=data, output_hidden_states=True)
    probs = mask_queries_to_probs(out.class_queries_logits, out.masks_queries_logits)
    return probs, out.encoder_hidden_states[0]


def mask_queries_to_probs(class_logits: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor:
    """Per-class probabilities from class and mask queries (Mask2Former/MaskFormer).

    Args:
        class_logits: (N, Q, C + 1) class logits per query; the last class is "no object".
        mask_logits: (N, Q, h, w) mask logits per query.

    Returns:
        float32 (N, C, h, w): ``sum_q softmax(class)[q, c] * sigmoid(mask)[q]``, normalised to
        sum 1 over C.
    """
    class_probs = torch.softmax(class_logits.float(), dim=-1)[..., :-1]  # (N, Q, C)
    masks = torch.sigmoid(mask_logits.float())  # (N, Q, h, w)
    probs = torch.einsum('nqc,nqhw->nchw', class_probs, masks)  # (N, C, h, w)
    return probs / probs.sum(dim=1, keepdim=True).clamp_min(1e-12)


_FORWARD = {'segformer': _segformer_forward, 'upernet': _upernet_forward,
            'mask2former': _mask_query_forward, 'maskformer': _mask_query_forward}
