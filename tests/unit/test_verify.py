"""`fedeploy verify`: which checks a site gets from its stack file, and how each probe reads an
answer (the live checks run against real catalogs in tests/integration/test_verify.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from fedeploy.verify.checks import (
    FAILED,
    NOT_APPLICABLE,
    OK,
    PlannedCheck,
    Settings,
    anonymous_write_probe,
    bridge_base,
    bridge_probe,
    harvest_probe,
    ingestion_collections,
    load_site,
    plan_checks,
    run_check,
)

ROOT = Path(__file__).resolve().parents[2]
STACKS = ROOT / "stacks"


def client(status: int, body: object | None = None) -> httpx.Client:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body if body is not None else {})

    return httpx.Client(transport=httpx.MockTransport(answer))


def names(checks: list[PlannedCheck]) -> dict[str, str]:
    return {c.name: ("probe" if c.probe else c.reason) for c in checks}


def test_a_member_site_checks_its_catalog_its_ingestion_collections_and_its_writes() -> None:
    site = load_site(STACKS, "aws-frankfurt")
    checks = names(plan_checks("aws-frankfurt", site, "https://c.example", Settings()))
    assert list(checks) == [
        "catalog answers /",
        "catalog conformance",
        "collection edge-observations",
        "collection sentinel-2-l2a",
        "no anonymous writes",
        "bridge answers",
    ]
    assert checks["no anonymous writes"] == "probe"  # the example publishes it with exposure
    assert checks["bridge answers"] == "the site has no bridge"


def test_the_hub_checks_every_members_harvest_and_has_no_bridge_check() -> None:
    site = load_site(STACKS, "eu-hub")
    checks = names(plan_checks("eu-hub", site, "https://hub.example", Settings()))
    assert [n for n in checks if n.startswith("harvest of ")] == [
        f"harvest of {m}" for m in site.members
    ]
    assert "bridge answers" not in checks


def test_the_collections_follow_the_stack_files_ingestion() -> None:
    site = load_site(STACKS, "aws-frankfurt")
    assert ingestion_collections(site) == ["edge-observations", "sentinel-2-l2a"]
    ingestion = site.services.ingestion
    no_stream = ingestion.model_copy(
        update={"stream": ingestion.stream.model_copy(update={"enabled": False})}
    )
    assert ingestion_collections(
        SimpleNamespace(services=SimpleNamespace(ingestion=no_stream))
    ) == ["sentinel-2-l2a"]
    off = ingestion.model_copy(update={"enabled": False})
    assert ingestion_collections(SimpleNamespace(services=SimpleNamespace(ingestion=off))) == []


def test_a_gateway_bridge_is_checked_at_its_host_and_an_override_wins() -> None:
    site = load_site(STACKS, "hpc-kajaani")
    base, why = bridge_base(site, None)
    assert base == f"https://{site.bridge.host}:{site.bridge.rest_port}" and why == ""
    assert bridge_base(site, "https://tunnel.example:7000/")[0] == "https://tunnel.example:7000"


def test_a_bridge_at_a_private_address_does_not_apply() -> None:
    site = load_site(STACKS, "hpc-kajaani")
    private = SimpleNamespace(bridge=site.bridge.model_copy(update={"host": "10.1.2.3"}))
    base, why = bridge_base(private, None)
    assert base is None and "private or in-cluster" in why


@pytest.mark.parametrize(
    ("status", "passed"),
    [(200, True), (401, True), (403, True), (404, False), (502, False)],
)
def test_the_bridge_answers_when_it_pings_or_asks_for_a_token(status: int, passed: bool) -> None:
    outcome = bridge_probe("https://b.example", "v0.0.38")(client(status))
    assert outcome.passed is passed
    assert "GET https://b.example/slurm/v0.0.38/ping" in outcome.evidence


@pytest.mark.parametrize(
    ("status", "passed"),
    [(401, True), (403, True), (404, True), (405, True), (201, False), (400, False), (422, False)],
)
def test_an_anonymous_write_must_be_refused_before_the_api(status: int, passed: bool) -> None:
    assert anonymous_write_probe("https://c.example")(client(status)).passed is passed


def test_a_harvest_status_must_be_ok_and_fresh() -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    settings = Settings(max_harvest_age_s=600, now=lambda: now)
    probe = harvest_probe("https://hub.example", "site-a", settings)

    def status(**fields: object) -> httpx.Client:
        return client(200, {"id": "fedeploy-site-site-a", "fedeploy:harvest": fields})

    assert probe(status(status="ok", last_success="2026-01-01T11:55:00Z")).passed
    stale = probe(status(status="ok", last_success="2026-01-01T11:00:00Z"))
    assert not stale.passed and "3600 s old, over the 600 s allowed" in stale.evidence
    failed = probe(status(status="failed", error="boom", last_attempt="2026-01-01T11:59:00Z"))
    assert not failed.passed and "failed: boom" in failed.evidence
    never = probe(client(404, {"code": "NotFoundError"}))
    assert not never.passed and "never harvested" in never.evidence


def test_a_check_retries_until_it_passes_and_reports_its_attempts() -> None:
    answers = iter([503, 503, 200])
    http = httpx.Client(
        transport=httpx.MockTransport(lambda r: httpx.Response(next(answers), json={}))
    )
    check = PlannedCheck("bridge answers", bridge_probe("https://b.example", "v0.0.38"))
    result = run_check(check, http, Settings(deadline_s=30))
    assert (result.status, result.attempts) == (OK, 3)
    down = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(503)))
    failed = run_check(check, down, Settings(deadline_s=0.5))
    assert failed.status == FAILED and "attempt" in failed.evidence
    skipped = run_check(PlannedCheck("x", reason="why"), down, Settings())
    assert (skipped.status, skipped.evidence) == (NOT_APPLICABLE, "why")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--catalog-url", "ftp://catalog.example.eu"], "not an http(s) URL"),
        (["--catalog-url", "not a url"], "not an http(s) URL"),
        (["--bridge-url", "slurm-gw:6820"], "not an http(s) URL"),
        (["--catalog-url", "https://user:s3cret@catalog.example.eu"], "user name or password"),
        (["--max-harvest-age", "-5"], "--max-harvest-age"),
        (["--deadline", "inf"], "--deadline"),
        (["--bake", "inf"], "--bake"),
    ],
)
def test_odd_options_are_a_usage_error_before_any_request(args: list[str], said: str) -> None:
    from typer.testing import CliRunner

    from fedeploy.cli import app

    result = CliRunner().invoke(
        app, ["verify", "aws-dublin", "--stacks-dir", str(STACKS), "--deadline", "0", *args]
    )
    assert result.exit_code == 2, result.output
    assert said in result.output
    assert "s3cret" not in result.output
    assert "FAILED" not in result.output  # refused as a usage error, no check was run
