r"""``evs train icnet|refiner``: train ICNet, or the Refiner on datasets and unlabelled video.

Examples::

    evs train icnet --data data/synth --out evs_ros/models/weights/icnet_synth.pt \
        --epochs 40 --batch 8 --crop 257x513 --width-mult 0.5
    evs train refiner --data data/synth --icnet evs_ros/models/weights/icnet_synth.pt \
        --out evs_ros/models/weights/refiner_synth.pt --epochs 5 --crop 512x1024
    evs train refiner --data ~/cityscapes --backend weights:segformer-b0-cityscapes \
        --out refiner_segformer_b0.pt --params my_evs.yaml   # flow / IAM settings of the node
    evs train refiner --backend weights:espnetv2-s2-cityscapes --targets teacher \\
        --data clips:~/drives/ --data data/synth --out refiner_espnetv2.pt --crop 384x768

The Refiner trains for any network (``--backend SPEC``, with or without features) with the flow
and IAM settings the node will run with (``--params`` / ``--set``). ``--data`` may be given
several times: Cityscapes-layout ROOTs and ``clips:PATHS`` (unlabelled video: files or folders,
comma-separated; cut into shots at scene cuts). On a propagated frame the Refiner learns the
ground truth (``--targets labels``), or what the network itself outputs on that frame
(``--targets teacher``: the per-frame network as teacher, so no labels are needed); ``auto``
takes the ground truth where a source has labels and the teacher elsewhere. ``--soft-targets``
learns the teacher's probabilities instead of its labels. The teacher's predictions and decoded
clips are cached (``--cache``), so later epochs and runs skip the network. The checkpoint
records the network's classes, feature channels and identity (sha256 of its weights), which
``model.refiner: default`` uses to pick the shipped Refiner of the network in use.

``--resume`` continues from ``--out`` when it exists (weights, optimizer, epoch).
"""

from evs_ros.training import TARGETS, TrainConfig, train_icnet, train_refiner
from evs_ros.tools import common


def add_arguments(parser) -> None:
    parser.add_argument('network', choices=['icnet', 'refiner'])
    parser.add_argument('--data', required=True, action='append', metavar='SOURCE',
                        help='training data, repeatable: a Cityscapes-layout ROOT (icnet: '
                             'exactly one) or, for the refiner, clips:PATHS (unlabelled video '
                             'files or folders, comma-separated)')
    parser.add_argument('--out', required=True, help='checkpoint to write (each epoch)')
    parser.add_argument('--split', default='train')
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--crop', default='257x513',
                        help='HxW: random crop (icnet); refiner: the sample size, every frame '
                             'resized to cover it (aspect kept) and centre-cropped')
    parser.add_argument('--width-mult', type=float, default=0.5)
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'])
    parser.add_argument('--workers', type=int, default=0, help='DataLoader worker processes')
    parser.add_argument('--max-steps', type=int, default=0,
                        help='cap on batches per epoch (0 = all)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--resume', action='store_true')
    parser.add_argument('--backend', dest='teacher', default='', metavar='SPEC',
                        help='refiner: the frozen network it refines (any backend SPEC)')
    parser.add_argument('--icnet', default='', help='refiner: shortcut for --backend icnet:CKPT')
    parser.add_argument('--val-split', default='val',
                        help="icnet: split for per-epoch mIoU ('' = none; skipped if absent)")
    parser.add_argument('--val-limit', type=int, default=20, help='val frames per epoch')
    parser.add_argument('--max-gap', type=int, default=5,
                        help='refiner: keyframe-to-frame distance d in 1..max-gap')
    parser.add_argument('--outside-weight', type=float, default=0.1,
                        help="refiner: loss weight outside IAM's mask (inside: 1 + this)")
    parser.add_argument('--targets', default='auto', choices=TARGETS,
                        help='refiner: what a propagated frame should become: the ground truth '
                             "(labels), the network's own output on it (teacher), or labels "
                             'where a source has them and the teacher elsewhere (auto, default)')
    parser.add_argument('--soft-targets', action='store_true',
                        help="refiner: learn the teacher's probabilities, not its labels")
    parser.add_argument('--cache', default='', metavar='DIR',
                        help="refiner: decoded clips and the teacher's predictions (default: "
                             '~/.cache/evs_ros/refiner_training)')
    parser.add_argument('--no-residual', dest='residual', action='store_false',
                        help='refiner: predict logits from scratch (the paper) instead of '
                             'corrections of log(P_warped)')
    common.add_config_arguments(parser, operating_point_flag=False, threads=False, model=False)


def train_config(args) -> TrainConfig:
    """Return the run's TrainConfig; flow and IAM settings come from ``--params`` / ``--set``."""
    evs_config = common.build_config(args)
    return TrainConfig(
        data=tuple(args.data), out_path=args.out, split=args.split, epochs=args.epochs,
        batch_size=args.batch, crop_hw=common.parse_size(args.crop, order='hw', minimum=2),
        width_mult=args.width_mult, lr=args.lr, device=args.device, workers=args.workers,
        seed=args.seed, max_steps_per_epoch=args.max_steps, resume=args.resume,
        backend=args.teacher, icnet_path=args.icnet, max_gap=args.max_gap,
        val_split=args.val_split, val_limit=args.val_limit, outside_weight=args.outside_weight,
        residual=args.residual, flow=evs_config.flow, iam=evs_config.iam,
        targets=args.targets, soft_targets=args.soft_targets, cache_dir=args.cache)


def run(args) -> int:
    """Train; one line on bad options or a missing network."""
    train = train_icnet if args.network == 'icnet' else train_refiner
    try:
        config = train_config(args)
        if args.network == 'refiner':
            config.teacher_spec()  # fail before the data is read
        result = train(config)
    except common.USER_ERRORS as error:
        return common.fail('train', error)
    print(f'wrote {args.out} after epoch {result["epoch"]} (mean loss {result["loss"]:.4f})')
    return 0
