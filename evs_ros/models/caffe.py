"""Official ICNet Caffe weights without Caffe (design §6, paper §4.3.2).

A ``.caffemodel`` is a protobuf ``NetParameter``. We read the wire format directly with a tiny
varint / length-delimited parser, so neither Caffe nor a compiled ``caffe.proto`` is needed:

- ``NetParameter``: ``layer`` = 100 (``LayerParameter``), legacy ``layers`` = 2
  (``V1LayerParameter``).
- ``LayerParameter``: ``name`` = 1, ``type`` = 2, ``blobs`` = 7.
- ``V1LayerParameter``: ``name`` = 4, ``blobs`` = 6.
- ``BlobProto``: ``shape`` = 7 (``BlobShape.dim`` = 1, int64), ``data`` = 5 (float32),
  ``double_data`` = 8, legacy ``num/channels/height/width`` = 1..4.

Two variants of the official weights exist: ``bnnomerge`` (Convolution without bias + a PSPNet
``BN`` layer ``NAME/bn`` with blobs scale, shift, mean, variance, each (1, C, 1, 1);
y = scale * (x - mean) / sqrt(var + 1e-5) + shift) and ``merged`` (BN folded into conv bias).
"""

import os
from typing import Dict, Iterator, List, Tuple

import numpy as np
import torch
from torch import nn

from evs_ros.models.checkpoint import save_checkpoint
from evs_ros.models.icnet import ICNet, prototxt_name_map

VARIANTS = ('auto', 'bnnomerge', 'merged')
WIRE_VARINT, WIRE_FIXED64, WIRE_LEN, WIRE_FIXED32 = 0, 1, 2, 5


class CaffeFormatError(ValueError):
    """A caffemodel that is corrupt, truncated or does not fit ICNet; the message names where."""


def _read_varint(buf: bytes, pos: int, end: int) -> Tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= end:
            raise CaffeFormatError(f'truncated varint at byte {pos}')
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise CaffeFormatError(f'varint longer than 10 bytes at byte {pos}')


def iter_fields(buf: bytes, start: int, end: int) -> Iterator[Tuple[int, int, object]]:
    """Yield (field number, wire type, value) of one message; LEN values are (start, end) spans."""
    pos = start
    while pos < end:
        key, pos = _read_varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if wire == WIRE_VARINT:
            value, pos = _read_varint(buf, pos, end)
        elif wire in (WIRE_FIXED64, WIRE_FIXED32):
            size = 8 if wire == WIRE_FIXED64 else 4
            if pos + size > end:
                raise CaffeFormatError(f'truncated fixed{size * 8} field {field} at byte {pos}')
            value, pos = buf[pos:pos + size], pos + size
        elif wire == WIRE_LEN:
            length, pos = _read_varint(buf, pos, end)
            if pos + length > end:
                raise CaffeFormatError(f'field {field} at byte {pos} claims {length} bytes but '
                                       f'the message ends at byte {end} (truncated file?)')
            value, pos = (pos, pos + length), pos + length
        else:
            raise CaffeFormatError(f'unsupported wire type {wire} of field {field} at byte {pos}')
        if field == 0:
            raise CaffeFormatError(f'invalid field number 0 before byte {pos} (corrupt file?)')
        yield field, wire, value


def _packed_ints(buf: bytes, wire: int, value) -> List[int]:
    if wire == WIRE_VARINT:
        return [value]
    values, pos = [], value[0]
    while pos < value[1]:
        number, pos = _read_varint(buf, pos, value[1])
        values.append(number)
    return values


