# Two commands on a fresh machine: `make demo` and `make test` (each sets up .venv first).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export YOLO_OFFLINE := 1

.PHONY: demo test lint check-kernels setup clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,ray]'
	touch $@

setup: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m vizoflow +site=demo

test: $(VENV)/.installed
	$(PY) -m pytest -q

# ruff, configured in pyproject.toml ([tool.ruff]).
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check vizoflow tests bench

# The footage tests again under other CPU kernels and a detector threshold moved by +-0.01 (README, "Precision").
check-kernels: $(VENV)/.installed
	PY=$(PY) .ci/check-kernels

clean:
	rm -rf outputs multirun .pytest_cache
