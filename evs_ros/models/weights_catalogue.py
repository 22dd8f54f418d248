"""Public checkpoints that ``evs weights get NAME`` fetches (design §6, issue 10).

Every figure names where it comes from; a figure that could not be confirmed is left empty.

- Sizes: the weight file's size on its download page (Hugging Face "Files" tab on ``main``; the
  ICNet README for the caffemodel), in MB as shown there.
- SegFormer mIoU: Cityscapes val, paper Table 1(a) (arXiv 2105.15203; single scale / multi-scale,
  sliding 1024x1024 windows) for B0-B5 at 1024x1024; the B0 real-time variants from paper Table 2,
  "SegFormer (Ours) MiT-B0" rows at short side 768 / 640 / 512. That those rows are these hub
  checkpoints is inferred from NVlabs/SegFormer's configs (test scale = the row's short side).
- Mask2Former mIoU: facebookresearch/Mask2Former MODEL_ZOO.md, Cityscapes semantic, Swin-T.
- ESPNetv2 mIoU and sizes: sacmehta/EdgeNets at commit 2b232d3 (model_zoo README; the sizes are
  the git blobs' sizes at that commit); the files there are plain PyTorch state_dicts (MIT).
- ICNet mIoU: hszhao/ICNet README, "train on trainset for 30K, evaluated on valset": 67.7 (stated
  there for the BN-merged file; ``bnnomerge`` is the same training run before BN folding).

How the published figures were measured (``WeightsEntry.published_protocol``), which is not how
evs_ros runs by default: every figure above is Cityscapes val at the checkpoint's training scale
(``trained_short_side``: 1024 = the full 2048x1024 frame, 512 = half size), with overlapping
sliding windows where the authors used them (``window``: the SegFormer B0-B5 1024x1024 models) and
the class scores upsampled BILINEARLY to the labels' resolution before the argmax. evs_ros feeds
the network the whole frame at the same training scale (``model.input_short_side: 0``; the
operating point's D scales from there) and takes the argmax at the network's output resolution
with ``model.upsample`` (docs/benchmarks.md section 14 measures what each difference costs).

Pinning: hub entries name the commit they were verified at (``revision``, 40 hex digits;
``revision_note`` says where it comes from, or why an entry is not pinned); ``evs weights get NAME
--revision main`` opts out.

Users add or override entries with a YAML/JSON file named by ``EVS_WEIGHTS_CATALOGUE``: a mapping
NAME -> the fields of ``WeightsEntry`` (``kind``, ``source``, ``backend`` at least).
"""

import re
from dataclasses import dataclass
from typing import Dict

CITYSCAPES_19 = 'Cityscapes 19 (trainIds)'
SEGFORMER_PAPER = 'SegFormer paper (arXiv 2105.15203) Table 1(a), Cityscapes val, SS / MS'
SEGFORMER_REALTIME = ('SegFormer paper (arXiv 2105.15203) Table 2, MiT-B0 real-time row at short '
                      'side {side}, Cityscapes val; row-to-checkpoint match inferred from the '
                      'NVlabs/SegFormer config test scale')
SEGFORMER_LICENSE = 'NVIDIA Source Code License, non-commercial (NVlabs/SegFormer README)'
HF_TREE = 'Hugging Face files page of {source} (pytorch_model.bin on main)'
COMMIT = re.compile(r'^[0-9a-f]{40}$')
NOT_PINNED = ('not pinned: no verified commit recorded (the hub is not reachable from the machine '
              'that checked this catalogue)')
# The sizes recorded with these commits match the sizes above (15.0 and 110 MB).
PINNED_ELSEWHERE = ('commit recorded with the pytorch_model.bin size ({size} bytes) by a public '
                    'model inventory (found through code search); not re-fetched here')


def is_pinned(revision: str) -> bool:
    """Return True for a full 40-hex commit (a branch or tag can move)."""
    return bool(COMMIT.match(revision or ''))


