# Every target bootstraps .venv from the project's own files, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Two stamps: `make run` installs only what it runs (losskit and the cli extra: matplotlib,
# scikit-learn, optuna), so a first run does not wait for TensorFlow, JAX and the test tools;
# `make test` (and lint, format, bench) add the rest on top of it. --no-compile: pip would
# byte-compile every module of torch, scipy, sympy ... (about 20 s of CPU for the run
# install); Python compiles the few that are imported, once, when they are.
RUN_STAMP := $(VENV)/.installed-run
STAMP     := $(VENV)/.installed

.PHONY: run test lint format clean bench docs docs-serve

$(RUN_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-compile -e '.[cli]'
	touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP)
	$(BIN)/python -m pip install --quiet --no-compile -e '.[dev,keras,docs]'
	touch $(STAMP)

BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

# --force: a second `make run` replaces the report of the first (never a directory the user
# filled: only files named like the report's, and those the earlier report listed)
run: $(RUN_STAMP)  ## compare losses on the bundled demos (outliers, imbalance, metric learning, segmentation): losskit-report/
	$(BIN)/losskit compare --quick --out losskit-report --force

# The docstring examples run as their own pass over src/losskit (testpaths covers tests/ only);
# every extra is installed here, so every module imports. Keras's modules are collected with the
# JAX backend, the lighter one, which the first Keras pass uses too. The compile group runs on two
# workers as well: most of its time is Inductor's C++ builds, one process each (cold cache, 2 cores,
# 2026-12-04: 4 min 25 s on one, 3 min 25 s on two; the Keras passes gain nothing from it).
test: $(STAMP)  ## lint, then the whole suite (the docstring examples, the compile group and the Keras tests, once per backend, run as their own passes)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet
	$(BIN)/python -m pytest -n 2 -m "not compile and not keras" -q
	KERAS_BACKEND=jax $(BIN)/python -m pytest -q --doctest-modules src/losskit
	$(BIN)/python -m pytest -n 2 -m compile -q
	KERAS_BACKEND=jax $(BIN)/python -m pytest -m keras -q tests/keras
	KERAS_BACKEND=tensorflow $(BIN)/python -m pytest -m keras -q tests/keras

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

bench: $(BENCH_STAMP)  ## speed and memory vs the references at 1 and default threads, idle and under load: benchmarks/RESULTS.md, benchmarks/*.png (+ JSON in benchmarks/results/)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

gpu-check: $(BENCH_STAMP)  ## on a CUDA machine: the catalog matrix on the device, focal/triplet/linear-CE benchmarks, host-sync check (CI: GPU_CHECK_ARGS="--device cpu --quick")
	$(BIN)/python benchmarks/gpu_check.py $(GPU_CHECK_ARGS)

# The site: guides in docs/, the catalog, CLI and API pages and the plots generated on every build
# (docs/_build/hooks.py, mkdocstrings). --strict: a broken link or reference is an error.
docs: $(STAMP)  ## the documentation site (mkdocs, strict): build/site/
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: $(STAMP)  ## serve the documentation at http://127.0.0.1:8000, rebuilt on change
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
