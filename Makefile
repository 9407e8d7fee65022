# The README's first two commands: `make run` and `make test`. Only python3 (3.11+) and make needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: install run migrate test lint typecheck layers pytest test-unit test-contract test-integration fuzz bench chaos clean

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
	$(BIN)/ruff check src tests examples benchmarks tools noxfile.py

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck layers pytest

# One layer of the test pyramid each; `make test` above still runs them all.
test-unit: $(STAMP)
	$(BIN)/pytest tests/unit tests/tooling

test-contract: $(STAMP)
	$(BIN)/pytest tests/contract

test-integration: $(STAMP)
	$(BIN)/pytest tests/integration

# The schema-driven fuzzer against a running gateway (`make run` in another shell),
# every check on; schemathesis.toml adds the hook that tops up each valid send's
# customer. FUZZ_ARGS e.g. "--max-examples 500 --seed 1".
FUZZ_URL  ?= http://$(HOST):$(PORT)
FUZZ_ARGS ?=
fuzz: $(STAMP)
	$(BIN)/schemathesis run $(FUZZ_URL)/swagger/openapi.json --checks all --generation-database none $(FUZZ_ARGS)

# Performance on this machine against MariaDB and RabbitMQ (see benchmarks/run.py).
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

# The chaos test against MariaDB and RabbitMQ (see benchmarks/chaos.py and
# docs/testing.md): 5 minutes of load with 100 kill -9 and cuts of the gateway's connections, then
# a drain and the money and state checks; at most 10 minutes in all. Exit 1 on a violation.
CHAOS_ARGS ?= --duration 300 --kills 100 --cuts 3
chaos: $(STAMP)
	timeout 600 $(BIN)/python benchmarks/chaos.py $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .import_linter_cache .schemathesis
