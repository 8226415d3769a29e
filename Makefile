# Tipwise: `make up` serves the app, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APP_STAMP := $(VENV)/.app-installed
DEV_STAMP := $(VENV)/.dev-installed
export TIPWISE_HOST ?= 127.0.0.1
export TIPWISE_PORT ?= 8000
# Debian's chromium drives the browser tests; Playwright never downloads its own.
export TIPWISE_CHROMIUM ?= /usr/bin/chromium

# buf (lint and breaking-change checks of the event schemas) comes from npm, pinned, into .tools/.
BUF_VERSION := 1.75.0
TOOLS := .tools
BUF := $(TOOLS)/node_modules/.bin/buf
BUF_STAMP := $(TOOLS)/.buf-$(BUF_VERSION)
# The last released event schema: `buf breaking` compares the .proto files against it.
RELEASED_SCHEMA := proto/released/tipwise-events-v1.binpb

.PHONY: help up serve migrate test lint typecheck imports pytest openapi lock system-deps bench clean \
	tools proto proto-check proto-release

help:
	@echo "make up       set up and serve Tipwise on http://$(TIPWISE_HOST):$(TIPWISE_PORT)"
	@echo "make test     set up and run every check (ruff, mypy, import-linter, buf, pytest incl. OpenAPI drift)"
	@echo "make openapi  regenerate openapi.json after changing the HTTP API"
	@echo "make proto    regenerate the Python code of the event schemas in proto/"
	@echo "make proto-check   buf lint + buf breaking against the last released schema"
	@echo "make proto-release cut a release: the current schema becomes the baseline of buf breaking"
	@echo "make bench    run every benchmark (minutes; writes var/bench-*.json and docs/img/*.png)"
	@echo "make lock     re-resolve the pinned dependency locks"

$(VENV)/bin/python:
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Tipwise needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --upgrade pip

$(APP_STAMP): $(VENV)/bin/python requirements/app.lock pyproject.toml
	$(BIN)/pip install -qq --require-hashes -r requirements/app.lock
	$(BIN)/pip install -qq --no-deps -e .
	@touch $@

$(DEV_STAMP): $(APP_STAMP) requirements/dev.lock
	$(BIN)/pip install -qq --require-hashes -r requirements/dev.lock
	@touch $@

up: $(APP_STAMP)
	$(BIN)/tipwise up

serve: $(APP_STAMP)
	$(BIN)/tipwise serve

migrate: $(APP_STAMP)
	$(BIN)/tipwise migrate

system-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

imports: $(DEV_STAMP)
	$(BIN)/lint-imports

pytest: $(DEV_STAMP) $(BUF_STAMP) system-deps
	$(BIN)/pytest

test: lint typecheck imports proto-check pytest

$(BUF_STAMP):
	@command -v npm >/dev/null 2>&1 || { \
	  echo "installing Debian's npm, which installs buf"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq npm >/dev/null; }
	npm install --silent --no-audit --no-fund --no-save --prefix $(TOOLS) @bufbuild/buf@$(BUF_VERSION)
	$(BUF) --version
	@touch $@

tools: $(BUF_STAMP)

proto: $(DEV_STAMP)
	$(BIN)/python scripts/protogen.py src

proto-check: $(BUF_STAMP)
	$(BUF) lint
	$(BUF) breaking --against $(RELEASED_SCHEMA)

proto-release: proto-check
	$(BUF) build --exclude-source-info -o $(RELEASED_SCHEMA)
	@echo "wrote $(RELEASED_SCHEMA): commit it with the schema change"

bench: $(DEV_STAMP)
	@command -v wrk >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/tipwise bench learn --json var/bench-learn.json --plot docs/img/bench-learn.png
	$(BIN)/tipwise bench decide --json var/bench-decide.json
	$(BIN)/tipwise bench http --json var/bench-http.json

openapi: $(APP_STAMP)
	$(BIN)/tipwise openapi --output openapi.json

lock: $(VENV)/bin/python
	$(BIN)/pip install -qq uv
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --generate-hashes -q -o requirements/app.lock
	$(BIN)/uv pip compile pyproject.toml --extra mlflow --python-version 3.11 --generate-hashes -q -o requirements/mlflow.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra bench --extra mlflow --python-version 3.11 --generate-hashes -q -o requirements/dev.lock

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
