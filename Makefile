# The README's first two commands: `make run` and `make test`. Only python3 (3.11+) and make needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: install peers run migrate test lint typecheck layers pytest test-unit test-contract test-integration fuzz bench chaos clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

# The reference SMSC of the SMPP tests (tests/peers/smsc: node-smpp, pinned by its
# package-lock.json). Installed again only when its lock changes, so an installed copy
# works offline. Without Node.js it is left out with a word: its tests then skip, or
# fail where SMSGW_REQUIRE_SERVICES=1 (CI), as with MariaDB and RabbitMQ.
SMSC_PEER  := tests/peers/smsc
SMSC_STAMP := $(SMSC_PEER)/node_modules/.installed-stamp

$(SMSC_STAMP): $(SMSC_PEER)/package.json $(SMSC_PEER)/package-lock.json
	@if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then \
		echo "npm ci --prefix $(SMSC_PEER)"; \
		npm ci --prefix $(SMSC_PEER) --no-audit --no-fund --loglevel=error && touch $@; \
	else \
		echo "node/npm not found: the SMPP reference SMSC ($(SMSC_PEER)) is not installed;" \
		     "its tests skip (and fail with SMSGW_REQUIRE_SERVICES=1)"; \
	fi

peers: $(SMSC_STAMP)

install: $(STAMP) peers

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

pytest: $(STAMP) peers
	$(BIN)/pytest

test: lint typecheck layers pytest

# One layer of the test pyramid each; `make test` above still runs them all.
test-unit: $(STAMP)
	$(BIN)/pytest tests/unit tests/tooling

test-contract: $(STAMP)
	$(BIN)/pytest tests/contract

test-integration: $(STAMP) peers
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
	rm -rf $(SMSC_PEER)/node_modules
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .import_linter_cache .schemathesis
