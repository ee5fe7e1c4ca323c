# dse: `make demo` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
# The CPU wheel of torch that lies on this machine's disk; a range would pull a multi-GB CUDA build.
TORCH_PIN := torch==2.13.0

# Real MNIST sits in ../shared/data on the project's machines; users elsewhere download it.
ifeq ($(origin DSE_DATA_DIR), undefined)
ifneq ($(wildcard ../shared/data),)
export DSE_DATA_DIR := $(abspath ../shared/data)
endif
endif

.PHONY: venv demo test lint bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check $(TORCH_PIN)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

# A real (CPU-sized) training run on MNIST; the exploration demo arrives with `dse run`.
demo: venv
	$(VENV)/bin/dse summary --preset baseline
	$(VENV)/bin/dse train --preset warm_adabatch --set epochs=2 \
	  --set dataset.train_subset=5000 --set batch_schedule.batch_size=32 \
	  --set 'batch_schedule.milestones=[[1, 128]]' \
	  --set model.conv_channels=32 --set model.primary_types=8 --save results/demo.pt

test: venv
	$(VENV)/bin/pytest -q

lint: venv
	$(VENV)/bin/ruff check dse tests bench
	$(VENV)/bin/ruff format --check dse tests bench

bench: venv
	$(PY) bench/step_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
