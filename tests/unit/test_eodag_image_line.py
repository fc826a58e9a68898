"""The plan's EODAG line names the image as the stack file gives it (review sweep33 F15): an
`eodag_image` given by digest only read `runs on image ghcr.io/fedeploy/ingestion: (with the
eodag extra)`, an empty tag after ':'."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fedeploy.plan.formats import as_text
from fedeploy.plan.run import run_plan
from tests.builders import edit_site
from tests.conftest import STACKS

DIGEST = "sha256:" + "a" * 64
EODAG = {
    "name": "esa-s2",
    "provider": "cop_dataspace",
    "collections": ["S2_MSI_L2A"],
    "assets": ["B04"],
}


@pytest.mark.parametrize(
    "image",
    [
        f"ghcr.io/fedeploy/ingestion@{DIGEST}",
        f"ghcr.io/fedeploy/ingestion:0.4.0@{DIGEST}",
        "registry.example.org:5000/fedeploy/ingestion-eodag:0.1.0",
    ],
)
def test_the_eodag_line_names_the_image_as_given(tmp_path: Path, image: str) -> None:
    stacks = tmp_path / "stacks"
    shutil.copytree(STACKS, stacks)

    def add_eodag(site: dict) -> None:
        sentinel = site["services"]["ingestion"]["sentinel"]
        sentinel["eodag"] = [EODAG]
        sentinel["eodag_image"] = image

    edit_site(stacks / "Pulumi.aws-dublin.yaml", add_eodag)
    report = run_plan(stacks, ["aws-dublin"], jobs=1, cache=None)
    assert report.errors == [], [str(e) for e in report.errors]
    [line] = [x for x in as_text(report).splitlines() if "(EODAG," in x]
    assert line.strip() == (
        "source esa-s2 (EODAG, provider cop_dataspace, S2_MSI_L2A): no credentials set: "
        "Copernicus Data Space downloads need an account (eodag_credentials); runs on image "
        f"{image} (with the eodag extra)"
    )
