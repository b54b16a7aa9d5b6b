# Entry points for a fresh machine (Python 3.11, no GPU). Every target builds the
# virtual environment .venv first when it is missing or older than its pins.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
ENV_STAMP := $(VENV)/.installed
DATA_BIN := data-bin/ding.en-de
DING := /usr/share/trans/de-en
DEMO_MINUTES ?= 15
BENCH_MINUTES ?= 30
BENCH_OTHER_MINUTES ?= 10
BENCH_DIFFUSEQ_STEPS ?= 50
CURVE_MINUTES ?= 30
CURVE_INTERVAL ?= 5
WARM_START_MINUTES ?= 5
PYTEST_ARGS ?=

.PHONY: setup data demo test bench curves throughput results clean-venv

setup: $(ENV_STAMP)

# The stamp is rebuilt when the pins or setup.py change, or when .venv's python
# no longer runs (a venv copied from another machine, a removed interpreter).
$(ENV_STAMP): constraints.txt setup.py $(if $(shell $(PY) -c '' 2>/dev/null && echo ok),,FORCE)
	@$(PY) -c '' 2>/dev/null || { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(PIP) install -q -c constraints.txt torch
	$(PIP) install -q -c constraints.txt -e '.[test,bench]'
	$(PIP) install -q -c constraints.txt --no-build-isolation --no-deps fairseq-fixed
	$(PY) -c 'import fairseq, fairseq_plugins, diffuser_mt; print("environment ready: fairseq", fairseq.__version__)'
	@touch $@

FORCE:

# Debian's Ding dictionary (trans-de-en), the source of the default corpus.
$(DING):
	$(PY) data_scripts/prepare_ding.py --install-only

data: $(ENV_STAMP) $(DATA_BIN)/manifest.json

$(DATA_BIN)/manifest.json: | $(ENV_STAMP)
	$(PY) data_scripts/prepare_ding.py --dest-dir $(DATA_BIN)

# AR transformer and DiffusER, DEMO_MINUTES of training each; then AR alone vs DiffusER vs
# DiffusER + AR bootstrap, and the edit traces of three test sentences (terminal + HTML); then whether
# DiffusER refines (step sweep, AR bootstrap with paired bootstrap, single-word errors restored; ~5 minutes).
demo: data
	$(PY) data_scripts/ar_bootstrap.py --data $(DATA_BIN) --minutes $(DEMO_MINUTES) \
		--traces 3 --html checkpoints/demo/trace.html
	$(PY) benchmarks/refinement.py --path checkpoints/diffuser/checkpoint_best.pt \
		--ar-hypotheses checkpoints/ar_baseline/generate-test.txt --name demo --out-dir checkpoints/demo

# learning curves of the AR transformer, LevT and DiffusER up to BENCH_MINUTES, and of DiffusER warm-started from
# the AR's checkpoint at WARM_START_MINUTES (a kept checkpoint's time; 0: not); all five systems side by side:
# those three from their curves' last checkpoints, DiffuSeq and D3PM trained BENCH_OTHER_MINUTES (their decoders
# are 10-100x slower; DiffuSeq decodes BENCH_DIFFUSEQ_STEPS DDIM steps); then the refinement check of the warm-started
# DiffusER (step sweep, AR bootstrap, post-editing, refill). About 2.7 hours on 2 cores; finished trainings and curve
# decodes are reused on a re-run.
bench: data
	$(PY) benchmarks/learning_curves.py --data $(DATA_BIN) --minutes $(BENCH_MINUTES) --interval $(CURVE_INTERVAL) \
		--warm-start-minutes $(WARM_START_MINUTES)
	$(PY) benchmarks/compare_systems.py --data $(DATA_BIN) --minutes $(BENCH_OTHER_MINUTES) \
		--diffuseq-steps $(BENCH_DIFFUSEQ_STEPS) --from-curves checkpoints/curves --curve-minutes $(BENCH_MINUTES)
	$(PY) benchmarks/refinement.py --path checkpoints/curves/diffuser_warm/checkpoint_$(BENCH_MINUTES)min.pt \
		--ar-hypotheses checkpoints/bench/transformer/generate-test.transformer-beam-5.txt --name bench \
		--out-dir benchmarks/results/refinement
	$(PY) benchmarks/readme_results.py

# valid BLEU of the AR transformer, the Levenshtein Transformer, DiffusER and the warm-started DiffusER every
# CURVE_INTERVAL minutes of training, up to CURVE_MINUTES each; kept checkpoints and decodes are reused on a re-run.
curves: data
	$(PY) benchmarks/learning_curves.py --data $(DATA_BIN) --minutes $(CURVE_MINUTES) --interval $(CURVE_INTERVAL) \
		--warm-start-minutes $(WARM_START_MINUTES)
	$(PY) benchmarks/readme_results.py

# training tokens/s and peak memory of every system and of DiffusER's layouts, 40 updates each (~15 minutes)
throughput: data
	$(PY) benchmarks/train_throughput.py --data $(DATA_BIN)

# the README's results block, from the results files in benchmarks/results/
results: $(ENV_STAMP)
	$(PY) benchmarks/readme_results.py

# ruff (pyproject.toml's [tool.ruff]) first, then the whole test suite: one pytest-xdist worker per core, each
# test file on one worker (its module fixtures are built once; the session fixtures once per worker).
test: $(ENV_STAMP) $(DING)
	$(PY) -m ruff check .
	$(PY) -m pytest tests -n auto --dist loadfile --durations=20 $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
