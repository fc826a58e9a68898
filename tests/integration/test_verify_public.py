"""`fedeploy verify` of a catalog published as the chart publishes it: TLS nginx, the chart's
auth proxy and a real OIDC issuer on loopback (the peers of test_public_catalogs.py, started
here for this module). The anonymous-write check must pass against the real proxy, over TLS
verified with the test CA given by --ca-bundle."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedeploy import cli
from tests.builders import edit_site, example_stacks
from tests.integration.test_public_catalogs import COLLECTION, federation  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _stacks(tmp_path: Path) -> Path:
    """Frankfurt's stack file (exposure set), its ingestion writing the loopback collection."""
    stacks = example_stacks(tmp_path / "stacks", ["aws-frankfurt"])

    def sentinel_only(site: dict) -> None:
        ingestion = site["services"]["ingestion"]
        ingestion.pop("stream", None)
        for source in ingestion["sentinel"]["sources"]:
            source["collections"] = [COLLECTION]

    edit_site(stacks / "Pulumi.aws-frankfurt.yaml", sentinel_only, sort_keys=True)
    return stacks


def test_a_published_catalog_behind_the_proxy_passes_every_check(
    federation,  # noqa: F811
    tmp_path: Path,
) -> None:
    result = CliRunner().invoke(
        cli.app,
        [
            "verify",
            "aws-frankfurt",
            "--stacks-dir",
            str(_stacks(tmp_path)),
            "--catalog-url",
            federation.public["site-a"],
            "--ca-bundle",
            str(federation.ca.ca_file),
            "--deadline",
            "20",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = {line.split(None, 1)[1].split("  ")[0]: line for line in result.stdout.splitlines()[1:]}
    assert lines["no anonymous writes"].split()[0] == "ok"
    assert "without a token → 401: refused" in lines["no anonymous writes"]
    assert lines[f"collection {COLLECTION}"].split()[0] == "ok"
    assert "https://" in lines["catalog answers /"]
