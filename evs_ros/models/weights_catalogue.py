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

Users add or override entries with a YAML/JSON file named by ``EVS_WEIGHTS_CATALOGUE``: a mapping
NAME -> the fields of ``WeightsEntry`` (``kind``, ``source``, ``backend`` at least).
"""

from dataclasses import dataclass
from typing import Dict

CITYSCAPES_19 = 'Cityscapes 19 (trainIds)'
SEGFORMER_PAPER = 'SegFormer paper (arXiv 2105.15203) Table 1(a), Cityscapes val, SS / MS'
SEGFORMER_REALTIME = ('SegFormer paper (arXiv 2105.15203) Table 2, MiT-B0 real-time row at short '
                      'side {side}, Cityscapes val; row-to-checkpoint match inferred from the '
                      'NVlabs/SegFormer config test scale')
SEGFORMER_LICENSE = 'NVIDIA Source Code License, non-commercial (NVlabs/SegFormer README)'
HF_TREE = 'Hugging Face files page of {source} (pytorch_model.bin on main)'


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
        revision: hub revision (branch, tag or commit) for hub entries.
        convert: ``icnet_caffe`` to convert a caffemodel into an evs_ros checkpoint on arrival.
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

    def __post_init__(self):
        if self.kind not in ('hub', 'file'):
            raise ValueError(f'weights {self.name!r}: kind={self.kind!r}; expected hub or file')
        if not self.source:
            raise ValueError(f'weights {self.name!r}: source is empty')


def _segformer(variant: str, size_mb: float, accuracy: str, suffix: str = '',
               resolution: str = '1024-1024', source_note: str = SEGFORMER_PAPER) -> WeightsEntry:
    hub_id = f'nvidia/segformer-{variant}-finetuned-cityscapes-{resolution}'
    return WeightsEntry(
        name=f'segformer-{variant}-cityscapes{suffix}', kind='hub', source=hub_id, backend='hf',
        size_mb=size_mb, classes=CITYSCAPES_19, accuracy=accuracy, accuracy_source=source_note,
        size_source=HF_TREE.format(source=hub_id), page=f'https://huggingface.co/{hub_id}',
        license=SEGFORMER_LICENSE)


def _realtime_b0(side: int, resolution: str, accuracy: str) -> WeightsEntry:
    return _segformer('b0', 15.0, accuracy, f'-{side}', resolution,
                      SEGFORMER_REALTIME.format(side=side))


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
    convert='icnet_caffe')

MASK2FORMER = WeightsEntry(
    name='mask2former-swin-t-cityscapes', kind='hub',
    source='facebook/mask2former-swin-tiny-cityscapes-semantic', backend='hf', size_mb=190.0,
    classes=CITYSCAPES_19, accuracy='mIoU 82.1 / 83.0',
    accuracy_source=('facebookresearch/Mask2Former MODEL_ZOO.md, Cityscapes semantic, Swin-T, '
                     'single scale / ms+flip'),
    size_source='Hugging Face files page (pytorch_model.bin at commit e59f265)',
    page='https://huggingface.co/facebook/mask2former-swin-tiny-cityscapes-semantic',
    license='CC BY-NC 4.0 (Mask2Former MODEL_ZOO.md)')

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
        license='MIT (sacmehta/EdgeNets LICENSE)')


ESPNETV2_S2 = _espnetv2('2.0', 3376094,
                        'a72d59699801c7ce8e8b89a53af9097eaaa60dc12180ecde86fd700ba1222fe8',
                        'mIoU 66.4 (val) / 66.2 (test)')
ESPNETV2_S1 = _espnetv2('1.0', 1107690,
                        '0918c833fed889e32901ce739b1784fdd2b79f95a9aea199a469ca3394dd7a14',
                        'mIoU 60.1 (val)')
AUTO_PREFERENCE = (ESPNETV2_S2.name, ESPNETV2_S1.name)
"""``model.backend: auto`` runs the first of these that is cached (real-time real networks, most
accurate first); ``scripts/setup.sh`` fetches the first when it can reach it."""

BUILTIN_ENTRIES = (
    ESPNETV2_S2,
    ESPNETV2_S1,
    _segformer('b0', 15.0, 'mIoU 76.2 / 78.1'),
    _segformer('b1', 54.8, 'mIoU 78.5 / 80.0'),
    _segformer('b2', 110.0, 'mIoU 81.0 / 82.2'),
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
