"""The drill's outcome, pushed to the site's Prometheus Pushgateway when the drill ends.

The drill is a Job: it ends before Prometheus could scrape it. Where the site has a Pushgateway
(`monitoring.pushgateway.url`), it pushes into the group {job="fedeploy-restore-drill", site}:
when it ran, its exit status (0 identical, 1 differs, 2 could not run), how long it took and how
many items it restored, and, when identical, the time of that success. When it starts it pushes
its start time alone, so a drill killed before it could push an outcome (the Job's deadline, an
out-of-memory kill, an eviction) leaves a start later than the last run, which
CatalogRestoreDrillFailed reads as exit status 2 once the deadline has passed; on SIGTERM the
drill pushes exit status 2 itself (fedeploy.restore_drill.command). Pushes add to the group
(POST), so a failed drill keeps the time of the last success. CatalogRestoreDrillStale reads the
CronJob's last successful time from kube-state-metrics. The alerts pin `job`, so a series pushed
under another job cannot stand in for it.

The body is Prometheus' text format sent with the standard library (fedeploy does not depend on
prometheus_client). A push that fails is reported and never changes the drill's exit status.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import quote

JOB = "fedeploy-restore-drill"
_TIMEOUT_SECONDS = 10.0
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9._-]{1,63}$")

_STARTED = "catalog_restore_drill_started_timestamp_seconds"
_HELP = {
    _STARTED: "When the last restore drill started.",
    "catalog_restore_drill_last_run_timestamp_seconds": "When the last restore drill ended.",
    "catalog_restore_drill_exit_status": (
        "Exit status of the last restore drill: 0 identical, 1 differs, 2 could not run."
    ),
    "catalog_restore_drill_duration_seconds": "Seconds the last restore drill took.",
    "catalog_restore_drill_restored_items": "Items in the catalog the last drill restored.",
    "catalog_restore_drill_last_success_timestamp_seconds": (
        "When a restore drill last found the restored catalog identical to the live one."
    ),
}


@dataclass(frozen=True)
class DrillOutcome:
    """One drill's result: exit status, end time (Unix seconds), duration, items restored."""

    status: int
    ended: float
    duration: float
    restored_items: int = 0


def exposition(outcome: DrillOutcome) -> str:
    """The outcome as Prometheus' text format (the success time only when identical)."""
    values = {
        "catalog_restore_drill_last_run_timestamp_seconds": outcome.ended,
        "catalog_restore_drill_exit_status": float(outcome.status),
        "catalog_restore_drill_duration_seconds": outcome.duration,
        "catalog_restore_drill_restored_items": float(outcome.restored_items),
    }
    if outcome.status == 0:
        values["catalog_restore_drill_last_success_timestamp_seconds"] = outcome.ended
    return _gauges(values)


def _gauges(values: dict[str, float]) -> str:
    lines = []
    for name, value in values.items():
        lines += [f"# HELP {name} {_HELP[name]}", f"# TYPE {name} gauge", f"{name} {value!r}"]
    return "\n".join(lines) + "\n"


def push_started(url: str, site: str, started: float) -> str | None:
    """POST the drill's start time (Unix seconds) alone to the group; as `push`."""
    return _post(url, site, _gauges({_STARTED: started}))


def push(url: str, site: str, outcome: DrillOutcome) -> str | None:
    """POST the outcome to the Pushgateway at `url` in the group {job, site}; None when pushed,
    else why not (in words). `site`: letters, digits, '.', '_' and '-'."""
    return _post(url, site, exposition(outcome))


def _post(url: str, site: str, body: str) -> str | None:
    if not _LABEL_VALUE.match(site):
        return f"site {site!r} is not a label value of letters, digits, '.', '_' and '-'"
    if not url.startswith(("http://", "https://")):
        return f"{url!r} is not an http(s) URL"
    target = f"{url.rstrip('/')}/metrics/job/{JOB}/site/{quote(site, safe='')}"
    request = urllib.request.Request(
        target,
        data=body.encode(),
        method="POST",
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_SECONDS) as response:  # noqa: S310
            response.read()
    except (urllib.error.URLError, OSError, ValueError) as error:
        return f"{type(error).__name__}: {error}"
    return None
