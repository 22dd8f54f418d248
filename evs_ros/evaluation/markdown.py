"""Markdown renderings of evaluation reports (``evs eval``, ``evs bench``).

Speed and accuracy per operating point, paper Table 1, Figures 6-7. Every function returns a list
of lines.
"""

from typing import List


def iou_cell(value) -> str:
    return '-' if value is None else f'{100.0 * value:.1f}'


def accuracy_markdown(report) -> List[str]:
    """Markdown lines: mIoU per operating point, per-class IoU, and paper Table 1."""
    entries = report['operating_points']
    names = list(entries[0]['per_class_iou'])
    protocol = (report.get('data') or {}).get(
        'protocol', 'annotated frame at the worst case S-1 propagations')
    lines = [f'## Accuracy (IoU in %, {protocol})', '',
             '| op | D | S | W | R | mIoU | ' + ' | '.join(names) + ' |',
             '|' + '---|' * (6 + len(names))]
    for e in entries:
        cells = [iou_cell(e['per_class_iou'][name]) for name in names]
        flags = [str(e['D']), 'A' if e['adaptive'] else str(e['S']),
                 'on' if e['W'] else 'off', 'on' if e['R'] else 'off']
        lines.append(f"| {e['name']} | " + ' | '.join(flags) + f" | {iou_cell(e['miou'])} | "
                     + ' | '.join(cells) + ' |')
    lines += ['', *table1_markdown(report.get('table1'), names)]
    return lines


def table1_markdown(table, names) -> List[str]:
    """Paper Table 1 as markdown (rows: without, with refinement, recovery per case)."""
    if not table or not table['rows']:
        return ['Table 1: not computed (needs EVS02 + EVS03 and/or EVS06 + EVS07).', '']
    lines = ['## Table 1: refinement after S-1 propagations (IoU in %)', '',
             '| case | row | mIoU | ' + ' | '.join(names) + ' |', '|' + '---|' * (3 + len(names))]
    for row in table['rows']:
        for label, key in (('without R', 'without_refinement'), ('with R', 'with_refinement'),
                           ('recovery', 'recovery')):
            part = row[key]
            title = f"{label} ({part['operating_point']})" if 'operating_point' in part else label
            cells = [iou_cell(part['per_class_iou'][name]) for name in names]
            lines.append(f"| {row['case']} | {title} | {iou_cell(part['miou'])} | "
                         + ' | '.join(cells) + ' |')
    return lines + ['']


def speed_markdown(report) -> List[str]:
    """Markdown lines.

    The speed / accuracy table of all operating points (speedup against the per-frame network on
    the same engine; with a torch reference also against per-frame torch eager).
    """
    agreement = (report.get('data') or {}).get('kind') == 'clips'
    accuracy = 'agreement with per-frame %' if agreement else 'pixel acc %'
    torch_column = 'perframe_torch_hz' in report
    lines = ['## Speed and accuracy (one run, same frames)', '',
             '| op | D | S | W | R | Hz | speedup | '
             + ('x per-frame torch | ' if torch_column else '')
             + f'mIoU % | {accuracy} | latency p50 ms | latency p99 ms | keyframes / frames |',
             '|' + '---|' * (13 if torch_column else 12)]
    for e in report['operating_points']:
        interval = f"A<={e['max_keyframe_interval']}" if e['adaptive'] else str(e['S'])
        versus_torch = f"{_cell(e.get('speedup_vs_torch'), 2, 'x')} | " if torch_column else ''
        lines.append(
            f"| {e['name']} | {e['D']} | {interval} | {'on' if e['W'] else 'off'} | "
            f"{'on' if e['R'] else 'off'} | {e['hz']} | {e['speedup']} | {versus_torch}"
            f"{iou_cell(e['miou'])} | {iou_cell(e.get('pixel_accuracy'))} | "
            f"{e['latency_ms_p50']} | {e['latency_ms_p99']} | {e['keyframes']} / {e['frames']} |")
    return lines + ['']


def _number(value, digits: int = 3) -> str:
    return '-' if value is None else f'{value:.{digits}f}'


