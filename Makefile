# Every target bootstraps .venv from the project's own files, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint format clean bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,keras]'
	touch $(STAMP)

BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

run: $(STAMP)  ## compare losses on the bundled demos (outliers, imbalance, embeddings): losskit-report/
	$(BIN)/losskit compare --quick --out losskit-report

# The docstring examples run as their own pass over src/losskit (testpaths covers tests/ only);
# every extra is installed here, so every module imports. Keras's modules are collected with the
# JAX backend, the lighter one, which the first Keras pass uses too.
test: $(STAMP)  ## lint, then the whole suite (the docstring examples, the compile group and the Keras tests, once per backend, run as their own passes)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/python -m pytest -n 2 -m "not compile and not keras" -q
	KERAS_BACKEND=jax $(BIN)/python -m pytest -q --doctest-modules src/losskit
	$(BIN)/python -m pytest -m compile -q
	KERAS_BACKEND=jax $(BIN)/python -m pytest -m keras -q tests/keras
	KERAS_BACKEND=tensorflow $(BIN)/python -m pytest -m keras -q tests/keras

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

bench: $(BENCH_STAMP)  ## speed and memory vs the references: benchmarks/RESULTS.md (+ JSON in benchmarks/results/)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
