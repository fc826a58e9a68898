#!/usr/bin/env bash
# `make test-latest`: the test suite in a throwaway environment (build/latest) holding the newest
# releases the pyproject.toml ranges allow, instead of the lock. It finds an upstream regression
# on purpose, before `make lock` takes it in, and never gates main (CI runs `make test`).
#
# Prints each package whose newest release differs from the lock, runs the suite (the image tests
# aside, tests/upstream included), then names each failure and each known upstream regression
# (requirements/upstream-regressions.txt) whose release is now the newest.
# Exit 0: no test failed; 1: some failed (the report says which, and which are known).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3.11}"
LATEST="$ROOT/build/latest"

rm -rf "$LATEST"
"$PYTHON" -m venv "$LATEST/venv"
PIP=("$LATEST/venv/bin/pip" install -q --disable-pip-version-check)
# torch exactly, its CPU build first (a looser range takes a CUDA build of several GB): from
# PyTorch's CPU index, or a folder of pip's find-links that holds the wheel.
"${PIP[@]}" --retries 1 --extra-index-url "${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}" \
    "torch==2.13.0+cpu"
"${PIP[@]}" --upgrade --upgrade-strategy eager \
    -e ".[deploy,dev]" -e "services/ingestion[test]" -e "services/inference[test]" -e loopback
"$LATEST/venv/bin/pip" freeze --exclude-editable >"$LATEST/freeze.txt"

status=0
# As in CI: a missing peer fails instead of skipping, so a regression's test cannot hide.
FEDEPLOY_REQUIRE_INTEGRATION=1 "$LATEST/venv/bin/python" -m pytest --ignore=tests/images -p no:cacheprovider \
    --junitxml="$LATEST/junit.xml" -q "$@" || status=$?
"$LATEST/venv/bin/python" scripts/latest_report.py \
    --lock requirements/dev.txt --freeze "$LATEST/freeze.txt" \
    --regressions requirements/upstream-regressions.txt --junit "$LATEST/junit.xml"
exit $(( status == 0 ? 0 : 1 ))
