"""Training of ICNet (cascade label guidance) and of the Refiner (paper §3.5, §4.3.2).

ICNet trains from scratch on labelled crops (:mod:`evs_ros.training.losses` has the cascade loss).
The Refiner trains on pairs (keyframe k, frame k + d, d in 1..max_gap): a frozen segmentation
network (any backend: the *teacher*) predicts P and F at k, the pipeline's own propagation steps
warp them to k + d with the user's flow and IAM settings and run IAM there, and the Refiner learns
the target of k + d with a mask-weighted loss: the ground truth, or the teacher's own output on
k + d (``targets``), so unlabelled video trains it too. Several sources (labelled datasets,
unlabelled clips: :mod:`evs_ros.training.sources`) mix in one run; the teacher's predictions are
cached on disk (:mod:`evs_ros.training.teacher_cache`). The checkpoint records the teacher's class
names and feature channels, and which network it is (``meta['network']``: sha256 of its weights,
SPEC, name), so a Refiner is only ever paired with the network it was trained for and
``model.refiner: default`` finds the shipped Refiner of the network in use.

Checkpoints are evs_ros checkpoints (``checkpoint.py``) whose ``meta`` also holds ``epoch`` and
``optimizer`` so ``resume`` continues where a run stopped.
"""

import os
from dataclasses import asdict, dataclass
from itertools import islice
from typing import Dict, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader

from evs_ros.config import FlowConfig, IamConfig, ModelConfig
from evs_ros.data.labels import CLASS_NAMES
from evs_ros.models.checkpoint import load_checkpoint, save_checkpoint
from evs_ros.models.icnet import ICNet, select_device
from evs_ros.models.refiner import RefinerNet
from evs_ros.training.data import IcnetCrops, RefinerPairs
from evs_ros.training.losses import cascade_loss, refiner_loss


@dataclass(frozen=True)
class TrainConfig:
    """One training run (``evs train``)."""

    data: Tuple[str, ...]
    """Sources: ICNet one Cityscapes-layout ROOT; the Refiner any mix of ROOTs and
    ``clips:PATHS`` (:mod:`evs_ros.training.sources`)."""
    out_path: str
    split: str = 'train'
    epochs: int = 10
    batch_size: int = 8
    crop_hw: Tuple[int, int] = (257, 513)
    width_mult: float = 0.5
    lr: float = 1e-3
    weight_decay: float = 1e-4
    device: str = 'auto'
    workers: int = 0
    seed: int = 0
    max_steps_per_epoch: int = 0
    """0 = whole dataset each epoch; > 0 caps batches per epoch (quick runs)."""
    resume: bool = False
    backend: str = ''
    """Refiner only: SPEC of the frozen network that provides P and F (any backend)."""
    icnet_path: str = ''
    """Refiner only: shortcut for ``backend='icnet:PATH'``."""
    max_gap: int = 5
    """Refiner only: d in 1..max_gap frames between keyframe and target frame."""
    val_split: str = 'val'
    """ICNet only: mIoU on this split after each epoch ('' or a missing split: skipped)."""
    val_limit: int = 20
    """Labelled frames evaluated per epoch (evenly spaced over the split)."""
    outside_weight: float = 0.1
    """Refiner only: loss weight of pixels outside IAM's mask (inside: 1 + this)."""
    residual: bool = True
    """Refiner only: predict corrections of log(P_warped) (``RefinerNet(residual=True)``)."""
    flow: FlowConfig = FlowConfig()
    """Refiner only: the flow settings the pipeline will run with."""
    iam: IamConfig = IamConfig()
    """Refiner only: the IAM settings the pipeline will run with."""
    targets: str = 'auto'
    """Refiner only: ``auto`` | ``labels`` | ``teacher`` (``evs_ros.training.data.TARGETS``)."""
    soft_targets: bool = False
    """Refiner only: teacher targets as probabilities (soft cross entropy), not its argmax."""
    cache_dir: str = ''
    """Refiner only: where decoded clips and the teacher's predictions are kept ('' =
    ``~/.cache/evs_ros/refiner_training``)."""

    @property
    def data_root(self) -> str:
        """The first source (ICNet trains on exactly one)."""
        return self.data[0]

    def cache_root(self) -> str:
        """:attr:`cache_dir` or the default under the evs_ros cache."""
        if self.cache_dir:
            return self.cache_dir
        from evs_ros.models.weights_cache import evs_cache_dir
        return os.path.join(evs_cache_dir(), 'refiner_training')

    def teacher_spec(self) -> str:
        """Return the Refiner's teacher network SPEC; ValueError when none is given."""
        if self.backend:
            return self.backend
        if self.icnet_path:
            return f'icnet:{self.icnet_path}'
        raise ValueError('Refiner training needs the frozen network: pass --backend SPEC '
                         '(or --icnet CKPT)')


