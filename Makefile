# The two commands a new user needs: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup lint check-docs test test-all demo gpu-pack clean

setup:
	bash tools/setup_env.sh

lint: setup
	$(VENV)/bin/ruff check .

# the generated tables and metafiles are current (python tools/update_readme.py rewrites them)
check-docs: setup
	$(PY) tools/update_readme.py --check

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

# the default run plus the tests marked slow
test-all: setup
	$(PY) -m pytest -m "slow or not slow" $(PYTEST_ARGS)

# train, evaluate and run the tiny CA detector and segmentor on CPU (work_dirs/demo/)
demo: setup
	$(PY) tools/demo.py

# gpu_pack/: wheels, mmcv's source and run.sh for the GPU check on a lent GPU machine without
# network (docs/setup.md); needs pip and the package index, not the set-up
gpu-pack:
	$(if $(wildcard $(PY)),$(PY),python3) tools/gpu_pack/make_pack.py

clean:
	rm -rf work_dirs .pytest_cache
