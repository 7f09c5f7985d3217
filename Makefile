# tailgraph: the two commands of the README, plus helpers.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.tailgraph-installed
DEMO_OUT ?= demo_out
# the suite runs in this many pytest processes, one test file per process at a time
TEST_WORKERS ?= 2

.PHONY: demo test install bench clean browser

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch/torchvision are pinned to the pair that installs from this machine's local wheel cache;
# pyproject.toml declares the supported range.
$(STAMP): $(PY) pyproject.toml
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tailgraph demo --out $(DEMO_OUT) --overwrite

# the report's page test opens it in headless Chromium (Debian's package), installed where missing
browser:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  { [ "$$(id -u)" = 0 ] && SUDO= || SUDO=sudo; \
	    $$SUDO apt-get update -qq >/dev/null && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; } \
	  || echo "chromium not installed: the report's browser test will be skipped (fails under CI=true)"; }

test: $(STAMP) browser
	$(VENV)/bin/ruff check tailgraph tests benchmarks
	$(VENV)/bin/ruff format --check tailgraph tests benchmarks
	$(VENV)/bin/mypy tailgraph
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile --durations=15 tests

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(DEMO_OUT) lightning_logs .pytest_cache
