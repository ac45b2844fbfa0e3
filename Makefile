# The README's commands. Everything installs into .venv; nothing outside the checkout is touched.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench default-model clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "raphe needs Python 3.11 or newer (found " + sys.version.split()[0] + "); run: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,train]'
	$(BIN)/python -m pip install --quiet --no-deps python-oephys==0.1.3 open-ephys-python-tools==1.0.1
	touch $@

demo: setup
	$(BIN)/raphe demo

# The tests, then every benchmark once in quick mode so that the suite cannot rot (no time is asserted).
test: setup
	$(BIN)/python -m pytest
	$(BIN)/raphe bench --quick --out build/bench-quick

bench: setup
	$(BIN)/raphe bench

# The recipe of the model shipped in classifier/default (about 20 minutes on 2 cores): train on
# 160 synthetic cells over 8 days (seed 1), evaluate on 200 cells of 4 other days (seed 2).
MODEL_BUILD := build/default-model
default-model: setup
	rm -rf $(MODEL_BUILD)
	$(BIN)/raphe synth --cells 160 --days 8 --seed 1 --no-abf --out $(MODEL_BUILD)/train
	$(BIN)/raphe synth --cells 200 --days 4 --seed 2 --no-abf --out $(MODEL_BUILD)/test
	$(BIN)/raphe train $(MODEL_BUILD)/train --out $(MODEL_BUILD)/model --name raphe-default --max-per-cell 200 --seed 1
	$(BIN)/raphe evaluate $(MODEL_BUILD)/model $(MODEL_BUILD)/test --out $(MODEL_BUILD)/report
	rm -rf classifier/default && mkdir -p classifier/default
	cp $(MODEL_BUILD)/model/* $(MODEL_BUILD)/report/* classifier/default/

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .benchmarks .hypothesis
