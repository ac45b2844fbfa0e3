# The README's commands. Everything installs into .venv; nothing outside the checkout is touched.
# `make demo` installs the runtime only (no TensorFlow: the demo never trains); `make test` installs
# everything (the train and dev extras, and the two third-party test clients).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.installed-runtime
EVERYTHING := $(VENV)/.installed-everything
DOCS := $(VENV)/.installed-docs

.PHONY: setup setup-runtime demo test docs browser bench default-model default-firing default-model-recipe cross-generator \
	classic-firing compare-families clean

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
	# AxoGraph's own writer library, for the format tests (built against the venv's numpy and Cython;
	# it imports pkg_resources, which setuptools 81 and later no longer ship)
	$(BIN)/python -m pip install --quiet cython==3.3.1 "setuptools>=70,<81"
	$(BIN)/python -m pip install --quiet --no-build-isolation axographio==0.3.2
	touch $@

demo: $(RUNTIME)
	$(BIN)/raphe demo

# The documentation site, the tests, then every benchmark once in quick mode so that the suite cannot rot (no
# time is asserted).
test: $(EVERYTHING) browser docs
	$(BIN)/python -m pytest
	$(BIN)/raphe bench --quick --out-dir build/bench-quick

# The documentation site (mkdocs.yml, docs/) into build/site, strictly: a broken link, an anchor that is not
# there, a page missing from the nav or a docstring that cannot be rendered fails the build.
$(DOCS): pyproject.toml Makefile $(RUNTIME)
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	touch $@

docs: $(DOCS)
	$(BIN)/mkdocs build --strict --quiet --site-dir build/site

# The live view's test drives a real headless Chromium: Debian's, installed here where it is missing
# and this user may install it (elsewhere the test says why it cannot run; under CI it fails).
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get install -y -q chromium chromium-driver >/dev/null || \
		(apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null); \
	else echo "no Chromium here and no apt-get as root: the live view's browser test will be skipped"; fi

bench: $(EVERYTHING)
	$(BIN)/raphe bench

# The recipe of the model shipped in classifier/default (about 25 minutes on 2 cores): train on
# 160 cells of each generator (template and biophysical) over 8 days each (seed 1), every day at its
# own sample rate; fit the cell posterior on 100 cells of each generator from 4 other days (seed 3);
# judge it on 200 cells of each generator from 4 more days (seed 2).
MODEL_BUILD := build/default-model
RATES := --rates 20000 25000 40000 50000
# The waveform model's data keep the firing of the version that built it (--firing classic gives
# exactly those windows); the firing model learns from trains with their exceptions (varied).
SYNTH := synth --no-abf --firing classic $(RATES)
FIRING_SYNTH := synth --no-abf --firing varied $(RATES)
SYNTH_TRAIN_T := $(SYNTH) --generator template --cells 160 --days 8 --seed 1 --out-dir $(MODEL_BUILD)/train-template
SYNTH_TRAIN_B := $(SYNTH) --generator biophysical --cells 160 --days 8 --seed 1 --out-dir $(MODEL_BUILD)/train-biophysical
SYNTH_CAL_T := $(SYNTH) --generator template --cells 100 --days 4 --seed 3 --out-dir $(MODEL_BUILD)/calibration-template
SYNTH_CAL_B := $(SYNTH) --generator biophysical --cells 100 --days 4 --seed 3 --out-dir $(MODEL_BUILD)/calibration-biophysical
SYNTH_TEST_T := $(SYNTH) --generator template --cells 200 --days 4 --seed 2 --out-dir $(MODEL_BUILD)/test-template
SYNTH_TEST_B := $(SYNTH) --generator biophysical --cells 200 --days 4 --seed 2 --out-dir $(MODEL_BUILD)/test-biophysical
TRAIN := train $(MODEL_BUILD)/train-template $(MODEL_BUILD)/train-biophysical --out-dir $(MODEL_BUILD)/model \
	--name raphe-default --max-per-cell 100 --seed 1
DISTILL := distill $(MODEL_BUILD)/model/raphe-default-float32.tflite $(MODEL_BUILD)/train-template \
	$(MODEL_BUILD)/train-biophysical --out-dir $(MODEL_BUILD)/model --name raphe-student --max-per-cell 100 --seed 1
