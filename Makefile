# The README's commands. Everything installs into .venv; nothing outside the checkout is touched.
# `make demo` installs the runtime only (no TensorFlow: the demo never trains); `make test` installs
# everything (the train and dev extras, and the two third-party test clients).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.installed-runtime
EVERYTHING := $(VENV)/.installed-everything
DOCS := $(VENV)/.installed-docs

.PHONY: setup setup-runtime demo test docs browser bench default-model default-posterior default-model-recipe cross-generator \
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

# The recipe of the model shipped in classifier/default (about 60 minutes on 2 cores). Three
# generators, each written on its own principle (template, biophysical, compartmental). The shipped
# ensemble (and its student) learn the shapes of 160 cells of template and biophysical over 8 days
# each (seed 1); two more ensembles, by the same recipe, each leave another generator out (the
# leave-one-generator-out folds). A firing model learns the trains of 160 cells of each of the two
# (varied firing, seed 11). The posterior is fitted once for all the folds together on 100 cells of
# each of the three generators from 4 other days (seed 13): every fold, on the cells of the generator
# it never saw too, must hold, and each class's threshold is chosen by risk control; then everything
# is judged on 200 cells of each generator from 4 more days (seed 12) and on their conflict cells.
MODEL_BUILD := build/default-model
RATES := --rates 20000 25000 40000 50000
# The waveform models' data keep the firing of the version that built them (--firing classic gives
# exactly those windows); the firing model learns from trains with their exceptions (varied).
SYNTH := synth --no-abf --firing classic $(RATES)
FIRING_SYNTH := synth --no-abf --firing varied $(RATES)
GENERATORS := template biophysical compartmental
SHAPES = $(SYNTH) --generator $(1) --cells 160 --days 8 --seed 1 --out-dir $(MODEL_BUILD)/train-$(1)
TRAINS = $(FIRING_SYNTH) --generator $(1) --cells 160 --days 8 --seed 11 --out-dir $(MODEL_BUILD)/firing-train-$(1)
CALIBRATION_CELLS = $(FIRING_SYNTH) --generator $(1) --cells 100 --days 4 --seed 13 --out-dir $(MODEL_BUILD)/calibration-$(1)
TEST_CELLS = $(FIRING_SYNTH) --generator $(1) --cells 200 --days 4 --seed 12 --out-dir $(MODEL_BUILD)/test-$(1)
TRAIN := train $(MODEL_BUILD)/train-template $(MODEL_BUILD)/train-biophysical --out-dir $(MODEL_BUILD)/model \
	--name raphe-default --max-per-cell 100 --seed 1
# The student learns the ensemble's answers on up to 200 windows of each cell of its training sets
# and, labels unused, of the compartmental training cells (so that it imitates the ensemble where the
# ensemble never trained); its agreement is measured on each generator's test windows.
DISTILL := distill $(MODEL_BUILD)/model/raphe-default-float32.tflite $(MODEL_BUILD)/train-template \
	$(MODEL_BUILD)/train-biophysical --unlabelled $(MODEL_BUILD)/train-compartmental --out-dir $(MODEL_BUILD)/model \
	--name raphe-student --max-per-cell 200 --seed 1 $(foreach g,$(GENERATORS),--check $(g)=$(MODEL_BUILD)/test-$(g))
FOLD_T := train $(MODEL_BUILD)/train-biophysical $(MODEL_BUILD)/train-compartmental \
	--out-dir $(MODEL_BUILD)/without-template --name without-template --max-per-cell 100 --seed 1
FOLD_B := train $(MODEL_BUILD)/train-template $(MODEL_BUILD)/train-compartmental \
	--out-dir $(MODEL_BUILD)/without-biophysical --name without-biophysical --max-per-cell 100 --seed 1
FIRING_MODEL := firing-model $(MODEL_BUILD)/firing-train-template $(MODEL_BUILD)/firing-train-biophysical \
	--out $(MODEL_BUILD)/model/raphe-firing.json --seed 1
CALIBRATE := calibrate $(MODEL_BUILD)/model $(foreach g,$(GENERATORS),$(MODEL_BUILD)/calibration-$(g)) \
	--firing $(MODEL_BUILD)/model/raphe-firing.json \
	--across $(MODEL_BUILD)/without-template/without-template-dynamic.tflite \
	$(MODEL_BUILD)/without-biophysical/without-biophysical-dynamic.tflite
