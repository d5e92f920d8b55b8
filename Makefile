# Two commands on a fresh machine: `make demo` and `make test` (each sets up .venv first).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export YOLO_OFFLINE := 1

.PHONY: demo test setup clean

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

clean:
	rm -rf outputs multirun .pytest_cache
