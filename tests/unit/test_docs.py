"""docs/configuration.md stays true: its key reference and examples are the current ones."""

from __future__ import annotations

from fedeploy.config.reference import splice
from tests.conftest import ROOT, STACKS


def test_configuration_reference_and_examples_are_current():
    path = ROOT / "docs" / "configuration.md"
    document = path.read_text()
    assert splice(document, STACKS) == document, (
        "run: fedeploy config-reference --write docs/configuration.md"
    )


def test_every_model_key_is_documented():
    from fedeploy.config.reference import reference

    for line in reference().splitlines():
        if line.startswith("| `"):
            assert not line.rstrip().endswith("|  |"), f"undocumented key: {line}"
