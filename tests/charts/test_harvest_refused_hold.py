"""Review rere33 F4: CatalogHarvestItemsRefused holds for the chart's
`monitoring.alerts.harvestRefusedHoldSeconds`, not for a day whatever it says.

test_monitoring's cases render the default (86400 s) and are hour-granular: the template's
`< {{ $a.harvestRefusedHoldSeconds }}` replaced by `< 86400` (or `<=`, or `< 82801`) passed them
all. Here the hub's catalog is rendered with a hold of 5400 s (90 minutes), and promtool
evaluates the rule minute by minute around its end: it fires a minute before the hold ends,
and neither at its end nor after it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.charts.test_monitoring import (
    _PUSHED_REFUSAL,
    _case,
    alerts_of,
    monitored,
    pushing,
    rules_of,
    run_alert_cases,
)

HOLD = 5400  # seconds: not the default (86400) nor a whole number of hours
# A harvest refused items of aws-eu at 2 minutes (the pushed time: 120 s), and each minute's
# run after pushes that kept time again: the hold ends at 120 + 5400 s = 92 minutes.
REFUSED_AT_2M = {f'{_PUSHED_REFUSAL}, member="aws-eu"}}': "0 0 120x200"}
FIRES = {"site": "hub", "member": "aws-eu", "severity": "warning"}


def _rule(hold: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The hub catalog's rule spec rendered with `hold`, and its CatalogHarvestItemsRefused."""
    extra = {**pushing("catalog"), "monitoring": {**pushing("catalog")["monitoring"]}}
    extra["monitoring"]["alerts"] = {"harvestRefusedHoldSeconds": hold}
    (spec,) = rules_of(monitored("catalog", "hub", extra))
    (alert,) = (a for a in alerts_of(spec) if a["alert"] == "CatalogHarvestItemsRefused")
    return spec, alert


def test_the_rule_takes_the_charts_hold_setting() -> None:
    _, alert = _rule(HOLD)
    assert alert["expr"].rstrip().endswith(f"> 0) < {HOLD}"), alert["expr"]
    assert f"this fires for {HOLD} s after the last refusal" in alert["annotations"]["description"]


def test_the_alert_holds_for_the_set_seconds_and_no_longer(tmp_path: Path) -> None:
    spec, _ = _rule(HOLD)
    cases = {
        "CatalogHarvestItemsRefused": [
            _case("1m", REFUSED_AT_2M, "3m", FIRES),
            _case("1m", REFUSED_AT_2M, "91m", FIRES),  # 5340 s after the refusal
            _case("1m", REFUSED_AT_2M, "92m", None),  # 5400 s: the hold has ended
            _case("1m", REFUSED_AT_2M, "93m", None),
            _case("1m", REFUSED_AT_2M, "150m", None),  # a default hold would still fire
        ]
    }
    # Only the rule under test: the others' series are not given here.
    only = {
        **spec,
        "groups": [
            {
                **group,
                "rules": [
                    r for r in group["rules"] if r.get("alert") == "CatalogHarvestItemsRefused"
                ],
            }
            for group in spec["groups"]
        ],
    }
    run_alert_cases(only, cases, tmp_path)
