"""A batch run's outcome, pushed to a Prometheus Pushgateway when the run ends.

A Sentinel run and a harvest are Jobs: their processes end before Prometheus could scrape them.
Where the site has a Pushgateway (INGEST_PUSHGATEWAY_URL), each pushes what Prometheus needs to
alert on when it ends:

- a Sentinel worker, in the group {job="fedeploy-sentinel", site, worker}: when its run ended,
  how many items it registered and how many failed (a run that copies nothing for a day is
  visible, which a succeeded Job is not);
- a harvest, per member, in the group {job="fedeploy-harvest", site (the hub), member}: when the
  member was last harvested successfully, how many items that upserted and how many the hub's
  catalog refused (0 when none), when a harvest last had items refused (from the member's
  status collection, which keeps it through clean runs; 0 when none), or when it last failed.
  Pushes add to the member's group (POST), so a member that fails keeps the time of its last
  success: its age is what the hub's per-member alert reads.

A push that fails is logged and never fails the run: the Job's own outcome stays what
kube-state-metrics reports.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway

log = logging.getLogger(__name__)

SENTINEL_JOB = "fedeploy-sentinel"
HARVEST_JOB = "fedeploy-harvest"
_TIMEOUT_SECONDS = 10.0


def _push(url: str, job: str, group: dict[str, str], gauges: dict[str, tuple[str, float]]) -> bool:
    registry = CollectorRegistry()
    for name, (help_text, value) in gauges.items():
        Gauge(name, help_text, registry=registry).set(value)
    try:
        pushadd_to_gateway(
            url, job=job, registry=registry, grouping_key=group, timeout=_TIMEOUT_SECONDS
        )
    except Exception as error:  # noqa: BLE001 - the run's outcome never depends on the push
        log.warning(
            "outcome not pushed to the Pushgateway",
            extra={"url": url, "group": group, "error": f"{type(error).__name__}: {error}"},
        )
        return False
    return True


def push_sentinel(
    url: str, site: str, worker: int, registered: int, failed: int, now: float | None = None
) -> bool:
    """Push one Sentinel worker's outcome; False when the push failed (logged)."""
    return _push(
        url,
        SENTINEL_JOB,
        {"site": site, "worker": str(worker)},
        {
            "ingest_sentinel_last_run_timestamp_seconds": (
                "When the worker's last run ended.",
                time.time() if now is None else now,
            ),
            "ingest_sentinel_last_run_registered_items": (
                "Items the worker's last run registered.",
                registered,
            ),
            "ingest_sentinel_last_run_failed_items": (
                "Items the worker's last run failed to copy.",
                failed,
            ),
        },
    )


def _refusal_time(member: str, last_refused: Any, now: float) -> float:
    """The Unix time of a member's last refusal (HarvestReport's `last_refused`), 0 when none;
    an unreadable one is logged and pushed as `now`, so the alert still fires."""
    if not last_refused:
        return 0.0
    try:
        moment = datetime.fromisoformat(str(last_refused["time"]).replace("Z", "+00:00"))
        if moment.tzinfo is None:
            raise ValueError("no time zone")
        return moment.timestamp()
    except (KeyError, TypeError, ValueError) as error:
        log.warning(
            "last refusal's time unreadable; pushed as now",
            extra={"member": member, "error": f"{type(error).__name__}: {error}"},
        )
        return now


def push_harvest(
    url: str, hub: str, sites: dict[str, dict[str, Any]], now: float | None = None
) -> dict[str, bool]:
    """Push each member's outcome of a harvest (HarvestReport.sites); per member, whether the
    push went through."""
    moment = time.time() if now is None else now
    pushed = {}
    for member, outcome in sorted(sites.items()):
        gauges: dict[str, tuple[str, float]]
        if outcome.get("status") == "ok":
            gauges = {
                "ingest_harvest_member_last_success_timestamp_seconds": (
                    "When the member was last harvested successfully.",
                    moment,
                ),
                "ingest_harvest_member_last_items": (
                    "Items the member's last successful harvest upserted.",
                    float(outcome.get("items") or 0),
                ),
                # 0 when none, so a run that refuses nothing clears what an earlier one pushed.
                "ingest_harvest_member_last_refused_items": (
                    "Items of the member the hub's catalog refused in its last successful "
                    "harvest (not stored).",
                    float(outcome.get("refused") or 0),
                ),
                # Pushed by every successful run, from the status collection: a group replaced
                # or deleted in the Pushgateway has it back at the next run, and an operator
                # who removes the refusal from the status clears it (0).
                "ingest_harvest_member_last_refusal_timestamp_seconds": (
                    "When a harvest of the member last had items refused by the hub's catalog "
                    "(0: none kept in its status collection).",
                    _refusal_time(member, outcome.get("last_refused"), moment),
                ),
            }
        else:
            gauges = {
                "ingest_harvest_member_last_failure_timestamp_seconds": (
                    "When a harvest last missed the member.",
                    moment,
                )
            }
        pushed[member] = _push(url, HARVEST_JOB, {"site": hub, "member": member}, gauges)
    return pushed
