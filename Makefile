# Each target installs what it needs into .venv at the repository root.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

BENCH_STAMP := $(VENV)/.bench-installed

.PHONY: install run test lint format protos buf-lint bench clean

$(STAMP): pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./clients/python -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## run: the identity server, the OIDC provider and the Auth0 stand-in, on loopback
run: $(STAMP)
	$(BIN)/python -m identity_service.devstack

## test: the whole suite (set TEST_DATABASE_URL to run it on PostgreSQL)
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## protos: regenerate clients/python/src/tecken_identity/_generated
protos: $(STAMP)
	$(BIN)/python scripts/generate_protos.py

buf-lint:
	npx --yes @bufbuild/buf@1.75.0 lint

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ./clients/python -e '.[dev,bench]'
	touch $(BENCH_STAMP)

## bench: ValidateToken against the control, on SQLite and PostgreSQL (about 6 minutes)
bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) var
