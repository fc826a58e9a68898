"""Review rere33 F2: recovering a Pushgateway poisoned with one of our metric names, on Debian's
real Pushgateway (1.5.1), with the shell commands an operator runs (curl, jq).

A group that declares `ingest_harvest_member_last_success_timestamp_seconds` as a counter makes
every push of ours that carries the name fail (400). docs/charts.md's recovery lists that group's
labels and deletes `<url>/metrics/job/<its job>/<label>/<value>...`: where a value holds a `/`
(job `evil/x`, instance `a/b`), that path names another group, the Pushgateway answers 202 and
deletes nothing, and our pushes keep failing. Only the `<label>@base64/<value in URL-safe
base64>` form of each part names it; DELETE_POISON builds those paths from the listing, and
LIST_POISON, run again, shows the group gone (a DELETE answers 202 whether or not it deleted).
"""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from fedeploy_ingestion.outcome import push_harvest

from loopback.prometheus import Pushgateway
from tests.conftest import start_peer

pytestmark = pytest.mark.integration

METRIC = "ingest_harvest_member_last_success_timestamp_seconds"
# The groups that declare <metric> with a type other than ours (all our pushed metrics are
# gauges): docs/charts.md's listing, as it is.
LIST_POISON = (
    "curl -s <pushgateway.url>/api/v1/metrics | jq -c --arg n <metric> "
    """'.data[] | select(.[$n].type? and .[$n].type != "GAUGE") | .labels'"""
)
# docs/charts.md's deletion before review rere33, for the group {"instance":"a/b","job":"evil/x"}
OLD_DELETE = "curl -X DELETE <pushgateway.url>/metrics/job/evil/x/instance/a/b"
# The corrected deletion: each listed group's path with every label value in URL-safe base64
# (`=` for an empty value), each DELETE's status and path printed.
DELETE_POISON = (
    "curl -s <pushgateway.url>/api/v1/metrics | jq -r --arg n <metric> "
    """'def b64: if . == "" then "=" else @base64 | gsub("[+]"; "-") | gsub("/"; "_") end; """
    """.data[] | select(.[$n].type? and .[$n].type != "GAUGE") | .labels """
    """| "/metrics/job@base64/\\(.job | b64)" """
    """+ ([to_entries[] | select(.key != "job") | "/\\(.key)@base64/\\(.value | b64)"] """
    """| join(""))' """
    """| while read -r path; do curl -s -o /dev/null -w "%{http_code} $path\\n" """
    """-X DELETE "<pushgateway.url>$path"; done"""
)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Pushgateway]:
    server = start_peer(lambda: Pushgateway(tmp_path).start())
    yield server
    server.stop()


def _shell(command: str, gateway: Pushgateway) -> str:
    filled = command.replace("<pushgateway.url>", gateway.url).replace("<metric>", METRIC)
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", filled], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, (filled, done.stdout, done.stderr)
    return done.stdout


def _poison(gateway: Pushgateway, path: str) -> None:
    """What an attacker who reaches the Pushgateway pushes: our metric name as a counter."""
    body = f"# TYPE {METRIC} counter\n{METRIC} 1\n".encode()
    request = urllib.request.Request(f"{gateway.url}{path}", data=body, method="PUT")
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 200


def _pushed(gateway: Pushgateway) -> bool:
    return push_harvest(gateway.url, "hub", {"aws-eu": {"status": "ok", "items": 1}})["aws-eu"]


def test_the_old_recipe_deletes_nothing_where_a_value_holds_a_slash(gateway: Pushgateway) -> None:
    _poison(gateway, "/metrics/job@base64/ZXZpbC94/instance@base64/YS9i")  # evil/x, a/b
    assert not _pushed(gateway)
    assert _shell(LIST_POISON, gateway) == '{"instance":"a/b","job":"evil/x"}\n'
    assert _shell(f"{OLD_DELETE} -s -o /dev/null -w '%{{http_code}}'", gateway) == "202"
    assert _shell(LIST_POISON, gateway) != ""  # still there
    assert not _pushed(gateway)


def test_the_base64_paths_delete_every_poisoning_group(gateway: Pushgateway) -> None:
    for path in (
        "/metrics/job@base64/ZXZpbC94/instance@base64/YS9i",  # job evil/x, instance a/b
        "/metrics/job@base64/ZXZpbC95/worker@base64/=",  # job evil/y, worker "" (empty)
        "/metrics/job/plain",  # no other label
        # a value in UTF-8 whose base64 holds '+' and '/' ("a>?ÿ/é")
        "/metrics/job/evil-z/member@base64/YT4_w78vw6k",
    ):
        _poison(gateway, path)
    assert not _pushed(gateway)
    listed = _shell(LIST_POISON, gateway).splitlines()
    assert len(listed) == 4, listed
    deleted = _shell(DELETE_POISON, gateway).splitlines()
    assert sorted(deleted) == sorted(
        [
            "202 /metrics/job@base64/ZXZpbC94/instance@base64/YS9i",
            "202 /metrics/job@base64/ZXZpbC95/worker@base64/=",
            "202 /metrics/job@base64/cGxhaW4=",
            "202 /metrics/job@base64/ZXZpbC16/member@base64/YT4_w78vw6k=",
        ]
    ), deleted
    assert _shell(LIST_POISON, gateway) == ""  # the check: nothing listed
    assert _pushed(gateway)


def test_docs_charts_gives_the_listing_and_the_deletion_these_tests_run():
    """The operator copies the commands from docs/charts.md: they are the ones tested here."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "charts.md").read_text()
    assert f"`{LIST_POISON}`" in text
    assert f"`{DELETE_POISON}`" in text