def evaluate_icnet(network: torch.nn.Module, root: str, split: str, limit: int,
                   device: str = 'cpu') -> Optional[float]:
    """Measure the mIoU of ``network`` on up to ``limit`` labelled frames of ``split``.

    None if the split is absent.

    Predictions (1/4 resolution) are upsampled to the label size with nearest neighbour.
    """
    import cv2
    from evs_ros.data.cityscapes import list_snippets, read_image, read_labels
    from evs_ros.data.metrics import ConfusionMatrix
    from evs_ros.models.icnet import IcnetModel
    try:
        items = [(snippet.frames[index], path) for snippet in list_snippets(root, split)
                 for index, path in sorted(snippet.labels.items())]
    except FileNotFoundError:
        return None
    if not split or not items:
        return None
    chosen = np.linspace(0, len(items) - 1, min(limit, len(items))).round().astype(int)
    model = IcnetModel(network, device=device)
    confusion = ConfusionMatrix(network.num_classes)
    for image_path, label_path in (items[i] for i in sorted(set(chosen))):
        labels = read_labels(label_path)
        predicted = model.predict(read_image(image_path)).probs.argmax(axis=0).astype(np.uint8)
        predicted = cv2.resize(predicted, labels.shape[::-1], interpolation=cv2.INTER_NEAREST)
        confusion.update(predicted, labels)
    return float(confusion.miou())


def _poly_lr(base_lr: float, step: int, total_steps: int) -> float:
    return base_lr * (1.0 - min(step, total_steps - 1) / max(1, total_steps)) ** 0.9


class Trainer:
    """Epoch loop with poly learning rate, tqdm progress and resumable checkpoints."""

    def __init__(self, config: TrainConfig, arch: str, network: torch.nn.Module,
                 arch_config: Dict, dataset, step_fn, class_names=CLASS_NAMES,
                 meta: Optional[Dict] = None):
        self.config, self.arch, self.arch_config = config, arch, arch_config
        self.class_names = list(class_names) if class_names else None
        self.meta = dict(meta or {})
        self.device = select_device(config.device)
        self.network = network.to(self.device)
        self.dataset, self.step_fn = dataset, step_fn
        self.optimizer = torch.optim.AdamW(self.network.parameters(), lr=config.lr,
                                           weight_decay=config.weight_decay)
        self.start_epoch = 0
        if config.resume and os.path.isfile(config.out_path):
            self._resume(config.out_path)

    def _resume(self, path: str) -> None:
        checkpoint = load_checkpoint(path, expected_arch=self.arch)
        self.network.load_state_dict(checkpoint['state_dict'])
        if checkpoint['meta'].get('optimizer'):
            self.optimizer.load_state_dict(checkpoint['meta']['optimizer'])
        self.start_epoch = int(checkpoint['meta'].get('epoch', 0))

    def run(self) -> Dict[str, float]:
        """Train the remaining epochs; returns {'epoch': n, 'loss': last epoch's mean loss}."""
        from tqdm import tqdm
        config = self.config
        torch.manual_seed(config.seed + self.start_epoch)
        loader = DataLoader(self.dataset, batch_size=config.batch_size, shuffle=True,
                            num_workers=config.workers, drop_last=len(self.dataset) >
                            config.batch_size)
        steps = len(loader) if not config.max_steps_per_epoch else \
            min(len(loader), config.max_steps_per_epoch)
        total = steps * config.epochs
        mean_loss = float('nan')
        for epoch in range(self.start_epoch, config.epochs):
            self.network.train()
            losses = []
            bar = tqdm(islice(loader, steps), total=steps,
                       desc=f'{self.arch} epoch {epoch + 1}/{config.epochs}')
            for step, batch in enumerate(bar):  # islice: no batch is loaded beyond ``steps``
                for group in self.optimizer.param_groups:
                    group['lr'] = _poly_lr(config.lr, epoch * steps + step, total)
                loss = self.step_fn(self.network, batch, self.device)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                losses.append(loss.item())
                bar.set_postfix(loss=f'{np.mean(losses[-20:]):.3f}')
            mean_loss = float(np.mean(losses)) if losses else float('nan')
            val_miou = self._validate()
            self._save(epoch + 1, mean_loss, val_miou)
        return {'epoch': config.epochs, 'loss': mean_loss}

    def _validate(self) -> Optional[float]:
        if self.arch != 'icnet' or not self.config.val_split:
            return None
        miou = evaluate_icnet(self.network, self.config.data_root, self.config.val_split,
                              self.config.val_limit, str(self.device))
        if miou is not None:
            print(f'{self.config.val_split} mIoU {miou:.4f}', flush=True)
        return miou

    def _save(self, epoch: int, loss: float, val_miou: Optional[float]) -> None:
        meta = {**self.meta, 'epoch': epoch, 'loss': loss, 'val_miou': val_miou,
                'optimizer': self.optimizer.state_dict(),
                'train_config': _plain(asdict(self.config))}
        save_checkpoint(self.config.out_path, self.arch, self.arch_config, self.network,
                        class_names=self.class_names, meta=meta)


