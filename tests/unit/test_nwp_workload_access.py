"""Issue 36, NWP at the stations in a deployed site: where the site's ingestion copies ECMWF
open-data forecasts into the inference bucket, the inference workload (whose training reads
them, fedeploy_inference.train_from_store) may read their collections' prefixes, on every kind:
aws's IAM role policy and OpenStack's (ewc-bologna, ovh) bucket policy. Nowhere else: a site
without ECMWF sources, or whose ingestion writes to another bucket, plans as before."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from fedeploy_ingestion.forecast_plan import Product

from fedeploy.config.services import EcmwfForecasts
from fedeploy.offline.engine import plan_stack
from fedeploy.values.workload_access import WORKLOAD_ACCESS, ecmwf_forecast_prefixes
from tests.conftest import STACKS

ECMWF = [
    {"name": "ifs", "params": ["2t", "z"], "steps": [0, 3, 6]},
    {"name": "ens", "stream": "enfo", "type": "cf", "params": ["2t"], "steps": [0]},
]
PREFIXES = ("sentinel/ecmwf-ifs-enfo-cf/", "sentinel/ecmwf-ifs-oper-fc/")


def _site(stack: str, ecmwf: bool, shared_bucket: bool) -> dict[str, Any]:
    text = (STACKS / f"Pulumi.{stack}.yaml").read_text()
    site: dict[str, Any] = yaml.safe_load(text)["config"]["fedeploy:site"]
    services = site["services"]
    if ecmwf:
        sentinel = services["ingestion"].setdefault("sentinel", {})
        sentinel["ecmwf"] = ECMWF
    if shared_bucket:
        services["inference"]["bucket"] = services["ingestion"]["bucket"]
    return site


def _inference_reads(stack: str, ecmwf: bool, shared_bucket: bool) -> set[str]:
    """The object ARNs the inference workload may GET in the plan of the changed stack."""
    plan = plan_stack(
        STACKS / f"Pulumi.{stack}.yaml",
        config_override={"fedeploy:site": _site(stack, ecmwf, shared_bucket)},
    )
    reads: set[str] = set()
    if stack.startswith("aws-"):
        (policy,) = [
            json.loads(p.inputs["policy"])
            for p in plan.by_type("aws:iam/rolePolicy:RolePolicy")
            if p.name == f"{stack}-inference-role-access"
        ]
        statements = policy["Statement"]
    else:
        statements = [
            s
            for p in plan.by_type("aws:s3/bucketPolicy:BucketPolicy")
            for s in json.loads(p.inputs["policy"])["Statement"]
            if s["Sid"].startswith("Inference")
        ]
    for statement in statements:
        if statement["Sid"].endswith("Read"):
            reads.update(statement["Resource"])
    return reads


@pytest.mark.parametrize("stack", ["aws-dublin", "ewc-bologna"])
def test_inference_reads_the_ecmwf_forecasts_the_site_ingests_into_its_bucket(stack: str) -> None:
    reads = _inference_reads(stack, ecmwf=True, shared_bucket=True)
    bucket = next(iter(reads)).split(":::", 1)[1].split("/", 1)[0]
    expected = WORKLOAD_ACCESS["inference"].reads + PREFIXES
    assert reads == {f"arn:aws:s3:::{bucket}/{prefix}*" for prefix in expected}


@pytest.mark.parametrize("stack", ["aws-dublin", "ewc-bologna"])
@pytest.mark.parametrize("ecmwf, shared_bucket", [(False, True), (True, False)])
def test_without_ecmwf_forecasts_in_its_bucket_inference_reads_as_before(
    stack: str, ecmwf: bool, shared_bucket: bool
) -> None:
    reads = _inference_reads(stack, ecmwf, shared_bucket)
    assert not any("ecmwf" in r for r in reads)
    assert {r.split("/", 1)[1] for r in reads} == {
        f"{p}*" for p in WORKLOAD_ACCESS["inference"].reads
    }


def test_the_granted_prefixes_are_where_the_ingestion_service_copies_the_forecasts() -> None:
    sources = [EcmwfForecasts.model_validate(source) for source in ECMWF]

    class _Ingestion:
        enabled = True

        class sentinel:  # noqa: N801 - the config's attribute name
            enabled = True
            ecmwf = sources

    run = datetime(2026, 1, 1, tzinfo=UTC)
    keys = [Product(s.model, s.resol, s.stream, s.type, run, 0, ("2t",)).key for s in sources]
    prefixes = ecmwf_forecast_prefixes(_Ingestion())
    assert set(prefixes) == set(PREFIXES)
    # Every product the service copies for a source lies under that source's granted prefix.
    for key in keys:
        assert sum(key.startswith(prefix) for prefix in prefixes) == 1, key
