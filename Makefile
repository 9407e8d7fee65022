# The README's first two commands: `make run` and `make test`. Only python3 (3.11+) and make needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: install run migrate test lint typecheck layers pytest bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/smsgw migrate
	$(BIN)/smsgw serve --host $(HOST) --port $(PORT)

migrate: $(STAMP)
	$(BIN)/smsgw migrate

lint: $(STAMP)
	$(BIN)/ruff check src tests examples benchmarks noxfile.py

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck layers pytest

# Performance on this machine against MariaDB and RabbitMQ (see benchmarks/run.py).
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .import_linter_cache