# The cascade: the student, with the ensemble for the windows it is unsure of; its margin chosen on the
# calibration cells, and the pair measured on each generator's test windows (windows and cells).
CASCADE := cascade $(MODEL_BUILD)/model/raphe-student-dynamic.tflite $(MODEL_BUILD)/model/raphe-default-dynamic.tflite \
	$(foreach g,$(GENERATORS),--choose $(g)=$(MODEL_BUILD)/calibration-$(g)) \
	$(foreach g,$(GENERATORS),--check $(g)=$(MODEL_BUILD)/test-$(g)) --out $(MODEL_BUILD)/model/raphe-cascade.json
EVALUATE := evaluate $(MODEL_BUILD)/model $(foreach g,$(GENERATORS),$(MODEL_BUILD)/test-$(g)) --out-dir $(MODEL_BUILD)/report
# The headline: every fold on the generator it never saw (and on those it did), each evidence, and
# every generator's conflict cells.
MATRIX := matrix --model without-compartmental=$(MODEL_BUILD)/model/raphe-default-dynamic.tflite \
	--model without-template=$(MODEL_BUILD)/without-template/without-template-dynamic.tflite \
	--model without-biophysical=$(MODEL_BUILD)/without-biophysical/without-biophysical-dynamic.tflite \
	--model student=$(MODEL_BUILD)/model/raphe-student-dynamic.tflite \
	--model cascade=$(MODEL_BUILD)/model/raphe-cascade.json \
	$(foreach g,$(GENERATORS),--data $(g)=$(MODEL_BUILD)/test-$(g)) --evidence waveform both --conflict \
	--out-dir $(MODEL_BUILD)/matrix
default-model: $(EVERYTHING)
	rm -rf $(MODEL_BUILD)
	$(foreach g,$(GENERATORS),$(BIN)/raphe $(call SHAPES,$(g)) &&) true
	$(BIN)/raphe $(TRAIN)
	$(BIN)/raphe $(FOLD_T)
	$(BIN)/raphe $(FOLD_B)
	$(MAKE) --no-print-directory default-posterior

