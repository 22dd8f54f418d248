"""The tables of docs/benchmarks.md section 13 (and the reruns of 2, 6, 9, 10) from the JSON that
scripts/bench_engines.sh writes. Usage: python scripts/engines_summary.py docs/bench > summary.md

Every ratio is taken within one run (one JSON file); a table whose file is missing is left out
with one line saying which step makes it.
"""

import json
import os
import sys


def load(path):
    if not os.path.isfile(path):
        print(f'_(missing: {path}; run its step of scripts/bench_engines.sh)_\n')
        return None
    with open(path, encoding='utf-8') as stream:
        return json.load(stream)


def cell(value, digits=1, prefix='', suffix=''):
    return '-' if value is None else f'{prefix}{value:.{digits}f}{suffix}'


def hardware(report):
    hw = report['hardware']
    engines = report.get('engines') or {}
    versions = ', '.join(f'{k} {v}' for k, v in engines.items() if v)
    return f"{hw['cpu']}, {hw['cores']} cores, load {hw.get('load_average_1min')}; {versions}"


def models_tables(report):
    rows = [r for r in report['rows'] if r['graphs'] == 'static']
    print(f'Hardware: {hardware(report)}.\n')
    print('ms per frame, median (speed-up against torch eager in the same case):\n')
    engines = [e for e in ('torch', 'openvino', 'onnxruntime', 'auto')
               if any(r['engine'] == e for r in rows)]
    print('| network | input | threads | ' + ' | '.join(engines) + ' | Refiner: '
          + ' | '.join(engines) + ' |')
    print('|' + '---|' * (3 + 2 * len(engines)))
    cases = {}
    for row in rows:
        if row['precision'] != 'fp32':
            continue
        key = (row['network'] + (f" {row['width_mult']}" if row['width_mult'] else ''),
               row['size'], row['threads'])
        cases.setdefault(key, {})[row['engine']] = row
    for (network, size, threads), by_engine in cases.items():
        cells = []
        for part in ('network', 'refiner'):
            for engine in engines:
                row = by_engine.get(engine)
                cells.append('-' if row is None else
                             f"{row[f'{part}_ms']} ({row[f'{part}_speedup_vs_torch']}x)")
        print(f'| {network} | {size} | {threads} | ' + ' | '.join(cells) + ' |')
    print()


def dynamic_table(report):
    rows = [r for r in report['rows'] if r['precision'] == 'fp32']
    dynamic = [r for r in rows if r['graphs'] == 'dynamic']
    if not dynamic:
        return
    print('Static (one graph per input shape) vs dynamic (one graph, any shape) graphs, '
          'network ms:\n')
    print('| network | input | threads | engine | static | dynamic | dynamic / static |')
    print('|---|---|---|---|---|---|---|')
    for row in dynamic:
        engine = row['engine'].replace(' dynamic', '')
        static = next((r for r in rows if r['network'] == row['network'] and
                       r['size'] == row['size'] and r['threads'] == row['threads'] and
                       r['engine'] == engine), None)
        if static:
            print(f"| {row['network']} | {row['size']} | {row['threads']} | {engine} | "
                  f"{static['network_ms']} | {row['network_ms']} | "
                  f"{row['network_ms'] / static['network_ms']:.2f} |")
    print()


def precision_table(report):
    rows = [r for r in report['rows'] if r['graphs'] == 'static'
            and r['engine'].split(' ')[0] == 'openvino']
    bf16 = [r for r in rows if r['precision'] == 'bf16']
    if not bf16:
        return
    print('OpenVINO bf16 vs fp32 (CPUs with bfloat16), network ms:\n')
    print('| network | input | threads | fp32 | bf16 | x fp32 | build s (fp32, first use) |')
    print('|---|---|---|---|---|---|---|')
    for row in bf16:
        fp32 = next((r for r in rows if r['precision'] == 'fp32' and
                     r['network'] == row['network'] and r['width_mult'] == row['width_mult']
                     and r['size'] == row['size'] and r['threads'] == row['threads']), None)
        if fp32:
            name = row['network'] + (f" {row['width_mult']}" if row['width_mult'] else '')
            print(f"| {name} | {row['size']} | {row['threads']} | {fp32['network_ms']} | "
                  f"{row['network_ms']} | {fp32['network_ms'] / row['network_ms']:.2f}x | "
                  f"{fp32['build_s']} |")
    print()


def ops_table(report, title):
    entries = report['operating_points']
    base = entries[0]
    print(f"{title}: {report['resolution']}, {len(report['snippets'])} snippets, backend "
          f"`{report['backend']}` on {report.get('engine')}; per-frame {base['hz']} Hz sync, "
          f"{report.get('perframe_hz_both_cores')} Hz both cores; per-frame torch eager "
          f"{report.get('perframe_torch_hz')} Hz sync, "
          f"{report.get('perframe_torch_hz_both_cores')} Hz both cores. "
          f"Per-frame mIoU {cell(100 * base['miou'])} %.\n")
    print('| op | sync speedup | x torch | sync change | runtime Hz | runtime speedup | x torch '
          '| runtime change | ages sync / runtime |')
    print('|---|---|---|---|---|---|---|---|---|')
    for e in entries[1:]:
        change = cell(None if e['miou'] is None else 100 * (e['miou'] - base['miou']), 1,
                      '+' if e['miou'] is not None and e['miou'] >= base['miou'] else '')
        runtime = e.get('runtime_miou')
        runtime_change = cell(None if runtime is None else 100 * (runtime - base['miou']), 1,
                              '+' if runtime is not None and runtime >= base['miou'] else '')
        ages = e.get('runtime_ages_at_annotated') or []
        print(f"| {e['name']} | {cell(e['speedup'], 2, 'x')} | "
              f"{cell(e.get('speedup_vs_torch'), 2, 'x')} | {change} | "
              f"{cell(e.get('runtime_hz'))} | {cell(e.get('runtime_speedup'), 2, 'x')} | "
              f"{cell(e.get('runtime_speedup_vs_torch'), 2, 'x')} | {runtime_change} | "
              f"{e['propagations_at_annotated']} / {max(ages) if ages else '-'} |")
    print()


