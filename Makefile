# evs_ros: common tasks. Everything runs inside the repository's venv and colcon install.
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

lint:
	bash -c 'source .venv/bin/activate && flake8 evs_ros test launch'

bench: setup      ## operating points vs per-frame (quick mode) -> out/bench
	bash -c 'source scripts/env.sh && evs bench --quick --out out/bench'

clean:
	rm -rf build install log out