def _plain(value):
    """Tuples -> lists, recursively (checkpoints hold plain containers only)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    return value


def _icnet_step(network, batch, device) -> torch.Tensor:
    data, labels = (tensor.to(device) for tensor in batch)
    return cascade_loss(network(data, return_aux=True), labels)


def check_label_ids(labels: torch.Tensor, num_classes: int, ignore: int = 255) -> None:
    """Raise ValueError when ``labels`` (int64, any shape) hold an id the network lacks."""
    valid = labels[labels != ignore]
    if valid.numel() and int(valid.max()) >= num_classes:
        raise ValueError(f'the labels hold class id {int(valid.max())} but the network predicts '
                         f'{num_classes} classes: the dataset must be labelled in the '
                         "network's own ids (Cityscapes trainIds for a Cityscapes network)")


def check_dataset_labels(dataset: RefinerPairs, num_classes: int, limit: int = 8) -> None:
    """Run :func:`check_label_ids` on up to ``limit`` ground-truth targets spread over ``dataset``.

    Before training starts; every batch is checked again while training.
    """
    from evs_ros.data.cityscapes import read_labels
    files = dataset.label_files()
    chosen = np.linspace(0, len(files) - 1, min(limit, len(files))).round().astype(int)
    for index in sorted(set(chosen)) if files else ():
        labels = read_labels(files[index])
        check_label_ids(torch.from_numpy(labels.astype(np.int64)), num_classes)


def _refiner_step(outside_weight: float):
    def step(network, batch, device) -> torch.Tensor:
        data, probs, features, mask, target = (tensor.to(device) for tensor in batch)
        if not target.is_floating_point():
            check_label_ids(target, network.num_classes)
        logits = network(data, probs, features)['logits']
        return refiner_loss(logits, target, mask, outside_weight)
    return step


def train_icnet(config: TrainConfig) -> Dict[str, float]:
    """Train ICNet from scratch on a Cityscapes-layout dataset (``config.data_root``)."""
    if len(config.data) != 1 or config.data_root.startswith('clips:'):
        raise ValueError('ICNet trains on one labelled Cityscapes-layout dataset: pass one '
                         '--data ROOT')
    arch_config = {'num_classes': len(CLASS_NAMES), 'width_mult': config.width_mult,
                   'aux_heads': True}
    dataset = IcnetCrops(config.data_root, config.split, config.crop_hw, config.seed)
    trainer = Trainer(config, 'icnet', ICNet(**arch_config), arch_config, dataset, _icnet_step)
    return trainer.run()


def train_refiner(config: TrainConfig, teacher=None) -> Dict[str, float]:
    """Train the Refiner for a frozen network.

    ``teacher`` (a ``SegmentationModel``) or the one ``config.teacher_spec()`` names. Works for any
    backend, with or without features. The teacher's predictions are cached
    (``config.cache_root()``) when its weights are known by sha256 (the SPEC names a weights file
    or folder); the checkpoint's ``meta['network']`` records the network
    (:func:`evs_ros.models.loading.network_record`).
    """
    from evs_ros.models.loading import load_models, network_record
    from evs_ros.training.sources import load_sequences
    from evs_ros.training.teacher_cache import TeacherCache
    if teacher is None:
        device = config.device if not config.workers else 'cpu'  # DataLoader workers: CPU
        teacher, _ = load_models(ModelConfig(backend=config.teacher_spec(), refiner='',
                                             device=device), False)
    spec = getattr(teacher, 'backend_spec', '') or getattr(teacher, 'spec', '')
    network = network_record(spec) if spec else {}
    feature_channels = int(getattr(teacher, 'feature_channels', 0) or 0)
    arch_config = {'num_classes': int(teacher.num_classes), 'feature_channels': feature_channels,
                   'width_mult': config.width_mult, 'residual': config.residual}
    cache = TeacherCache(teacher, config.cache_root(), network.get('sha256', ''))
    sequences = load_sequences(config.data, config.split, config.cache_root())
    dataset = RefinerPairs(sequences, config.crop_hw, cache, config.max_gap, config.targets,
                           config.soft_targets, config.flow, config.iam)
    check_dataset_labels(dataset, arch_config['num_classes'])
    print(f'refiner training: {len(dataset)} target frames in {len(sequences)} sequences from '
          f'{len(config.data)} source(s); teacher {network.get("name") or spec or "given"}',
          flush=True)
    class_names = getattr(teacher, 'class_names', None)
    trainer = Trainer(config, 'refiner', RefinerNet(**arch_config), arch_config, dataset,
                      _refiner_step(config.outside_weight), class_names,
                      meta={'teacher_backend': spec, 'network': network})
    return trainer.run()
