"""YAML 1.1 numbers that other YAML readers read differently are refused, and "quote it" is
said only where quoting is the fix (a key that takes text), never on an out-of-range number."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedeploy.cli import app
from tests.conftest import STACKS

runner = CliRunner()


def _edited(tmp_path: Path, stack: str, original: str, edited: str) -> Path:
    stacks = tmp_path / "stacks"
    shutil.copytree(STACKS, stacks)
    path = stacks / f"Pulumi.{stack}.yaml"
    text = path.read_text()
    assert original in text
    path.write_text(text.replace(original, edited, 1))
    return path


def _line(output: str, key: str) -> str:
    return next(line for line in output.splitlines() if f"- {key}:" in line)


@pytest.mark.parametrize(
    ("written", "read"), [("010", "8"), ("0x10", "16"), ("1_0", "10"), ("0b100", "4")]
)
def test_a_number_yaml_readers_disagree_on_is_refused(tmp_path, written, read) -> None:
    """`max_size: 010` was planned as 8 (YAML 1.1's octal); YAML 1.2 readers say 10."""
    path = _edited(tmp_path, "aws-dublin", "max_size: 4", f"max_size: {written}")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    line = _line(result.output, "site.cluster.node_groups.system.max_size")
    assert f"the unquoted {written} is read as {read} by YAML 1.1" in line
    assert "write the plain decimal number you mean" in line


@pytest.mark.parametrize("plain", ["max_size: 4", "max_size: +4"])
def test_a_plain_decimal_passes(tmp_path, plain) -> None:
    path = _edited(tmp_path, "aws-dublin", "max_size: 4", plain)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("stack", "original", "edited", "key"),
    [
        ("aws-dublin", "max_size: 4", "max_size: 0", "site.cluster.node_groups.system.max_size"),
        ("cf-waw", "port: 8883", "port: 88830", "site.services.ingestion.stream.mqtt.port"),
    ],
)
def test_an_out_of_range_number_gets_no_quote_hint(tmp_path, stack, original, edited, key):
    path = _edited(tmp_path, stack, original, edited)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    line = _line(result.output, key)
    assert "quote" not in line and "YAML read" not in line


@pytest.mark.parametrize(
    ("stack", "original", "edited", "key", "words"),
    [
        (
            "aws-dublin",
            'version: "1.33"',
            'version: "1.24"',
            "site.cluster.version",
            "given '1.24'; allowed: Kubernetes minor version, 1.25 to 1.37",
        ),
        (
            "hpc-kajaani",
            'schedule: "45 */6 * * *"',
            'schedule: "45 */6 * *"',
            "site.services.ingestion.sentinel.schedule",
            "'45 */6 * *' is not a cron schedule: five fields",
        ),
    ],
)
def test_a_pattern_is_said_in_words(tmp_path, stack, original, edited, key, words) -> None:
    """The message printed the regular expression (^1\\.(2[5-9]|3[0-7])$)."""
    path = _edited(tmp_path, stack, original, edited)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    line = _line(result.output, key)
    assert words in line and "pattern" not in line and "^" not in line


def test_a_tab_is_named_as_a_tab(tmp_path) -> None:
    """ "found character that cannot start any token" said nothing of the tab."""
    path = _edited(
        tmp_path, "aws-dublin", "    environment: production", "\tenvironment: production"
    )
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert (
        "holds a tab; YAML indents with spaces only: replace the tab with spaces" in result.output
    )
