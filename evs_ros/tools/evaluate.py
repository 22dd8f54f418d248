"""``evs eval``: mIoU per operating point on annotated snippets (paper §4.1, Tables 1-2).

Examples::

    evs eval --data data/synth --split val                      # Cityscapes layout (real or synth)
    evs eval --data ~/cityscapes --split val --backend weights:segformer-b0-cityscapes
    evs eval --synth-snippets 5 --resolution 1024x512 --operating-points EVS03 EVS07
    evs eval --synth-snippets 5 --set flow.scale=0.5            # any setting of config/evs.yaml

Every operating point starts on a keyframe ``S - 1`` frames before the annotated frame (index
19, the paper's 20th frame), its worst case; see ``evs_ros.evaluation.operating_points``. Writes
JSON (``--json``) and a markdown table next to it. ``evs bench`` runs the same evaluation and
adds speed, Figures 6-7 and plots.
"""

import argparse
import os

from evs_ros.evaluation.markdown import accuracy_markdown, iou_cell
from evs_ros.tools import common

SPEED_KEYS = ('hz', 'speedup', 'latency_ms_p50', 'latency_ms_p99', 'stage_ms')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``evs eval``."""
    common.add_snippet_arguments(parser)
    common.add_operating_points_argument(parser)
    common.add_config_arguments(parser, operating_point_flag=False)
    parser.add_argument('--json', default='evs_eval.json', metavar='FILE',
                        help='write results here; markdown goes to FILE with .md '
                             '(default: %(default)s)')
    parser.add_argument('--figures', type=int, default=0, metavar='N',
                        help='also compute Figures 6-7 up to N propagations (default: off)')


def run(args: argparse.Namespace) -> int:
    """Evaluate, write JSON + markdown, print the mIoU table."""
    try:
        report, _, _ = common.run_evaluation(args, common.parse_size(args.resolution),
                                             args.figures)
    except common.USER_ERRORS as error:
        return common.fail('eval', error)
    for entry in report['operating_points']:  # accuracy only: speed is `evs bench`'s job
        for key in SPEED_KEYS:
            entry.pop(key, None)
    common.write_json(args.json, report)
    markdown = ['# evs eval', '', f"Snippets: {len(report['snippets'])} "
                f"({report['data']['kind']}), backend `{report['backend']}`", '',
                *accuracy_markdown(report)]
    common.write_text(os.path.splitext(args.json)[0] + '.md', '\n'.join(markdown))
    for entry in report['operating_points']:
        print(f"{entry['name']:>9}  mIoU {iou_cell(entry['miou']):>5}")
    print(f'wrote {args.json}')
    return 0
