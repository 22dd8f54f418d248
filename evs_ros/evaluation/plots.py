"""PNG plots of an ``evs bench`` report (matplotlib, Agg backend: no display needed).

* ``speed_accuracy.png``: mIoU vs speedup over per-frame, one point per operating point (the
  trade-off of paper Table 2);
* ``figure6.png``: mIoU vs number of pure label propagations, DIS vs Farneback (paper Fig. 6);
* ``figure7.png``: distribution of IAM's inconsistent-pixel fraction after 1, 2 and 4
  propagations (paper Fig. 7);
* ``table1.png``: per-class IoU recovered by the Refiner (paper Table 1's recovery rows).

Every function takes the report dict (the JSON written by ``evs bench``) and returns the path it
wrote, or None when the report lacks the data.
"""

import os
from typing import Dict, List, Optional


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: str) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def speed_accuracy(report: Dict, path: str) -> Optional[str]:
    """Plot mIoU (%) vs speedup (x per-frame), annotated with operating point names."""
    points = [e for e in report.get('operating_points', [])
              if e.get('speedup') is not None and e.get('miou') is not None]
    if not points:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for entry in points:
        marker = 's' if entry['name'] == 'PERFRAME' else ('^' if entry['R'] else 'o')
        ax.scatter(entry['speedup'], 100 * entry['miou'], marker=marker,
                   color='tab:red' if entry['name'] == 'PERFRAME' else 'tab:blue')
        ax.annotate(entry['name'], (entry['speedup'], 100 * entry['miou']), fontsize=7,
                    xytext=(3, 3), textcoords='offset points')
    ax.set_xlabel('speedup over per-frame network (x)')
    ax.set_ylabel('mIoU (%)')
    ax.set_title(f"Operating points ({report.get('resolution', '')}, same run)")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def figure6(report: Dict, path: str) -> Optional[str]:
    """Plot mIoU (%) vs propagations for each flow method."""
    data = report.get('figure6')
    if not data:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for method, values in data['methods'].items():
        mious = [None if v is None else 100 * v for v in values['miou']]
        ax.plot(data['propagations'], mious, marker='o', label=method)
    ax.set_xlabel('number of propagations N (keyframe N frames before the annotated frame)')
    ax.set_ylabel('mIoU (%)')
    ax.set_title('Pure label propagation (W on, R off)')
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def figure7(report: Dict, path: str) -> Optional[str]:
    """Histogram (share of frames) of the inconsistent fraction (%) per number of propagations."""
    data = report.get('figure7')
    if not data or not any(e['n'] for e in data['by_propagations'].values()):
        return None
    plt = _pyplot()
    edges = data['bin_edges_percent']
    shown_edges = edges[:-1] + [edges[-2] + (edges[-2] - edges[-3])]  # last bin drawn narrow
    fig, ax = plt.subplots(figsize=(6.5, 4))
    width = (shown_edges[1] - shown_edges[0]) / (len(data['by_propagations']) + 1)
    for offset, (k, entry) in enumerate(sorted(data['by_propagations'].items(),
                                               key=lambda item: int(item[0]))):
        total = max(entry['n'], 1)
        shares = [100.0 * c / total for c in entry['counts']]
        ax.bar([e + offset * width for e in shown_edges[:-1]], shares, width=width,
               align='edge', label=f'{k} propagation{"s" if k != "1" else ""} (n={entry["n"]})')
    ax.set_xlabel(f'inconsistent pixels (%), last bin: >= {edges[-2]:g}%')
    ax.set_ylabel('share of frames (%)')
    ax.set_title('IAM forward-backward inconsistency')
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def table1(report: Dict, path: str) -> Optional[str]:
    """Bar chart of the per-class recovery (IoU points) for each Table 1 case."""
    data = report.get('table1')
    if not data or not data.get('rows'):
        return None
    plt = _pyplot()
    names = list(data['rows'][0]['recovery']['per_class_iou'])
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(data['rows'])
    for offset, row in enumerate(data['rows']):
        values = [_points(row['recovery']['per_class_iou'][name]) for name in names]
        ax.bar([i + offset * width for i in range(len(names))], values, width=width,
               label=f"{row['case']} ({row['propagations']} propagations)")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))])
    ax.set_xticklabels(names, rotation=60, ha='right', fontsize=8)
    ax.axhline(0.0, color='black', linewidth=0.8)
    ax.set_ylabel('IoU recovered by the Refiner (points)')
    ax.legend()
    return _save(fig, path)


def _points(value: Optional[float]) -> float:
    return 0.0 if value is None else 100.0 * value


def write_all(report: Dict, out_dir: str) -> List[str]:
    """Write every plot the report has data for into ``out_dir``; returns the file names."""
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for name, function in (('speed_accuracy.png', speed_accuracy), ('figure6.png', figure6),
                           ('figure7.png', figure7), ('table1.png', table1)):
        if function(report, os.path.join(out_dir, name)):
            written.append(name)
    return written