CALIBRATE := calibrate $(MODEL_BUILD)/model $(MODEL_BUILD)/calibration-template $(MODEL_BUILD)/calibration-biophysical
EVALUATE := evaluate $(MODEL_BUILD)/model $(MODEL_BUILD)/test-template $(MODEL_BUILD)/test-biophysical \
	--out-dir $(MODEL_BUILD)/report
MATRIX := matrix --model ensemble=$(MODEL_BUILD)/model/raphe-default-dynamic.tflite \
	--model student=$(MODEL_BUILD)/model/raphe-student-dynamic.tflite \
	--data template=$(MODEL_BUILD)/test-template --data biophysical=$(MODEL_BUILD)/test-biophysical \
	--out-dir $(MODEL_BUILD)/matrix
FIRING_TRAIN_T := $(FIRING_SYNTH) --generator template --cells 160 --days 8 --seed 11 --out-dir $(MODEL_BUILD)/firing-train-template
FIRING_TRAIN_B := $(FIRING_SYNTH) --generator biophysical --cells 160 --days 8 --seed 11 \
	--out-dir $(MODEL_BUILD)/firing-train-biophysical
FIRING_CAL_T := $(FIRING_SYNTH) --generator template --cells 100 --days 4 --seed 13 \
	--out-dir $(MODEL_BUILD)/firing-calibration-template
FIRING_CAL_B := $(FIRING_SYNTH) --generator biophysical --cells 100 --days 4 --seed 13 \
	--out-dir $(MODEL_BUILD)/firing-calibration-biophysical
FIRING_TEST_T := $(FIRING_SYNTH) --generator template --cells 200 --days 4 --seed 12 --out-dir $(MODEL_BUILD)/firing-test-template
FIRING_TEST_B := $(FIRING_SYNTH) --generator biophysical --cells 200 --days 4 --seed 12 \
	--out-dir $(MODEL_BUILD)/firing-test-biophysical
FIRING_MODEL := firing-model $(MODEL_BUILD)/firing-train-template $(MODEL_BUILD)/firing-train-biophysical \
	--out $(MODEL_BUILD)/model/raphe-firing.json --seed 1
CALIBRATE_JOINT := calibrate $(MODEL_BUILD)/model $(MODEL_BUILD)/firing-calibration-template \
	$(MODEL_BUILD)/firing-calibration-biophysical --firing $(MODEL_BUILD)/model/raphe-firing.json
EVALUATE_JOINT := evaluate $(MODEL_BUILD)/model $(MODEL_BUILD)/firing-test-template $(MODEL_BUILD)/firing-test-biophysical \
	--out-dir $(MODEL_BUILD)/report
MATRIX_JOINT := matrix --model ensemble=$(MODEL_BUILD)/model/raphe-default-dynamic.tflite \
	--model student=$(MODEL_BUILD)/model/raphe-student-dynamic.tflite \
	--data template=$(MODEL_BUILD)/firing-test-template --data biophysical=$(MODEL_BUILD)/firing-test-biophysical \
	--evidence waveform firing both --out-dir $(MODEL_BUILD)/matrix
