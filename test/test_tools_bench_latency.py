"""``evs bench latency`` end to end with the fake backend on tiny frames.

Numbers are not checked (benchmarks are commands): this checks that the command runs and reports
every field.
"""

import argparse
import json

import pytest

from evs_ros.tools import bench_latency, common

pytestmark = pytest.mark.slow


def test_parsers_accept_the_documented_forms_and_explain_typos():
    assert common.parse_sizes('1024x512, 2048X1024') == [(1024, 512), (2048, 1024)]
    assert bench_latency.parse_rates('17,max') == [17.0, None]
    with pytest.raises(ValueError, match='is not WIDTHxHEIGHT'):
        common.parse_sizes('1024*512')
    with pytest.raises(ValueError, match='> 0 or max'):
        bench_latency.parse_rates('0')


def refuse(constant: str):
    raise ValueError(f'{constant} is not JSON')


def test_bench_latency_writes_json_and_markdown(ros_env, tmp_path):
    parser = argparse.ArgumentParser()
    bench_latency.add_arguments(parser)
    out = tmp_path / 'latency.json'
    args = parser.parse_args([
        '--json', str(out), '--resolutions', '64x32', '--operating-points', 'EVS05,EVS10',
        '--rates', '40,max', '--frames', '12', '--max-seconds', '0.2',
        '--backend', 'python:fake_models:make_model', '--domain-id', ros_env['ROS_DOMAIN_ID']])
    assert bench_latency.run(args) == 0
    summary = json.loads(out.read_text(), parse_constant=refuse)  # strict JSON: no NaN
    runs = [(r['operating_point'], r['rate']) for r in summary['results']]
    assert runs == [('EVS05', 40.0), ('EVS05', 'max'), ('EVS10', 40.0), ('EVS10', 'max')]
    for result in summary['results']:
        assert result['resolution'] == '64x32' and result['frames_with_labels'] > 0
        assert result['frames_offered'] >= 12
        assert result['frames_with_labels'] + result['dropped_by_node'] <= \
            result['frames_offered']
        assert result['latency_ms_p99'] >= result['latency_ms_p50'] > 0
        assert result['ros_overhead_ms_p50'] == pytest.approx(
            result['latency_ms_p50'] - result['node_total_ms_p50'])
    assert summary['results'][1]['frames_offered'] > 12  # max: back to back for 0.2 s
    table = (tmp_path / 'latency.md').read_text()
    assert table.count('| EVS05 | 64x32 |') == 2 and 'ROS overhead p50 ms' in table
