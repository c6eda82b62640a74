# Two commands for a newcomer: `make demo` and `make test`. Both create .venv on first use.
# For developers, `make check`: the fast lane (lint, types, the tests that need no server
# process, browser or long run), under two minutes.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install check test lint typecheck unit browser demo bench clean

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

# Deselects by the markers of pyproject.toml: slow, integration (servers of its own), browser.
check: lint typecheck
	$(BIN)/python -m pytest -q -m "not slow and not integration and not browser"

demo: install
	$(BIN)/provisioner demo

bench: install
	$(BIN)/python benchmarks/eventlog.py

clean:
	rm -rf $(VENV) .provisioner .pytest_cache .mypy_cache .ruff_cache
