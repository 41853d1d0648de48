# Two commands after cloning: `make demo` (the main job) and `make test` (the whole suite).
# Both create the virtual environment at .venv/ first; only Python 3.10+ is needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

FASHION_MNIST := /usr/share/datasets/fashion-mnist
OPENVINO_MODULES := test_family.py test_bench.py test_openvino.py

.PHONY: demo test data browser format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Fashion-MNIST from Debian's package where apt is available (else: mobilenet train --download).
data:
	@if [ ! -d $(FASHION_MNIST) ] && command -v apt-get >/dev/null; then \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null || echo "could not install dataset-fashion-mnist"; \
	fi

# Headless Chromium and its driver for the web page's browser test (skipped where absent).
browser:
	@if ! command -v chromedriver >/dev/null && command -v apt-get >/dev/null; then \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq >/dev/null 2>&1; \
		$$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null || echo "could not install chromium"; \
	fi

demo: $(STAMP) data
	$(BIN)/mobilenet demo

test: $(STAMP) data browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	@# Test modules are shared between worker processes (one per core, at most 4), a module to a worker.
	@# The modules that run OpenVINO in-process each run in a process of their own: its thread pool
	@# does not survive a later fork (DataLoader workers) in the same process.
	@status=0; $(BIN)/pytest -n auto --maxprocesses 4 --dist loadfile $(addprefix --ignore=tests/,$(OPENVINO_MODULES)) || status=1; \
	for module in $(OPENVINO_MODULES); do $(BIN)/pytest tests/$$module || status=1; done; exit $$status

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
