"""A stack file's alert settings must be values their chart takes: every threshold the stack
file's model accepts passes the chart's values.schema.json (a value the chart refuses planned
clean at config level and failed at render, naming the chart's key, not the stack file's), and
a parsed site's settings survive pickling (plan workers send them to the parent: a model pickle
could not find by name made `fedeploy plan` an internal error whenever a rule was set)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import jsonschema
import pydantic
import pytest

from fedeploy.config.monitoring import ALERT_KNOBS, Monitoring

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SITES = sorted(p.name.split(".")[1] for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))
# Candidates around every bound a threshold may have (counts, seconds, shares, numbers).
CANDIDATES = [-1, 0, 0.0, 1e-9, 0.5, 1, 0.999, 1.0, 1.5, 2, 59, 86400, 10**9, 10**12]


def _alerts_schema(chart: str) -> dict:
    schema = json.loads((ROOT / f"charts/{chart}/values.schema.json").read_text())
    return schema["properties"]["monitoring"]["properties"]["alerts"]["properties"]


@pytest.mark.parametrize("name", sorted(n for n, k in ALERT_KNOBS.items() if k.threshold), ids=str)
def test_every_threshold_the_stack_file_takes_is_one_its_chart_takes(name):
    knobs = ALERT_KNOBS[name]
    chart_property = _alerts_schema(knobs.chart)[knobs.threshold]
    accepted = []
    for value in CANDIDATES:
        try:
            Monitoring.model_validate({"alerts": {"rules": {name: {"threshold": value}}}})
        except pydantic.ValidationError:
            continue
        accepted.append(value)
        errors = list(jsonschema.Draft7Validator(chart_property).iter_errors(value))
        assert not errors, (
            f"{name}.threshold {value!r} is taken by the stack file but refused by "
            f"charts/{knobs.chart} ({knobs.threshold}): {errors[0].message}"
        )
    assert accepted, f"{name}: no candidate accepted"


def test_a_site_with_every_alert_setting_pickles_and_comes_back_equal():
    rules = {}
    for name, knobs in ALERT_KNOBS.items():
        settings: dict = {}
        if knobs.threshold:
            settings["threshold"] = {"ratio": 0.5, "below_one": 0.5}.get(knobs.kind, 1)
        if knobs.for_:
            settings["for"] = "5m"
        if knobs.window:
            settings["window"] = "10m"
        rules[name] = settings
    block = Monitoring.model_validate({"alerts": {"rules": rules}})
    again = pickle.loads(pickle.dumps(block, protocol=pickle.HIGHEST_PROTOCOL))
    assert again == block
    assert again.alerts.overrides() == block.alerts.overrides()


def test_a_plan_in_workers_of_a_stack_file_setting_alert_rules_is_not_an_internal_error(
    tmp_path: Path,
) -> None:
    """A fresh process (pytest's may have loaded Helm, which keeps a plan out of workers) plans
    four sites in two forked workers, the cache off, so that each worker's parsed site is sent
    back pickled."""
    import os
    import subprocess
    import sys

    from tests.builders import edit_site, example_stacks

    stacks = example_stacks(tmp_path / "stacks", EXAMPLE_SITES)  # a first wave of five
    for name, rule in (
        ("eu-hub", "CatalogHarvestItemsRefused"),
        ("ovh-gra", "CatalogHarvestFailed"),
    ):
        edit_site(
            stacks / f"Pulumi.{name}.yaml",
            lambda site, rule=rule: site["monitoring"].update(
                alerts={"rules": {rule: {"threshold": 7200}}}
            ),
            sort_keys=True,
        )
    env = {**os.environ, "FEDEPLOY_PLAN_CACHE": "off"}
    command = [sys.executable, "-m", "fedeploy", "plan", "--stacks-dir", str(stacks), "-j", "2"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    assert "internal error" not in done.stderr
    assert "harvestRefusedHoldSeconds 7200" in done.stdout, done.stdout[-3000:]