def threads_table(out):
    splits = [('1', '1'), ('2', '1'), ('1', '2')]
    reports = {split: load(os.path.join(out, 'engines',
                                        f'threads_inference{split[0]}_flow{split[1]}',
                                        'bench.json')) for split in splits}
    reports = {k: v for k, v in reports.items() if v}
    if not reports:
        return
    names = [e['name'] for e in next(iter(reports.values()))['operating_points'][1:]]
    print('Runtime Hz (mIoU %) per thread split, inference worker / flow worker threads:\n')
    print('| split | per-frame Hz, both cores | ' + ' | '.join(names) + ' |')
    print('|' + '---|' * (2 + len(names)))
    for (inference, flow), report in reports.items():
        entries = {e['name']: e for e in report['operating_points']}
        cells = [f"{cell(entries[n].get('runtime_hz'))} "
                 f"({cell(100 * (entries[n].get('runtime_miou') or 0))})" for n in names]
        print(f"| {inference} / {flow} | {report.get('perframe_hz_both_cores')} | "
              + ' | '.join(cells) + ' |')
    print()


def cameras_table(out):
    print('| operating point | engine | cameras at 17 Hz | trials (cameras: served) |')
    print('|---|---|---|---|')
    for name in ('cameras_evs05', 'cameras_evs05_bf16', 'cameras_evs14', 'cameras_adaptive'):
        report = load(os.path.join(out, 'engines', name, 'cameras.json'))
        if report:
            trials = ', '.join(f"{t['cameras']}: {'yes' if t['served'] else 'no'}"
                               for t in report['trials'])
            print(f"| {report['operating_point']} | {report.get('engine')} "
                  f"{report.get('precision', '')} | "
                  f"{report['cameras_served']} | {trials} |")
    print()


def int8_table(out, name, label):
    fp32 = load(os.path.join(out, 'engines', f'int8_{name}_fp32', 'bench.json'))
    int8 = load(os.path.join(out, 'engines', f'int8_{name}_int8', 'bench.json'))
    if not (fp32 and int8):
        return
    print(f"int8 vs fp32 on OpenVINO, {label} ({fp32['resolution']}, "
          f"{len(fp32['snippets'])} snippets, `{fp32['backend']}`): Hz (synchronous, one core) "
          'and mIoU %\n')
    print('| op | fp32 Hz | int8 Hz | x fp32 | fp32 mIoU | int8 mIoU | change, points |')
    print('|---|---|---|---|---|---|---|')
    for a, b in zip(fp32['operating_points'], int8['operating_points']):
        change = None if a['miou'] is None else 100 * (b['miou'] - a['miou'])
        print(f"| {a['name']} | {a['hz']} | {b['hz']} | {b['hz'] / a['hz']:.2f}x | "
              f"{cell(100 * a['miou'])} | {cell(100 * b['miou'])} | {cell(change, 1)} |")
    print()


def main(out):
    print('# Section 13 tables (scripts/bench_engines.sh)\n')
    print('## Networks per engine (engines/models.json)\n')
    report = load(os.path.join(out, 'engines', 'models.json'))
    if report:
        models_tables(report)
    report = load(os.path.join(out, 'engines', 'models_precision.json'))
    if report:
        precision_table(report)
    report = load(os.path.join(out, 'engines', 'models_dynamic.json'))
    if report:
        dynamic_table(report)
    report = load(os.path.join(out, 'engines', 'models_segformer_b2.json'))
    if report:
        print('SegFormer-B2:\n')
        models_tables(report)
    print('## Operating points per network, 1024x512 (section 6)\n')
    for name in ('icnet', 'segformer-b0', 'segformer-b2', 'espnet-s2'):
        report = load(os.path.join(out, 'engines', 'networks', f'ops_{name}_1024x512',
                                   'bench.json'))
        if report:
            ops_table(report, name)
    print('## The runtime at 2048x1024, every operating point (section 9)\n')
    report = load(os.path.join(out, 'engines', 'runtime_2048', 'bench.json'))
    if report:
        ops_table(report, 'runtime_2048')
    print('## Thread split (section 9)\n')
    threads_table(out)
    print('## Cameras (section 10)\n')
    cameras_table(out)
    print('## int8 (section 13)\n')
    int8_table(out, 'synthetic', 'synthetic test set, calibrated on the train split')
    int8_table(out, 'camvid', 'CamVid val, ESPNetv2-s2, calibrated on bikes.mp4')


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else 'docs/bench')
