# The two commands of the quick start: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# checkov pins boto3/botocore far behind ours, so it lives in an environment of its own.
TOOLS  := .venv-tools

.PHONY: setup tools containers browser demo test lint unit integration bench clean

setup: $(STAMP)

# Reinstall when the project's dependencies change.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

tools: $(TOOLS)/.installed

$(TOOLS)/.installed: Makefile
	@test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS)/bin/python -m pip install --quiet 'checkov==3.3.30'
	@touch $@

# podman for the container backends and their tests: installed with apt when missing,
# configured where this machine needs it (docs/containers.md). MLCICD_SKIP_CONTAINERS=1 skips.
containers:
	@bash scripts/containers.sh

# Debian's chromium and chromium-driver for the dashboard's browser test: installed with apt
# where this machine can (root), else that test skips. MLCICD_SKIP_BROWSER=1 skips.
browser:
	@bash scripts/browser.sh

demo: setup
	@bash scripts/demo.sh

lint: setup
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint tools containers browser
	$(BIN)/pytest -n auto --dist loadgroup

unit: setup
	$(BIN)/pytest -m "not integration"

integration: setup tools containers browser
	$(BIN)/pytest -n auto --dist loadgroup -m integration

bench: setup
	$(BIN)/python bench/pipeline.py

clean:
	-$(BIN)/mlcicd -C .demo/iris endpoints delete iris-classifier-endpoint 2>/dev/null
	rm -rf .demo
