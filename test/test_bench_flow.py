"""Smoke test of ``evs bench flow`` at a tiny size: the JSON it writes (no timed asserts)."""

import argparse
import json

import cv2

from evs_ros.tools import bench_flow


def test_bench_flow_writes_json(tmp_path):
    parser = argparse.ArgumentParser()
    bench_flow.add_arguments(parser)
    json_path = tmp_path / 'flow.json'
    args = parser.parse_args(['--resolutions', '128x64', '--sources', 'synthetic',
                              '--iterations', '2', '--warmup', '1', '--farneback-iterations', '1',
                              '--no-tune-allocator', '--json', str(json_path)])
    threads = cv2.getNumThreads()
    try:
        assert bench_flow.run(args) == 0
    finally:
        cv2.setNumThreads(threads)  # run() sets 1 thread for the whole process
    report = json.loads(json_path.read_text())
    assert report['hardware']['opencv_threads'] == 1
    assert report['flow_parameters']['finest_scale'] == 2
    (entry,) = report['results']
    assert (entry['source'], entry['width'], entry['height']) == ('synthetic', 128, 64)
    assert entry['prob_size_wh'] == [32, 16]
    for stage in ('dis_ms', 'warp_labels_ms', 'warp_probs_ms', 'iam_ms', 'propagate_ms',
                  'farneback_ms'):
        assert entry[stage]['n'] >= 1 and entry[stage]['median'] > 0
    assert entry['ratio_propagate_to_dis'] > 0
