# Set-up and everyday targets. Every target uses the project's own virtualenv (.venv).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
export HF_HUB_OFFLINE ?= 1
export MLFLOW_DISABLE_TELEMETRY ?= true
export DO_NOT_TRACK ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: quickstart test test-slow bench install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first: the pinned CPU wheel (a CUDA build on GPU machines), then everything else pinned.
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[qlora]'
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -e '.[dev]'
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

quickstart: install
	$(BIN)/llmops quickstart $(ARGS)

test: install-dev
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test-slow: install-dev
	$(BIN)/python -m pytest -q -p no:cacheprovider -m slow $(PYTEST_ARGS)

bench: install-dev
	$(BIN)/python bench/sft_throughput.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info