def _parse_blob(buf: bytes, span: Tuple[int, int]) -> np.ndarray:
    """Decode a BlobProto: float32 array with its shape (``shape`` or legacy num/channels/h/w)."""
    shape, legacy, chunks = None, {}, []
    for field, wire, value in iter_fields(buf, *span):
        if field == 7 and wire == WIRE_LEN:
            shape = []
            for dim_field, dim_wire, dim_value in iter_fields(buf, *value):
                if dim_field == 1:
                    shape.extend(_packed_ints(buf, dim_wire, dim_value))
        elif field in (1, 2, 3, 4) and wire == WIRE_VARINT:
            legacy[field] = value
        elif field == 5:
            raw = buf[value[0]:value[1]] if wire == WIRE_LEN else value
            chunks.append(np.frombuffer(raw, dtype='<f4'))
        elif field == 8:
            raw = buf[value[0]:value[1]] if wire == WIRE_LEN else value
            chunks.append(np.frombuffer(raw, dtype='<f8').astype(np.float32))
    data = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if shape is None:
        shape = [legacy.get(key, 1) for key in (1, 2, 3, 4)] if legacy else [data.size]
    if int(np.prod(shape)) != data.size:
        raise CaffeFormatError(f'blob with shape {shape} holds {data.size} values')
    return data.astype(np.float32).reshape(shape)


def _parse_layer(buf: bytes, span: Tuple[int, int], legacy: bool) -> Tuple[str, List[np.ndarray]]:
    name_field, blob_field = (4, 6) if legacy else (1, 7)
    name, blobs = None, []
    for field, wire, value in iter_fields(buf, *span):
        if field == name_field and wire == WIRE_LEN:
            name = buf[value[0]:value[1]].decode('utf-8', errors='replace')
        elif field == blob_field and wire == WIRE_LEN:
            try:
                blobs.append(_parse_blob(buf, value))
            except CaffeFormatError as error:
                raise CaffeFormatError(f'layer {name!r}: {error}') from error
    return name or f'<unnamed at byte {span[0]}>', blobs


def parse_caffemodel(buf: bytes) -> Dict[str, List[np.ndarray]]:
    """Parse serialized NetParameter bytes -> {layer name: [float32 blobs]} (layers with blobs)."""
    layers = {}
    for field, wire, value in iter_fields(buf, 0, len(buf)):
        if field in (100, 2) and wire == WIRE_LEN:
            name, blobs = _parse_layer(buf, value, legacy=field == 2)
            if blobs:
                layers[name] = blobs
    if not layers:
        raise CaffeFormatError('no layer with weights found: not a .caffemodel (NetParameter)?')
    return layers


def load_caffemodel(path: str) -> Dict[str, List[np.ndarray]]:
    """Read a ``.caffemodel`` file -> {layer name: [float32 numpy blobs]}."""
    with open(path, 'rb') as stream:
        buf = stream.read()
    try:
        return parse_caffemodel(buf)
    except CaffeFormatError as error:
        raise CaffeFormatError(f'{path}: {error}') from error


def detect_variant(blobs: Dict[str, List[np.ndarray]]) -> str:
    """'bnnomerge' when separate ``NAME/bn`` layers exist, else 'merged'."""
    return 'bnnomerge' if any(name.endswith('/bn') for name in blobs) else 'merged'


def _blob(blobs, layer: str, index: int, shape: Tuple[int, ...]) -> torch.Tensor:
    if layer not in blobs:
        raise CaffeFormatError(f'layer {layer!r} is missing from the caffemodel')
    if index >= len(blobs[layer]):
        raise CaffeFormatError(f'layer {layer!r} has {len(blobs[layer])} blobs, '
                               f'expected at least {index + 1}')
    array = blobs[layer][index]
    if array.size != int(np.prod(shape)) or \
            (array.ndim == len(shape) and tuple(array.shape) != tuple(shape)):
        raise CaffeFormatError(f'layer {layer!r} blob {index} has shape {tuple(array.shape)}, '
                               f'expected {tuple(shape)}')
    return torch.from_numpy(array.reshape(shape).copy())


def _assign_conv(conv: nn.Conv2d, blobs, layer: str, with_bias: bool) -> None:
    conv.weight.data.copy_(_blob(blobs, layer, 0, tuple(conv.weight.shape)))
    if with_bias:
        conv.bias.data.copy_(_blob(blobs, layer, 1, (conv.out_channels,)))


def _assign_bn(bn: nn.BatchNorm2d, blobs, layer: str) -> None:
    """Assign PSPNet BN blobs in order scale, shift, mean, variance (each (1, C, 1, 1))."""
    for index, target in enumerate((bn.weight, bn.bias, bn.running_mean, bn.running_var)):
        target.data.copy_(_blob(blobs, layer, index, (bn.num_features,)))
    if (bn.running_var < 0).any():
        raise CaffeFormatError(f'layer {layer!r}: blob 3 (variance) has negative values; the BN '
                               'blobs are not in the expected order scale, shift, mean, variance')