def figures_markdown(report) -> List[str]:
    """Markdown lines for Figures 6 and 7 (tables; the PNGs are linked by the caller)."""
    fig6, fig7 = report.get('figure6'), report.get('figure7')
    if not fig6:
        return ['Figures 6-7: skipped (--figure-propagations 0).', '']
    lines = ['## Figure 6: mIoU (%) after N pure propagations (W on, R off)', '',
             '| method | ' + ' | '.join(f'N={n}' for n in fig6['propagations']) + ' |',
             '|' + '---|' * (1 + len(fig6['propagations']))]
    for method, values in fig6['methods'].items():
        cells = ['-' if v is None else f'{100 * v:.1f}' for v in values['miou']]
        lines.append(f'| {method} | ' + ' | '.join(cells) + ' |')
    lines += ['', '## Figure 7: IAM inconsistent pixels after k propagations (DIS)', '',
              '| k | frames | mean % | median % | frames below 5 % (%) |', '|---|---|---|---|---|']
    for k, entry in fig7['by_propagations'].items():
        cells = [_number(entry[key]) for key in ('mean_percent', 'median_percent')]
        share = _number(None if entry['below_5_percent'] is None
                        else 100 * entry['below_5_percent'])
        lines.append(f"| {k} | {entry['n']} | {cells[0]} | {cells[1]} | {share} |")
    return lines + ['']


PAPER_SPEEDUP = {'EVS03': 2.0, 'EVS05': 3.0, 'EVS07': 4.9, 'EVS10': 9.7, 'EVS12': 16.5,
                 'EVS14': 27.1}
"""Paper Table 2: speedup over per-frame ICNet (GPU network, CPU flow in parallel)."""
PAPER_MIOU_DROP = {'EVS03': 1.1, 'EVS07': 5.1, 'EVS10': 11.1, 'EVS14': 21.3}
"""Paper Table 2: mIoU points lost against per-frame ICNet."""


def runtime_markdown(report) -> List[str]:
    """Markdown lines.

    The runtime on both cores next to the synchronous figures and the paper's targets (empty when
    the runtime was not run).
    """
    if 'perframe_hz_both_cores' not in report:
        return []
    entries = report['operating_points']
    base = entries[0]
    torch_hz = report.get('perframe_torch_hz_both_cores')
    lines = ['## The runtime on both cores (every frame labelled, late keyframes included)', '',
             f"Per-frame network with all threads: {report['perframe_hz_both_cores']} Hz"
             + (f' (on torch eager: {torch_hz} Hz)' if torch_hz else '') + '. '
             'Speedups against it; mIoU change against the per-frame network.', '',
             '| op | runtime Hz | runtime speedup | '
             + ('x per-frame torch | ' if torch_hz else '') + 'paper | runtime mIoU % | '
             'change, points | paper | sync speedup (1 core) | sync change |',
             '|' + '---|' * (10 if torch_hz else 9)]
    for e in entries[1:]:
        drop = PAPER_MIOU_DROP.get(e['name'])
        versus_torch = (f"{_cell(e.get('runtime_speedup_vs_torch'), 2, 'x')} | " if torch_hz
                        else '')
        lines.append(f"| {e['name']} | {_cell(e.get('runtime_hz'))} | "
                     f"{_cell(e.get('runtime_speedup'), 2, 'x')} | {versus_torch}"
                     f"{_cell(PAPER_SPEEDUP.get(e['name']), 1, 'x')} | "
                     f"{iou_cell(e.get('runtime_miou'))} | "
                     f"{_change(e.get('runtime_miou'), base['miou'])} | "
                     f'{_cell(None if drop is None else -drop)} | '
                     f"{_cell(e['speedup'], 2, 'x')} | {_change(e['miou'], base['miou'])} |")
    return lines + ['']


def _cell(value, digits: int = 1, prefix: str = '') -> str:
    return '-' if value is None else f'{prefix}{value:.{digits}f}'


def _change(miou, base) -> str:
    return '-' if miou is None or base is None else f'{100 * (miou - base):+.1f}'
