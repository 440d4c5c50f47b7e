# One task runner: the README and CI call these targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
BENCH_STAMP := $(VENV)/.bench-stamp

.PHONY: demo check lint typecheck test browser schemas bench bench-quick chaos clean

# The virtualenv is rebuilt whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	@echo "Creating the virtualenv in $(VENV) and installing the project (first run only)..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## demo: run the order-details demo (starts and stops its own Kafka broker)
demo: $(STAMP)
	$(BIN)/orchestrator demo

## check: lint, types and the whole test suite (the tests start one Kafka broker)
check: lint typecheck test

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) browser
	$(BIN)/pytest

## browser: Debian's chromium for the timeline page's browser test (apt-get, once)
CHROMIUM := /usr/bin/chromium
browser:
	@if [ -x $(CHROMIUM) ]; then \
		echo "chromium: $(CHROMIUM) is installed"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		echo "chromium: installing Debian's chromium package with apt-get (for the timeline page's browser test)"; \
		(apt-get update -qq && apt-get install -y -qq chromium) || echo "chromium: apt-get failed; the browser test will be skipped"; \
	elif command -v apt-get >/dev/null && sudo -n true 2>/dev/null; then \
		echo "chromium: installing Debian's chromium package with sudo apt-get (for the timeline page's browser test)"; \
		(sudo apt-get update -qq && sudo apt-get install -y -qq chromium) || echo "chromium: apt-get failed; the browser test will be skipped"; \
	else \
		echo "chromium: $(CHROMIUM) is missing and cannot be installed here (needs apt-get and root or sudo); the browser test will be skipped"; \
	fi

## schemas: re-export contracts/schemas/*.json after changing a contract
schemas: $(STAMP)
	$(BIN)/python -m contracts.export

# The benchmark's own packages (the peers' SDKs, uvloop, matplotlib, profilers).
$(BENCH_STAMP): $(STAMP)
	@echo "Installing the benchmark's packages (first run only)..."
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	@touch $(BENCH_STAMP)

## bench: the side-by-side benchmark: the floor, this orchestrator, Restate, Temporal
## (starts its own broker, installs and builds the peers; under 30 minutes;
## options: make bench BENCH_ARGS="--systems orchestrator,restate --repeats 1")
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

## bench-quick: the short run (under 3 minutes; peers only if already installed)
bench-quick: $(BENCH_STAMP)
	$(BIN)/python -m bench --quick $(BENCH_ARGS)

## chaos: the chaos suite: kills, rebalances, a broker restart, duplicates; then the oracle
## (starts its own broker; options: make chaos CHAOS_ARGS="--requests 1000 --seed 7")
chaos: $(STAMP)
	$(BIN)/python -m bench.chaos $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