def _assign_merged_bn(bn: nn.BatchNorm2d, bias: torch.Tensor) -> None:
    """Make ``bn`` the identity plus ``bias``: var = 1 - eps so sqrt(var + eps) = 1."""
    bn.weight.data.fill_(1.0)
    bn.running_mean.data.zero_()
    bn.running_var.data.fill_(1.0 - bn.eps)
    bn.bias.data.copy_(bias)


def _fold_input_scale(network: ICNet, blobs) -> None:
    """Fold the ``data_sub1`` Scale layer (per-BGR-channel factor) into the two first convs."""
    if 'data_sub1' not in blobs:
        return
    scale = _blob(blobs, 'data_sub1', 0, (3,))
    for conv in (network.conv1_1_3x3_s2[0], network.conv1_sub1[0]):
        conv.weight.data.mul_(scale.view(1, 3, 1, 1))


def assign_caffe_weights(network: ICNet, blobs: Dict[str, List[np.ndarray]],
                         variant: str = 'auto') -> str:
    """Copy Caffe blobs into a full-width ``network`` (in place); returns the variant used."""
    if variant not in VARIANTS:
        raise ValueError(f'variant={variant!r}; expected one of {VARIANTS}')
    variant = detect_variant(blobs) if variant == 'auto' else variant
    modules = dict(network.named_modules())
    for path, layer in prototxt_name_map(network).items():
        module = modules[path]
        if isinstance(module, nn.Conv2d):  # conv6_cls, sub4_out, sub24_out
            _assign_conv(module, blobs, layer, with_bias=True)
        elif variant == 'bnnomerge':
            _assign_conv(module[0], blobs, layer, with_bias=False)
            _assign_bn(module[1], blobs, f'{layer}/bn')
        else:
            _assign_conv(module[0], blobs, layer, with_bias=False)
            _assign_merged_bn(module[1], _blob(blobs, layer, 1, (module[0].out_channels,)))
    _fold_input_scale(network, blobs)
    return variant


def icnet_from_caffemodel(path: str, variant: str = 'auto') -> Tuple[ICNet, str]:
    """Build a full-width ICNet from a caffemodel -> (network, variant used).

    The network has the aux heads ``sub4_out`` / ``sub24_out`` only when the file holds them.
    """
    blobs = load_caffemodel(path)
    if 'conv6_cls' not in blobs:
        raise CaffeFormatError(f"{path}: layer 'conv6_cls' is missing; is this an ICNet model?")
    num_classes = int(blobs['conv6_cls'][0].shape[0])
    # training caffemodels also hold the cascade-label-guidance heads: keep them for fine-tuning
    aux_heads = 'sub4_out' in blobs and 'sub24_out' in blobs
    network = ICNet(num_classes=num_classes, width_mult=1.0, aux_heads=aux_heads)
    try:
        variant = assign_caffe_weights(network, blobs, variant)
    except CaffeFormatError as error:
        raise CaffeFormatError(f'{path}: {error}') from error
    return network.eval(), variant


OFFICIAL_MD5 = {'6da59a72a254862106420983a7723624':
                'icnet_cityscapes_train_30k_bnnomerge.caffemodel'}


def convert_caffe(in_path: str, out_path: str, variant: str = 'auto') -> str:
    """Convert ``in_path`` to an evs_ros checkpoint at ``out_path``; returns the variant used."""
    network, used_variant = icnet_from_caffemodel(in_path, variant)
    from evs_ros.models.download import file_digest
    md5 = file_digest(in_path, 'md5')
    meta = {'source': os.path.basename(in_path), 'source_md5': md5, 'caffe_variant': used_variant,
            'official': OFFICIAL_MD5.get(md5, '')}
    config = {'num_classes': network.num_classes, 'width_mult': 1.0,
              'aux_heads': network.sub4_out is not None}
    save_checkpoint(out_path, 'icnet', config, network, meta=meta)
    return used_variant
