"""`fedeploy verify` of a site whose name does not resolve says "cannot verify" (exit 2) at once,
instead of failing every check after minutes of silent retries; retries print progress."""

from __future__ import annotations

from pathlib import Path

import httpx
from typer.testing import CliRunner

from fedeploy.cli import app
from fedeploy.verify import checks as verify
from fedeploy.verify.checks import OK, PlannedCheck, Settings, bridge_probe, run_check

STACKS = Path(__file__).resolve().parents[2] / "stacks"


def test_a_name_that_does_not_resolve_cannot_be_verified_at_once(monkeypatch) -> None:
    ran: list[str] = []
    monkeypatch.setattr(verify, "run_check", lambda check, *a: ran.append(check.name))
    result = CliRunner().invoke(
        app,
        [
            "verify",
            "aws-dublin",
            "--stacks-dir",
            str(STACKS),
            "--catalog-url",
            "https://catalog.not-deployed.invalid",
            "--deadline",
            "240",
        ],
    )
    assert result.exit_code == 2, result.output
    assert "aws-dublin cannot be verified: catalog.not-deployed.invalid, the host of its" in (
        result.output
    )
    assert "does not resolve" in result.output and "Nothing was checked" in result.output
    assert ran == []  # no check retried for the deadline


def test_an_address_is_not_looked_up() -> None:
    verify.require_resolvable("x", "http://127.0.0.1:9")  # no DNS: nothing raised


def test_each_retry_is_reported() -> None:
    answers = iter([503, 503, 200])
    http = httpx.Client(
        transport=httpx.MockTransport(lambda r: httpx.Response(next(answers), json={}))
    )
    said: list[str] = []
    check = PlannedCheck("bridge answers", bridge_probe("https://b.example", "v0.0.40"))
    result = run_check(check, http, Settings(deadline_s=30, progress=said.append))
    assert result.status == OK and len(said) == 2
    assert said[0].startswith("bridge answers: attempt 1 did not pass (GET https://b.example")
    assert "→ 503" in said[0] and said[0].endswith("s left")
    assert said[1].startswith("bridge answers: attempt 2 did not pass")
