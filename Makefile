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

# A real exploration on MNIST, CPU-sized: 12 trials on 2 workers, then the front and its report.
demo: venv
	$(VENV)/bin/dse run --space search_spaces/quick.yaml --storage sqlite:///results/demo.db \
	  --workers 2 --quiet
	$(VENV)/bin/dse pareto --storage sqlite:///results/demo.db --study quick --plot --out results

test: venv
	$(VENV)/bin/pytest -q

lint: venv
	$(VENV)/bin/ruff check dse tests bench
	$(VENV)/bin/ruff format --check dse tests bench

bench: venv
	$(PY) bench/step_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