# The student, the posterior of the default model and its judgement (about 40 minutes; run by
# default-model, or alone on its build): the held-out sets, the student (checked on them), the
# firing model, the fit across generators, the cascade, the report and the matrix.
default-posterior: $(EVERYTHING)
	test -d $(MODEL_BUILD)/without-biophysical || $(MAKE) --no-print-directory default-model
	rm -rf $(MODEL_BUILD)/firing-* $(MODEL_BUILD)/calibration-* $(MODEL_BUILD)/test-* $(MODEL_BUILD)/report \
		$(MODEL_BUILD)/matrix
	$(foreach g,template biophysical,$(BIN)/raphe $(call TRAINS,$(g)) &&) true
	$(foreach g,$(GENERATORS),$(BIN)/raphe $(call CALIBRATION_CELLS,$(g)) && $(BIN)/raphe $(call TEST_CELLS,$(g)) &&) true
	$(BIN)/raphe $(DISTILL)
	$(BIN)/raphe $(FIRING_MODEL)
	$(BIN)/raphe $(CALIBRATE)
	$(BIN)/raphe $(CASCADE)
	$(BIN)/raphe $(EVALUATE)
	$(BIN)/raphe $(MATRIX)
	find classifier/default -type f ! -name compare.md ! -name 'confusion-*.png' -delete  # compare-families' are kept
	cp $(MODEL_BUILD)/model/* $(MODEL_BUILD)/report/* classifier/default/
	cp $(MODEL_BUILD)/matrix/matrix.md classifier/default/cross-generator.md
	cp $(MODEL_BUILD)/matrix/matrix.json classifier/default/cross-generator.json
	cp $(MODEL_BUILD)/matrix/tradeoff.png classifier/default/cross-generator-tradeoff.png
	$(MAKE) --no-print-directory default-model-recipe

# Written by default-model: the exact commands, beside the model they built.
default-model-recipe:
	printf '%s\n' "# How this model was built" "" "\`make default-model\` ran, from the repository root:" "" \
		'```' $(foreach g,$(GENERATORS),"raphe $(call SHAPES,$(g))") "raphe $(TRAIN)" \
		"raphe $(FOLD_T)" "raphe $(FOLD_B)" $(foreach g,template biophysical,"raphe $(call TRAINS,$(g))") \
		$(foreach g,$(GENERATORS),"raphe $(call CALIBRATION_CELLS,$(g))" "raphe $(call TEST_CELLS,$(g))") \
		"raphe $(DISTILL)" "raphe $(FIRING_MODEL)" "raphe $(CALIBRATE)" "raphe $(CASCADE)" "raphe $(EVALUATE)" "raphe $(MATRIX)" '```' "" \
		"Training data: synthetic cells only. The shipped ensemble: 160 cells of each of two" \
		"generators (template: days s1-d01 ... s1-d08; biophysical: b1-d01 ... b1-d08), each day at its own sample" \
		"rate (20, 25, 40 or 50 kHz). The compartmental generator's cells (c1-*) trained only the two" \
		"leave-one-generator-out folds (without-template, without-biophysical); the shipped ensemble is itself the" \
		"fold without compartmental. Its student learned the ensemble's answers (never a label) on windows of the" \
		"same cells and of the compartmental training cells, and was checked on each generator's test windows. The" \
		"cascade (raphe-cascade.json: the student, and the ensemble for the windows the student is unsure of) had its" \
		"margin chosen on the calibration cells below and was measured on the test cells. Firing model: the spike trains of 160 cells of template and biophysical with" \
		"varied firing (days s11-*, b11-*). Cell posterior (tempering, waveform cap, firing weight, margins," \
		"conflict level) fitted once for the shipped models and the two folds together, on 100 cells of each of the" \
		"three generators from 4 other days (s13-*, b13-*, c13-*), each (model, generator) a group that must hold;" \
		"each class's decision threshold then chosen by risk control on the same cells." \
		"Evaluation: 200 cells of each generator from 4 more days (s12-*, b12-*, c12-*) and their conflict cells:" \
		"report.md, cross-generator.md." \
		> classifier/default/RECIPE.md

# The leave-one-generator-out matrix alone, on default-model's build (about 10 minutes).
cross-generator: $(EVERYTHING)
	test -d $(MODEL_BUILD)/test-compartmental || $(MAKE) --no-print-directory default-model
	$(BIN)/raphe $(MATRIX)
	cp $(MODEL_BUILD)/matrix/matrix.md classifier/default/cross-generator.md
	cp $(MODEL_BUILD)/matrix/matrix.json classifier/default/cross-generator.json
	cp $(MODEL_BUILD)/matrix/tradeoff.png classifier/default/cross-generator-tradeoff.png

# The joint posterior without the synthetic firing's exceptions (about 15 minutes after
# default-model): the same firing recipe on textbook trains (--firing classic, seeds 11, 13, 12),
# the shipped ensemble's copy calibrated with it, judged with each evidence; docs/default-model.md.
CLASSIC := build/classic-firing
CLASSIC_SETS = $(subst varied,classic,$(subst $(MODEL_BUILD),$(CLASSIC),$(1)))
classic-firing: $(EVERYTHING)
	test -d $(MODEL_BUILD)/model || $(MAKE) --no-print-directory default-model
	rm -rf $(CLASSIC) && mkdir -p $(CLASSIC)/model
	$(foreach g,template biophysical,$(BIN)/raphe $(call CLASSIC_SETS,$(call TRAINS,$(g))) && \
		$(BIN)/raphe $(call CLASSIC_SETS,$(call CALIBRATION_CELLS,$(g))) && \
		$(BIN)/raphe $(call CLASSIC_SETS,$(call TEST_CELLS,$(g))) &&) true
	cp classifier/default/raphe-default-dynamic.tflite classifier/default/raphe-default-dynamic.json $(CLASSIC)/model/
	$(BIN)/raphe firing-model $(CLASSIC)/firing-train-template $(CLASSIC)/firing-train-biophysical \
		--out $(CLASSIC)/model/classic-firing.json --seed 1
	$(BIN)/raphe calibrate $(CLASSIC)/model $(CLASSIC)/calibration-template $(CLASSIC)/calibration-biophysical \
		--firing $(CLASSIC)/model/classic-firing.json
	$(BIN)/raphe matrix --model classic=$(CLASSIC)/model/raphe-default-dynamic.tflite \
		--data template=$(CLASSIC)/test-template --data biophysical=$(CLASSIC)/test-biophysical \
		--evidence waveform firing both --out-dir $(CLASSIC)/matrix

# The comparison of model families (about 11 minutes after default-model, whose test cells it reads:
# 400 cells of template and biophysical with varied firing, 10 repeated cell-level splits).
compare-families: $(EVERYTHING)
	test -d $(MODEL_BUILD)/test-biophysical || $(MAKE) --no-print-directory default-model
	$(BIN)/raphe compare $(MODEL_BUILD)/test-template $(MODEL_BUILD)/test-biophysical --out-dir build/compare
	cp build/compare/report.md classifier/default/compare.md
	cp build/compare/confusion-firing.png build/compare/confusion-waveform.png classifier/default/

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .benchmarks .hypothesis
