"""The stack file schema editors use: published, current, ECMA-262, and agreeing with fedeploy.

The corpus (tests/stack_files/) holds valid files and invalid ones, each invalid file naming the
key path fedeploy reports in an `# expect:` line. Three judges must agree on every file:
fedeploy's own model, check-jsonschema (PyPI) and ajv in strict mode (npm), the engine of
yaml-language-server. What a schema cannot say (host bits in a CIDR, rules across fields or
across stack files) is fedeploy's alone and stays out of this corpus; tests/unit/
test_invalid_configs.py covers it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import regress
import yaml

from fedeploy.config.loader import check_stack_file
from fedeploy.errors import StackConfigError
from fedeploy.validate.schema import stack_file_schema
from tests.conftest import ROOT, STACKS

PUBLISHED = ROOT / "schemas" / "stack-file.schema.json"
LINT = ROOT / "schemas" / ".lint"
CORPUS = ROOT / "tests" / "stack_files"
VALID = sorted([*STACKS.glob("Pulumi.*.yaml"), *(CORPUS / "valid").glob("Pulumi.*.yaml")])
INVALID = sorted((CORPUS / "invalid").glob("Pulumi.*.yaml"))
REQUIRE = os.environ.get("FEDEPLOY_REQUIRE_INTEGRATION") == "1"
SCHEMA_LINE = re.compile(r"^# yaml-language-server: \$schema=(?P<path>\S+)$", re.M)


def _patterns(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
        return found + [p for k, v in node.items() if k != "pattern" for p in _patterns(v)]
    if isinstance(node, list):
        return [p for item in node for p in _patterns(item)]
    return []


def test_the_published_schema_is_current():
    assert json.loads(PUBLISHED.read_text()) == stack_file_schema(), "run: make schema"


def test_every_pattern_is_valid_ecma262_with_the_u_flag():
    patterns = sorted(set(_patterns(stack_file_schema())))
    assert len(patterns) > 20
    invalid = []
    for pattern in patterns:
        try:
            regress.Regex(pattern, "u")
        except Exception as err:  # regress raises its own error type for a bad pattern
            invalid.append(f"{pattern}: {err}")
    assert not invalid, invalid


def test_kinds_are_told_apart_by_if_then_on_kind():
    site = stack_file_schema()["properties"]["config"]["properties"]["fedeploy:site"]
    assert "oneOf" not in site and "discriminator" not in site
    kinds = [rule["if"]["properties"]["kind"]["const"] for rule in site["allOf"]]
    assert kinds == site["properties"]["kind"]["enum"]


@pytest.mark.parametrize(
    "path",
    [*STACKS.glob("Pulumi.*.yaml"), *CORPUS.glob("*/Pulumi.*.yaml")],
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_every_stack_file_names_the_schema_for_its_editor(path):
    match = SCHEMA_LINE.search(path.read_text())
    assert match, f"{path.name}: no `# yaml-language-server: $schema=` line"
    assert (path.parent / match["path"]).resolve() == PUBLISHED


def test_the_docs_show_the_schema_line():
    docs = (ROOT / "docs" / "configuration.md").read_text()
    assert "# yaml-language-server: $schema=" in docs


def _expected_path(path: Path) -> str:
    match = re.search(r"^# expect: (\S+)$", path.read_text(), re.M)
    assert match, f"{path.name}: no `# expect: <key path>` line"
    return match[1]


def _fedeploy_paths(path: Path) -> list[str]:
    try:
        check_stack_file(path, check_federation=False)
    except StackConfigError as err:
        return [issue.path for issue in err.issues]
    return []


def test_fedeploy_judges_the_corpus_as_labelled():
    assert len(INVALID) >= 12
    for path in VALID:
        assert _fedeploy_paths(path) == [], path.name
    for path in INVALID:
        assert _expected_path(path) in _fedeploy_paths(path), path.name


def _check_jsonschema(files: list[Path]) -> dict[str, Any]:
    tool = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    if tool is None:
        pytest.fail("check-jsonschema is not installed (it is a dev dependency)")
    done = subprocess.run(
        [tool, "--schemafile", str(PUBLISHED), "-o", "json", *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    return json.loads(done.stdout)


def test_check_jsonschema_agrees_with_fedeploy():
    valid = _check_jsonschema(VALID)
    assert valid["status"] == "ok", valid["errors"]
    invalid = _check_jsonschema(INVALID)
    refused = {Path(e["filename"]).name for e in invalid["errors"]}
    assert refused == {p.name for p in INVALID}


def _ajv(files: list[Path]) -> dict[str, list[str]]:
    node = shutil.which("node")
    if node is None or not (LINT / "node_modules" / "ajv").exists():
        why = "node is not installed" if node is None else "run `npm ci --prefix schemas/.lint`"
        if REQUIRE:
            pytest.fail(f"ajv cannot run: {why}")
        pytest.skip(f"ajv cannot run: {why}")
    documents = {p.name: yaml.safe_load(p.read_text()) for p in files}
    done = subprocess.run(
        [node, str(LINT / "validate.cjs"), str(PUBLISHED), "/dev/stdin"],
        input=json.dumps(documents),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr  # strict mode refuses a schema it cannot judge
    return json.loads(done.stdout)


def test_ajv_in_strict_mode_agrees_with_fedeploy():
    results = _ajv([*VALID, *INVALID])
    for path in VALID:
        assert results[path.name] == [], (path.name, results[path.name])
    for path in INVALID:
        assert results[path.name], f"{path.name}: ajv accepts what fedeploy refuses"


def test_ajv_reports_the_branch_of_the_kind_the_file_names():
    """A kubernetes site without its cluster: the complaint is about `cluster`, not about
    `network` (an aws key), as a `oneOf` over every kind made validators say."""
    (result,) = _ajv([CORPUS / "invalid" / "Pulumi.k8s-without-cluster.yaml"]).values()
    text = " ".join(result)
    assert "cluster" in text and "network" not in text
