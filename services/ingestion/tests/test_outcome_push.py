"""Batch outcomes pushed to Debian 12's real Pushgateway: a Sentinel worker's run, and a harvest
per member, where a member that fails keeps the time of its last success (what the hub's
per-member alert reads); a Pushgateway that cannot be reached never fails the run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fedeploy_ingestion.outcome import push_harvest, push_sentinel
from prometheus_client import delete_from_gateway
from prometheus_client.parser import text_string_to_metric_families

from loopback.processes import free_port
from loopback.prometheus import Pushgateway
from tests.conftest import start_peer

pytestmark = pytest.mark.integration


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Pushgateway]:
    server = start_peer(lambda: Pushgateway(tmp_path).start())
    yield server
    server.stop()


def _samples(gateway: Pushgateway, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of `name`, by their labels (job and instance left out)."""
    return {
        tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("instance",))): s.value
        for family in text_string_to_metric_families(gateway.metrics())
        for s in family.samples
        if s.name == name
    }


def test_a_sentinel_worker_pushes_when_its_run_ended_and_what_it_registered(gateway):
    assert push_sentinel(gateway.url, "aws-eu", 2, registered=0, failed=3, now=1_000.0)
    group = (("job", "fedeploy-sentinel"), ("site", "aws-eu"), ("worker", "2"))
    assert _samples(gateway, "ingest_sentinel_last_run_timestamp_seconds") == {group: 1_000.0}
    assert _samples(gateway, "ingest_sentinel_last_run_registered_items") == {group: 0.0}
    assert _samples(gateway, "ingest_sentinel_last_run_failed_items") == {group: 3.0}


def test_a_member_that_fails_keeps_the_time_of_its_last_successful_harvest(gateway):
    first = {"a": {"status": "ok", "items": 12}, "b": {"status": "ok", "items": 0}}
    assert push_harvest(gateway.url, "hub", first, now=1_000.0) == {"a": True, "b": True}
    second = {
        "a": {"status": "unreachable", "error": "timed out"},
        "b": {"status": "ok", "items": 4},
    }
    push_harvest(gateway.url, "hub", second, now=2_000.0)

    def member(name: str) -> tuple[tuple[str, str], ...]:
        return (("job", "fedeploy-harvest"), ("member", name), ("site", "hub"))

    success = _samples(gateway, "ingest_harvest_member_last_success_timestamp_seconds")
    assert success == {member("a"): 1_000.0, member("b"): 2_000.0}
    assert _samples(gateway, "ingest_harvest_member_last_items") == {
        member("a"): 12.0,
        member("b"): 4.0,
    }
    failure = _samples(gateway, "ingest_harvest_member_last_failure_timestamp_seconds")
    assert failure == {member("a"): 2_000.0}


def test_a_member_pushes_the_items_the_hub_refused_and_a_clean_run_clears_them(gateway):
    """Refused items (HarvestReport's `refused`) are missing from the federated catalog: each
    successful harvest pushes how many, 0 when none, so CatalogHarvestItemsRefused resolves once
    a run refuses nothing; a failed harvest leaves the last count as it was."""
    named = {f"s2/item-{n}": "Missing or null `geometry`" for n in range(20)}
    first = {
        "a": {"status": "ok", "items": 12, "refused": 400, "refused_items": named},
        "b": {"status": "ok", "items": 3, "refused": 2, "refused_items": {"s2/x": "schema"}},
        "c": {"status": "ok", "items": 7},
    }
    push_harvest(gateway.url, "hub", first, now=1_000.0)

    def refused() -> dict[str, float]:
        samples = _samples(gateway, "ingest_harvest_member_last_refused_items")
        return {
            dict(labels)["member"]: value
            for labels, value in samples.items()
            if dict(labels)["job"] == "fedeploy-harvest" and dict(labels)["site"] == "hub"
        }

    assert refused() == {"a": 400.0, "b": 2.0, "c": 0.0}
    second = {"a": {"status": "ok", "items": 5}, "b": {"status": "failed", "error": "500"}}
    push_harvest(gateway.url, "hub", second, now=2_000.0)
    assert refused() == {"a": 0.0, "b": 2.0, "c": 0.0}
    push_harvest(gateway.url, "hub", {"b": {"status": "ok", "items": 1}}, now=3_000.0)
    assert refused() == {"a": 0.0, "b": 0.0, "c": 0.0}


def test_the_last_refusal_time_is_pushed_by_every_successful_run_until_cleared(gateway):
    """Review rf2 F1: CatalogHarvestItemsRefused reads when a member's harvest last had items
    refused, which the status collection keeps through clean runs (HarvestReport's
    `last_refused`): every successful run pushes it, so a group deleted from the Pushgateway has
    it back at the next run; a member without one pushes 0, which clears the alert; a failed
    run leaves it; a time that cannot be read is pushed as the run's, so the alert still fires."""
    refusal = {"time": "2024-06-02T00:00:00.000000Z", "count": 3}
    at = 1_717_286_400.0  # 2024-06-02T00:00:00Z

    def pushed() -> dict[str, float]:
        samples = _samples(gateway, "ingest_harvest_member_last_refusal_timestamp_seconds")
        return {dict(labels)["member"]: value for labels, value in samples.items()}

    first = {
        "a": {"status": "ok", "items": 4, "refused": 3, "last_refused": refusal},
        "b": {"status": "ok", "items": 1},
        "c": {"status": "ok", "items": 1, "last_refused": {"time": "yesterday", "count": 1}},
    }
    push_harvest(gateway.url, "hub", first, now=2_000_000_000.0)
    assert pushed() == {"a": at, "b": 0.0, "c": 2_000_000_000.0}
    # A clean run of `a` (no `refused`) still pushes the kept refusal; the count clears.
    delete_from_gateway(gateway.url, "fedeploy-harvest", {"site": "hub", "member": "a"})
    assert "a" not in pushed()
    push_harvest(gateway.url, "hub", {"a": {"status": "ok", "items": 0, "last_refused": refusal}})
    assert pushed()["a"] == at
    refused = _samples(gateway, "ingest_harvest_member_last_refused_items")
    assert {dict(labels)["member"]: value for labels, value in refused.items()}["a"] == 0.0
    push_harvest(gateway.url, "hub", {"a": {"status": "failed", "error": "500"}})
    assert pushed()["a"] == at
    # Cleared from the status by an operator: the next run pushes 0.
    push_harvest(gateway.url, "hub", {"a": {"status": "ok", "items": 0}})
    assert pushed()["a"] == 0.0


def test_an_unreachable_pushgateway_is_logged_and_never_raises(caplog):
    url = f"http://127.0.0.1:{free_port()}"
    assert not push_sentinel(url, "aws-eu", 0, registered=5, failed=0)
    assert push_harvest(url, "hub", {"a": {"status": "ok", "items": 1}}) == {"a": False}
    assert "outcome not pushed" in caplog.text