@dataclass(frozen=True)
class WeightsEntry:
    """One downloadable checkpoint.

    Attributes:
        name: short catalogue name, e.g. ``segformer-b0-cityscapes``.
        kind: ``hub`` (``source`` is a Hugging Face hub id) or ``file`` (``source`` is a URL).
        source: hub id ``org/model`` or the file's download URL.
        backend: backend kind the checkpoint gives: ``hf`` or ``icnet``.
        size_mb: published size of the weight file in MB (0 = unknown).
        classes: what the output classes are.
        accuracy: published accuracy ('' = not confirmed).
        accuracy_source: where ``accuracy`` is published.
        size_source: where ``size_mb`` is published.
        sha256: expected sha256 of a file download ('' = unknown).
        md5: expected md5 of a file download, used when no sha256 is known.
        filename: file name in the cache (file entries); defaults to the URL's last part.
        page: human-readable page where the checkpoint is published.
        license: licence terms as stated by the publisher ('' = not stated here).
        revision: hub revision for hub entries: the commit the entry was verified at (40 hex
            digits), or ``main`` when no verified commit is known (see ``revision_note``).
        revision_note: where the pinned commit comes from, or why the entry is not pinned.
        convert: ``icnet_caffe`` to convert a caffemodel into an evs_ros checkpoint on arrival.
        trained_short_side: short side (px) of the frames the network was trained and its
            published figure measured at (1024 = a full 2048x1024 Cityscapes frame); 0 = unknown.
            ``model.input_short_side: 0`` runs the network at this scale.
        window: ``HxW`` sliding windows of the published evaluation ('' = the whole frame);
            ``model.window: native`` uses them.
    """

    name: str
    kind: str
    source: str
    backend: str
    size_mb: float = 0.0
    classes: str = ''
    accuracy: str = ''
    accuracy_source: str = ''
    size_source: str = ''
    sha256: str = ''
    md5: str = ''
    filename: str = ''
    page: str = ''
    license: str = ''
    revision: str = 'main'
    convert: str = ''
    revision_note: str = ''
    trained_short_side: int = 0
    window: str = ''

    def __post_init__(self):
        if self.kind not in ('hub', 'file'):
            raise ValueError(f'weights {self.name!r}: kind={self.kind!r}; expected hub or file')
        if not self.source:
            raise ValueError(f'weights {self.name!r}: source is empty')
        if self.window and not re.fullmatch(r'\d+x\d+', self.window):
            raise ValueError(f'weights {self.name!r}: window={self.window!r}; expected HxW')
        if int(self.trained_short_side) < 0:
            raise ValueError(f'weights {self.name!r}: trained_short_side must be >= 0')

    def published_protocol(self) -> str:
        """How the published figure was measured, in words ('' when the scale is unknown)."""
        if not self.trained_short_side:
            return ''
        how = (f'sliding {self.window} windows' if self.window else 'the whole frame')
        return (f'{how} at short side {self.trained_short_side} px, class scores upsampled '
                'bilinearly before the argmax')


def _segformer(variant: str, size_mb: float, accuracy: str, suffix: str = '',
               resolution: str = '1024-1024', source_note: str = SEGFORMER_PAPER,
               revision: str = 'main', revision_note: str = NOT_PINNED, short_side: int = 1024,
               window: str = '1024x1024') -> WeightsEntry:
    hub_id = f'nvidia/segformer-{variant}-finetuned-cityscapes-{resolution}'
    return WeightsEntry(
        name=f'segformer-{variant}-cityscapes{suffix}', kind='hub', source=hub_id, backend='hf',
        size_mb=size_mb, classes=CITYSCAPES_19, accuracy=accuracy, accuracy_source=source_note,
        size_source=HF_TREE.format(source=hub_id), page=f'https://huggingface.co/{hub_id}',
        license=SEGFORMER_LICENSE, revision=revision, revision_note=revision_note,
        trained_short_side=short_side, window=window)


def _realtime_b0(side: int, resolution: str, accuracy: str) -> WeightsEntry:
    """Return the real-time rows.

    Trained on crops of frames at short side ``side``, evaluated on the whole frame at that scale
    (NVlabs/SegFormer configs: test mode 'whole').
    """
    return _segformer('b0', 15.0, accuracy, f'-{side}', resolution,
                      SEGFORMER_REALTIME.format(side=side), short_side=side, window='')


ICNET_PAGE = 'https://github.com/hszhao/ICNet (evaluation/model/README.md)'
ICNET = WeightsEntry(
    name='icnet-cityscapes', kind='file',
    source='https://drive.google.com/uc?export=download&id=0BzaU285cX7TCSW9tZlQ2Q0pFeG8',
    backend='icnet', size_mb=31.0, classes=CITYSCAPES_19,
    accuracy='mIoU 67.7 (pixel acc 94.5)',
    accuracy_source='hszhao/ICNet README, "train on trainset for 30K, evaluated on valset"',
    size_source='hszhao/ICNet evaluation/model/README.md ("31M")',
    md5='6da59a72a254862106420983a7723624',
    filename='icnet_cityscapes_train_30k_bnnomerge.caffemodel', page=ICNET_PAGE,
    convert='icnet_caffe', trained_short_side=1024)

MASK2FORMER = WeightsEntry(
    name='mask2former-swin-t-cityscapes', kind='hub',
    source='facebook/mask2former-swin-tiny-cityscapes-semantic', backend='hf', size_mb=190.0,
    classes=CITYSCAPES_19, accuracy='mIoU 82.1 / 83.0',
    accuracy_source=('facebookresearch/Mask2Former MODEL_ZOO.md, Cityscapes semantic, Swin-T, '
                     'single scale / ms+flip'),
    size_source='Hugging Face files page (pytorch_model.bin at commit e59f265)',
    page='https://huggingface.co/facebook/mask2former-swin-tiny-cityscapes-semantic',
    license='CC BY-NC 4.0 (Mask2Former MODEL_ZOO.md)',
    revision_note=('not pinned: only the abbreviated commit e59f265 was recorded when the size '
                   'was checked, and huggingface_hub needs the full 40-hex commit'),
    # Trained on 512x1024 crops, evaluated on the whole frame at short side 1024 (MIN_SIZE_TEST).
    trained_short_side=1024)

