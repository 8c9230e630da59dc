# DAFT: two commands for a fresh clone on a fresh machine.
#   make test   set everything up and run the test suite
#   make train  set everything up and fine-tune on the MuJoCo bolt tasks with the simulated operator
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# The CPU build of torch is installed first and by exact version: a plain `torch` requirement
# would make pip resolve the newest CUDA build (several GB).
TORCH_PIN ?= torch==2.13.0
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl
# Two cores: one torch thread per process keeps the env and the learner from fighting.
export OMP_NUM_THREADS ?= 1

.PHONY: setup test train lint bench clean

$(VENV)/.installed: setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(TORCH_PIN)
	$(PIP) install --quiet -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

test: setup
	$(PY) -m ruff check daft_env daft_agent hardware tests benchmarks
	$(PY) -m pytest -q

train: setup
	$(VENV)/bin/daft train --preset state
	$(VENV)/bin/daft evaluate runs/state/checkpoint.zip --trials 1 --video runs/state/videos \
		--record runs/state/videos/evaluation.rrd

lint: setup
	$(PY) -m ruff check daft_env daft_agent hardware tests benchmarks
	$(PY) -m ruff format --check daft_env daft_agent hardware tests benchmarks

bench: setup
	$(PY) benchmarks/env_throughput.py
	$(PY) benchmarks/learner_throughput.py

clean:
	rm -rf $(VENV) runs build *.egg-info
