# Two commands for a newcomer: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install test lint typecheck unit browser demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

browser:
	@sh scripts/ensure-chromium.sh

unit: install browser
	$(BIN)/python -m pytest

test: lint typecheck unit

demo: install
	$(BIN)/provisioner demo

bench: install
	$(BIN)/python benchmarks/eventlog.py

clean:
	rm -rf $(VENV) .provisioner .pytest_cache .mypy_cache .ruff_cache