ESPNET_COMMIT = '2b232d3f7fb60658755dad1ebca0ffc895cc795e'
ESPNET_PAGE = ('https://github.com/sacmehta/EdgeNets/blob/' + ESPNET_COMMIT +
               '/model/segmentation/model_zoo/README.md')
ESPNET_ACCURACY_SOURCE = ('sacmehta/EdgeNets model/segmentation/model_zoo/README.md, Cityscapes, '
                          'image size 1024x512 (val; test from the Cityscapes leaderboard)')


def _espnetv2(width: str, size_bytes: int, sha256: str, accuracy: str) -> WeightsEntry:
    filename = f'espnetv2_s_{width}_city_1024x512.pth'
    return WeightsEntry(
        name=f'espnetv2-s{width.rstrip("0").rstrip(".")}-cityscapes', kind='file',
        source=('https://github.com/sacmehta/EdgeNets/raw/' + ESPNET_COMMIT +
                '/model/segmentation/model_zoo/espnetv2/' + filename),
        backend='espnet', size_mb=round(size_bytes / 1e6, 1),
        classes=CITYSCAPES_19 + ' + background (dropped)', accuracy=accuracy,
        accuracy_source=ESPNET_ACCURACY_SOURCE,
        size_source=f'git blob size at {ESPNET_COMMIT[:7]} ({size_bytes} bytes)',
        sha256=sha256, filename=filename, page=ESPNET_PAGE,
        license='MIT (sacmehta/EdgeNets LICENSE)', trained_short_side=512)


ESPNETV2_S2 = _espnetv2('2.0', 3376094,
                        'a72d59699801c7ce8e8b89a53af9097eaaa60dc12180ecde86fd700ba1222fe8',
                        'mIoU 66.4 (val) / 66.2 (test)')
ESPNETV2_S1 = _espnetv2('1.0', 1107690,
                        '0918c833fed889e32901ce739b1784fdd2b79f95a9aea199a469ca3394dd7a14',
                        'mIoU 60.1 (val)')
CORAL_COMMIT = '104342d2d3480b3e66203073dac24f4e2dbb4c41'
DEEPLAB_EDGETPU = WeightsEntry(
    name='deeplab-edgetpu-slim-cityscapes', kind='file',
    source=('https://github.com/google-coral/test_data/raw/' + CORAL_COMMIT +
            '/deeplab_mobilenet_edgetpu_slim_cityscapes_quant.tflite'),
    backend='tflite', size_mb=2.2, classes=CITYSCAPES_19 + ' (argmax labels only: R stays off)',
    accuracy='', accuracy_source='not published with this file (docs/benchmarks.md section 12 '
    'measures it here)', size_source=f'git blob size at {CORAL_COMMIT[:7]} (2157328 bytes)',
    sha256='322fe29945cb1693f426952f2a330ab67ea5678545ddee6f2548e0cfd0ca03e5',
    page='https://github.com/google-coral/test_data/tree/' + CORAL_COMMIT,
    license='Apache-2.0 (google-coral/test_data LICENSE)')
"""DeepLabv3 MobileNet-EdgeTPU-slim, int8 TFLite (513x513 uint8 input, trainId label map)."""

AUTO_PREFERENCE = (ESPNETV2_S2.name, ESPNETV2_S1.name)
"""``model.backend: auto`` runs the first of these that is cached (real-time real networks, most
accurate first); ``scripts/setup.sh`` fetches the first when it can reach it."""

BUILTIN_ENTRIES = (
    ESPNETV2_S2,
    ESPNETV2_S1,
    DEEPLAB_EDGETPU,
    _segformer('b0', 15.0, 'mIoU 76.2 / 78.1',
               revision='21b3847fae21ddee674abd31129307b6a1235bd9',
               revision_note=PINNED_ELSEWHERE.format(size='14,957,601')),
    _segformer('b1', 54.8, 'mIoU 78.5 / 80.0'),
    _segformer('b2', 110.0, 'mIoU 81.0 / 82.2',
               revision='d633b2072669ca68d8f8e309de9b52bfdbf6bf72',
               revision_note=PINNED_ELSEWHERE.format(size='109,597,961')),
    _segformer('b3', 189.0, 'mIoU 81.7 / 83.3'),
    _segformer('b4', 256.0, 'mIoU 82.3 / 83.9'),
    _segformer('b5', 339.0, 'mIoU 82.4 / 84.0'),
    _realtime_b0(768, '768-768', 'mIoU 75.3'),
    _realtime_b0(640, '640-1280', 'mIoU 73.7'),
    _realtime_b0(512, '512-1024', 'mIoU 71.9'),
    MASK2FORMER,
    ICNET,
)


def builtin_catalogue() -> Dict[str, WeightsEntry]:
    """Name -> entry for the checkpoints shipped in this table."""
    return {entry.name: entry for entry in BUILTIN_ENTRIES}
