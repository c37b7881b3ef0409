# The two quickstart commands: `make up` and `make test`. Everything else is `invoke`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: up down test bench clean

$(BIN)/invoke: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

up: $(BIN)/invoke
	$(BIN)/invoke up

down: $(BIN)/invoke
	$(BIN)/invoke down

test: $(BIN)/invoke
	$(BIN)/pytest

bench: $(BIN)/invoke
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .shipshape