default-model: $(EVERYTHING)
	rm -rf $(MODEL_BUILD)
	$(BIN)/raphe $(SYNTH_TRAIN_T)
	$(BIN)/raphe $(SYNTH_TRAIN_B)
	$(BIN)/raphe $(SYNTH_CAL_T)
	$(BIN)/raphe $(SYNTH_CAL_B)
	$(BIN)/raphe $(SYNTH_TEST_T)
	$(BIN)/raphe $(SYNTH_TEST_B)
	$(BIN)/raphe $(TRAIN)
	$(BIN)/raphe $(DISTILL)
	$(BIN)/raphe $(CALIBRATE)
	$(BIN)/raphe $(EVALUATE)
	$(BIN)/raphe $(MATRIX)
	rm -rf classifier/default && mkdir -p classifier/default
	cp $(MODEL_BUILD)/model/* $(MODEL_BUILD)/report/* $(MODEL_BUILD)/matrix/* classifier/default/
	$(MAKE) --no-print-directory default-firing

# The firing part of the default model (about 15 minutes; run by default-model, or alone on its
# build): a firing model trained on varied trains of both generators (seed 11), the joint posterior
# of every model fitted on 100 cells of each generator from 4 other days (seed 13), all judged on
# 200 cells of each from 4 more days (seed 12), waveform, firing and joint side by side.
default-firing: $(EVERYTHING)
	test -d $(MODEL_BUILD)/model || $(MAKE) --no-print-directory default-model
	rm -rf $(MODEL_BUILD)/firing-* $(MODEL_BUILD)/report $(MODEL_BUILD)/matrix
	$(BIN)/raphe $(FIRING_TRAIN_T)
	$(BIN)/raphe $(FIRING_TRAIN_B)
	$(BIN)/raphe $(FIRING_CAL_T)
	$(BIN)/raphe $(FIRING_CAL_B)
	$(BIN)/raphe $(FIRING_TEST_T)
	$(BIN)/raphe $(FIRING_TEST_B)
	$(BIN)/raphe $(FIRING_MODEL)
	$(BIN)/raphe $(CALIBRATE_JOINT)
	$(BIN)/raphe $(EVALUATE_JOINT)
	$(BIN)/raphe $(MATRIX_JOINT)
	cp $(MODEL_BUILD)/model/* $(MODEL_BUILD)/report/* $(MODEL_BUILD)/matrix/* classifier/default/
	$(MAKE) --no-print-directory default-model-recipe

# Written by default-model: the exact commands, beside the model they built.
default-model-recipe:
	printf '%s\n' "# How this model was built" "" "\`make default-model\` ran, from the repository root:" "" \
		'```' "raphe $(SYNTH_TRAIN_T)" "raphe $(SYNTH_TRAIN_B)" "raphe $(SYNTH_CAL_T)" "raphe $(SYNTH_CAL_B)" \
		"raphe $(SYNTH_TEST_T)" "raphe $(SYNTH_TEST_B)" "raphe $(TRAIN)" "raphe $(DISTILL)" "raphe $(CALIBRATE)" \
		"raphe $(EVALUATE)" "raphe $(MATRIX)" "raphe $(FIRING_TRAIN_T)" "raphe $(FIRING_TRAIN_B)" \
		"raphe $(FIRING_CAL_T)" "raphe $(FIRING_CAL_B)" "raphe $(FIRING_TEST_T)" "raphe $(FIRING_TEST_B)" \
		"raphe $(FIRING_MODEL)" "raphe $(CALIBRATE_JOINT)" "raphe $(EVALUATE_JOINT)" "raphe $(MATRIX_JOINT)" '```' "" \
		"Training data: synthetic cells only, from both of raphe's generators (template: days s1-d01 ... s1-d08;" \
		"biophysical: days b1-d01 ... b1-d08), each day at its own sample rate (20, 25, 40 or 50 kHz)." \
		"Firing model: trained on the spike trains of 160 cells of each generator with varied firing (days s11-*, b11-*)." \
		"Cell posterior (waveform tempering, firing weight, margins) fitted on 100 cells of each generator from 4 other" \
		"days with varied firing (s13-d01 ... s13-d04, b13-d01 ... b13-d04); the calibration and test sets of the" \
		"waveform steps (seeds 3 and 2) were the first version's, kept for its report (overwritten by the joint one)." \
		"Evaluation: 200 cells of each generator from 4 more days with varied firing (s12-*, b12-*): report.md, matrix.md." \
		"The steps up to the first matrix ran under an earlier raphe whose synth had no --firing option; its data" \
		"are exactly those of --firing classic." \
		> classifier/default/RECIPE.md

# The cross-generator matrix (about 15 minutes after default-model, whose data it reuses): the same
# recipe, waveform and firing models, trained on one generator alone, each calibrated like the
# shipped model (on held-out days of both generators), every model judged on the held-out days of
# each generator with the waveform evidence alone and with the joint posterior.
CROSS := build/cross-generator
cross-generator: $(EVERYTHING)
	test -d $(MODEL_BUILD)/firing-test-biophysical || $(MAKE) --no-print-directory default-model
	rm -rf $(CROSS)
	$(BIN)/raphe train $(MODEL_BUILD)/train-template --out-dir $(CROSS)/template --name template --max-per-cell 100 --seed 1
	$(BIN)/raphe train $(MODEL_BUILD)/train-biophysical --out-dir $(CROSS)/biophysical --name biophysical \
		--max-per-cell 100 --seed 1
	$(BIN)/raphe firing-model $(MODEL_BUILD)/firing-train-template --out $(CROSS)/template/template-firing.json --seed 1
	$(BIN)/raphe firing-model $(MODEL_BUILD)/firing-train-biophysical \
		--out $(CROSS)/biophysical/biophysical-firing.json --seed 1
	$(BIN)/raphe calibrate $(CROSS)/template/template-dynamic.tflite $(MODEL_BUILD)/firing-calibration-template \
		$(MODEL_BUILD)/firing-calibration-biophysical --firing $(CROSS)/template/template-firing.json
	$(BIN)/raphe calibrate $(CROSS)/biophysical/biophysical-dynamic.tflite $(MODEL_BUILD)/firing-calibration-template \
		$(MODEL_BUILD)/firing-calibration-biophysical --firing $(CROSS)/biophysical/biophysical-firing.json
	$(BIN)/raphe matrix --model template=$(CROSS)/template/template-dynamic.tflite \
		--model biophysical=$(CROSS)/biophysical/biophysical-dynamic.tflite \
		--model both=classifier/default/raphe-default-dynamic.tflite \
		--model both-student=classifier/default/raphe-student-dynamic.tflite \
		--data template=$(MODEL_BUILD)/firing-test-template --data biophysical=$(MODEL_BUILD)/firing-test-biophysical \
		--evidence waveform both --out-dir $(CROSS)/matrix
	cp $(CROSS)/matrix/matrix.md classifier/default/cross-generator.md
	cp $(CROSS)/matrix/tradeoff.png classifier/default/cross-generator-tradeoff.png

# The joint posterior without the synthetic firing's exceptions (about 15 minutes after
# default-firing): the same firing recipe on textbook trains (--firing classic, seeds 11, 13, 12),
# the shipped ensemble's copy calibrated with it, judged with each evidence; docs/default-model.md.
CLASSIC := build/classic-firing
classic-firing: $(EVERYTHING)
	test -d $(MODEL_BUILD)/model || $(MAKE) --no-print-directory default-model
	rm -rf $(CLASSIC) && mkdir -p $(CLASSIC)/model
	$(BIN)/raphe $(subst varied,classic,$(subst $(MODEL_BUILD),$(CLASSIC),$(FIRING_TRAIN_T)))
	$(BIN)/raphe $(subst varied,classic,$(subst $(MODEL_BUILD),$(CLASSIC),$(FIRING_TRAIN_B)))
	$(BIN)/raphe $(subst varied,classic,$(subst $(MODEL_BUILD),$(CLASSIC),$(FIRING_CAL_T)))
	$(BIN)/raphe $(subst varied,classic,$(subst $(MODEL_BUILD),$(CLASSIC),$(FIRING_CAL_B)))
	$(BIN)/raphe $(subst varied,classic,$(subst $(MODEL_BUILD),$(CLASSIC),$(FIRING_TEST_T)))
	$(BIN)/raphe $(subst varied,classic,$(subst $(MODEL_BUILD),$(CLASSIC),$(FIRING_TEST_B)))
	cp classifier/default/raphe-default-dynamic.tflite classifier/default/raphe-default-dynamic.json $(CLASSIC)/model/
	$(BIN)/raphe firing-model $(CLASSIC)/firing-train-template $(CLASSIC)/firing-train-biophysical \
		--out $(CLASSIC)/model/classic-firing.json --seed 1
	$(BIN)/raphe calibrate $(CLASSIC)/model $(CLASSIC)/firing-calibration-template $(CLASSIC)/firing-calibration-biophysical \
		--firing $(CLASSIC)/model/classic-firing.json
	$(BIN)/raphe matrix --model classic=$(CLASSIC)/model/raphe-default-dynamic.tflite \
		--data template=$(CLASSIC)/firing-test-template --data biophysical=$(CLASSIC)/firing-test-biophysical \
		--evidence waveform firing both --out-dir $(CLASSIC)/matrix

# The comparison of model families (about 11 minutes after default-firing, whose test cells it reads:
# 400 cells of both generators with varied firing, 10 repeated cell-level splits).
compare-families: $(EVERYTHING)
	test -d $(MODEL_BUILD)/firing-test-biophysical || $(MAKE) --no-print-directory default-model
	$(BIN)/raphe compare $(MODEL_BUILD)/firing-test-template $(MODEL_BUILD)/firing-test-biophysical --out-dir build/compare
	cp build/compare/report.md classifier/default/compare.md
	cp build/compare/confusion-firing.png build/compare/confusion-waveform.png classifier/default/

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .benchmarks .hypothesis
