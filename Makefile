# One command runs the pipeline, one runs the tests; each sets up its own virtual environment first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# GPU machines: `make run TORCH_INDEX=<a PyTorch wheel index for your CUDA>` installs that torch build first.
TORCH_INDEX ?=

.PHONY: run test test-fast lint docs bench ui clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "latent needs Python >= 3.11: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	@if [ -n "$(TORCH_INDEX)" ]; then $(BIN)/python -m pip install --quiet "torch>=2.4,<2.14" --index-url "$(TORCH_INDEX)"; fi
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/latent run $(ARGS)

# The suite in TEST_WORKERS processes (pytest-xdist), each taking whole files, so a module's fixtures run once.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(ARGS)

# The unit tier: only the files that hold unit tests are collected, so the heavy imports of the others are skipped.
UNIT_FILES = $(shell grep -l 'pytest.mark.unit' tests/test_*.py)
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m unit $(UNIT_FILES) $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict

bench: $(STAMP)
	$(BIN)/python benchmarks/pipeline.py $(ARGS)

ui: $(STAMP)
	$(BIN)/latent ui $(ARGS)

clean:
	rm -rf $(VENV) workspace .pytest_cache site
