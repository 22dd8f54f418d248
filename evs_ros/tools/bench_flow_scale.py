r"""``evs bench flow-scale``: accuracy and cost of flow computed on reduced frames (issue 13).

Like paper Figure 6, per resolution: mIoU after N pure propagations (W on, R off, keyframe N
frames before the annotated frame, N = 0..max) for flow computed on frames resized by each
``flow.scale``, with the median DIS time of each. It is the measurement behind the default
``flow.scale`` and the operating points' own flow scales.

    evs bench flow-scale --out docs/bench/flow_scale --resolutions 2048x1024,1024x512 \
        --scales 1,0.75,0.5,0.375,0.25 --synth-snippets 20 --max-propagations 10
"""

import argparse
import os
from dataclasses import replace

from evs_ros.evaluation import plots
from evs_ros.tools import common


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``evs bench flow-scale``."""
    parser.add_argument('--out', default='evs_bench_flow_scale', metavar='DIR',
                        help='directory of flow_scale.json, .md and the plots')
    parser.add_argument('--resolutions', default='2048x1024,1024x512', help='WxH list')
    parser.add_argument('--scales', default='1,0.75,0.5,0.375,0.25',
                        help='flow.scale values compared (default: %(default)s)')
    parser.add_argument('--max-propagations', type=int, default=10, metavar='N')
    common.add_snippet_arguments(parser)
    common.add_config_arguments(parser, operating_point_flag=False)


def study_resolution(args, config, model, size_wh, scales):
    """Figure 6 over flow scales at one resolution: the report dict."""
    from tqdm import tqdm

    from evs_ros.evaluation.figures import PropagationStudy
    from evs_ros.evaluation import model_class_names
    from evs_ros.evaluation.snippets import scoring_for, snippet_source
    flows = {f'scale {scale:g}': replace(config.flow, scale=scale, max_width=0)
             for scale in scales}
    snippets, count, described = snippet_source(args.data, args.split, args.synth_snippets or 10,
                                                args.synth_seed, args.max_snippets, size_wh)
    study = PropagationStudy(model, args.max_propagations, config=config, flows=flows,
                             scoring=scoring_for(described['kind'], model_class_names(model)))
    for snippet in tqdm(snippets, total=count, desc=f'{size_wh[0]}x{size_wh[1]}'):
        study.add(snippet)
    return {'resolution': f'{size_wh[0]}x{size_wh[1]}', 'snippets': count, 'data': described,
            'figure6': study.figure6()}


def markdown(reports, hardware) -> str:
    """One table per resolution: mIoU (%) per N and the DIS time of each scale."""
    lines = ['# evs bench flow-scale', '', f'Hardware: {common.hardware_line(hardware)}.', '']
    for report in reports:
        fig = report['figure6']
        lines += [f"## {report['resolution']} ({report['snippets']} snippets)", '',
                  '| flow | DIS ms p50 | ' + ' | '.join(f'N={n}' for n in fig['propagations'])
                  + ' |', '|' + '---|' * (2 + len(fig['propagations']))]
        for label, values in fig['methods'].items():
            cells = ['-' if v is None else f'{100 * v:.1f}' for v in values['miou']]
            lines.append(f"| {label} | {values['flow_ms_p50']} | " + ' | '.join(cells) + ' |')
        lines.append('')
    return '\n'.join(lines)


def run(args: argparse.Namespace) -> int:
    """Run the study per resolution; write JSON, markdown and one plot per resolution."""
    from evs_ros.models.loading import load_models
    try:
        config = common.build_config(args)
        sizes = common.parse_sizes(args.resolutions)
        scales = [float(item) for item in args.scales.split(',') if item.strip()]
        model, _ = load_models(config.model, need_refiner=False)
    except common.USER_ERRORS as error:
        return common.fail('bench flow-scale', error)
    common.apply_threads(config, args.tune_allocator)
    reports = [study_resolution(args, config, model, size_wh, scales) for size_wh in sizes]
    hardware = common.hardware_info(model)
    common.write_json(os.path.join(args.out, 'flow_scale.json'),
                      {'hardware': hardware, 'backend': config.model.backend,
                       'resolutions': reports})
    for report in reports:
        plots.figure6(report, os.path.join(args.out, f"flow_scale_{report['resolution']}.png"))
    common.write_text(os.path.join(args.out, 'flow_scale.md'), markdown(reports, hardware))
    print(markdown(reports, hardware))
    return 0
