# landexplorer: the same commands locally and in CI.
#   make demo   - install everything into .venv, load the Trafford demo data, serve the map
#   make test   - install what the tests need (Python, npm, Debian packages) and run them
#   make lint   - ruff, ruff format --check, mypy on the package
#   make bench  - benchmarks against the peers of ../shared/bench (figures in docs/benchmarks.md)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml landexplorer/web/package-lock.json | sha1sum | cut -c1-12)

.PHONY: install system-deps demo test lint format bench clean

install: $(STAMP)

$(STAMP): pyproject.toml landexplorer/web/package-lock.json
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	cd landexplorer/web && npm ci --no-audit --no-fund --silent
	@rm -f $(VENV)/.installed-* && touch $@

system-deps:
	@bash scripts/system-deps.sh

demo: install
	$(VENV)/bin/landexplorer demo
	@echo "The demo catalogue is served at http://127.0.0.1:8000/ (OGC API - Features at /collections; Ctrl-C stops)"
	@echo "To upload from the browser, open the one-time sign-in link printed next (it signs in the demo group's steward):"
	$(VENV)/bin/landexplorer serve --sign-in-link demo-steward

test: install system-deps
	$(PY) -m pytest -ra $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check landexplorer tests
	$(VENV)/bin/ruff format --check landexplorer tests
	$(VENV)/bin/mypy landexplorer

format: install
	$(VENV)/bin/ruff check --fix landexplorer tests
	$(VENV)/bin/ruff format landexplorer tests

bench: install system-deps
	bash bench/run.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
