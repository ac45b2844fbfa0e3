# The README's commands. Everything installs into .venv; nothing outside the checkout is touched.
# `make demo` installs the runtime only (no TensorFlow: the demo never trains); `make test` installs
# everything (the train and dev extras, and the two third-party test clients).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.installed-runtime
EVERYTHING := $(VENV)/.installed-everything

.PHONY: setup setup-runtime demo test bench default-model default-model-recipe clean

setup: $(EVERYTHING)
setup-runtime: $(RUNTIME)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "raphe needs Python 3.11 or newer (found " + sys.version.split()[0] + "); run: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(EVERYTHING): pyproject.toml Makefile $(RUNTIME)
	$(BIN)/python -m pip install --quiet -e '.[dev,train]'
	$(BIN)/python -m pip install --quiet --no-deps python-oephys==0.1.3 open-ephys-python-tools==1.0.1
	touch $@

demo: $(RUNTIME)
	$(BIN)/raphe demo

# The tests, then every benchmark once in quick mode so that the suite cannot rot (no time is asserted).
test: $(EVERYTHING)
	$(BIN)/python -m pytest
	$(BIN)/raphe bench --quick --out build/bench-quick

bench: $(EVERYTHING)
	$(BIN)/raphe bench

# The recipe of the model shipped in classifier/default (about 22 minutes on 2 cores): train on
# 160 synthetic cells over 8 days (seed 1), fit the cell posterior on 200 cells of 4 other days
# (seed 3), evaluate on 200 cells of 4 more days (seed 2).
MODEL_BUILD := build/default-model
SYNTH_TRAIN := synth --cells 160 --days 8 --seed 1 --no-abf --out $(MODEL_BUILD)/train
SYNTH_CAL := synth --cells 200 --days 4 --seed 3 --no-abf --out $(MODEL_BUILD)/calibration
SYNTH_TEST := synth --cells 200 --days 4 --seed 2 --no-abf --out $(MODEL_BUILD)/test
TRAIN := train $(MODEL_BUILD)/train --out $(MODEL_BUILD)/model --name raphe-default --max-per-cell 200 --seed 1
CALIBRATE := calibrate $(MODEL_BUILD)/model $(MODEL_BUILD)/calibration
EVALUATE := evaluate $(MODEL_BUILD)/model $(MODEL_BUILD)/test --out $(MODEL_BUILD)/report
default-model: $(EVERYTHING)
	rm -rf $(MODEL_BUILD)
	$(BIN)/raphe $(SYNTH_TRAIN)
	$(BIN)/raphe $(SYNTH_CAL)
	$(BIN)/raphe $(SYNTH_TEST)
	$(BIN)/raphe $(TRAIN)
	$(BIN)/raphe $(CALIBRATE)
	$(BIN)/raphe $(EVALUATE)
	rm -rf classifier/default && mkdir -p classifier/default
	cp $(MODEL_BUILD)/model/* $(MODEL_BUILD)/report/* classifier/default/
	$(MAKE) --no-print-directory default-model-recipe

# Written by default-model: the exact commands, beside the model they built.
default-model-recipe:
	printf '%s\n' "# How this model was built" "" "\`make default-model\` ran, from the repository root:" "" \
		'```' "raphe $(SYNTH_TRAIN)" "raphe $(SYNTH_CAL)" "raphe $(SYNTH_TEST)" "raphe $(TRAIN)" \
		"raphe $(CALIBRATE)" "raphe $(EVALUATE)" '```' "" \
		"Training data: synthetic cells only (raphe's generator, seed 1, days s1-d01 ... s1-d08)." \
		"Cell posterior fitted on 200 cells of 4 other days (seed 3, s3-d01 ... s3-d04)." \
		"Evaluation data: 200 synthetic cells of 4 other days and another seed (s2-d01 ... s2-d04): report.md." \
		> classifier/default/RECIPE.md

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .benchmarks .hypothesis
