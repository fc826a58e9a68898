"""Review sweep33 F3: an alert's window (the range of its rate(), `[0s]`) and the scrape interval
must be above zero. promtool refuses `rate(...[0s])` ("duration must be greater than 0") and
the operator refuses such a PrometheusRule at deploy; Prometheus ignores a scrape interval of 0s.
fedeploy planned `window: 0s`, `0m`, `0ms` and `scrape_interval: 0s` clean. A `for:` of 0s
(fire at once) is valid and stays allowed. Also F4: `monitoring.enabled` is true, false or the
word auto, not any string pydantic reads as a boolean ("yes")."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from fedeploy.config.loader import check_stack_file
from fedeploy.config.monitoring import (
    ALERT_KNOBS,
    DURATION_PATTERN,
    DURATION_UNITS,
    POSITIVE_DURATION_PATTERN,
    Monitoring,
)
from fedeploy.errors import StackConfigError

INVALID = Path(__file__).resolve().parents[1] / "stack_files" / "invalid"
WINDOWED = sorted(name for name, knobs in ALERT_KNOBS.items() if knobs.window)
TIMED = sorted(name for name, knobs in ALERT_KNOBS.items() if knobs.for_)
ZEROS = ["0s", "0m", "0ms", "00s", "0h0m", "0y0w0d0h0m0s0ms", "000000000ms"]
# The smallest positive durations, in each way of writing one.
SMALLEST = ["1ms", "0s1ms", "000000001ms", "0h0m0s1ms", "1s"]


def _stack_with(tmp_path: Path, monitoring: str) -> Path:
    """The aws stack file of the invalid set with its `monitoring:` block's body `monitoring`
    (lines indented 6)."""
    source = (INVALID / "Pulumi.alert-duration-in-words.yaml").read_text()
    block = (
        "    monitoring:\n      alerts:\n        rules:\n"
        "          IngestBrokerDisconnected:\n            for: 5 minutes\n"
    )
    assert block in source
    path = tmp_path / "Pulumi.duration.yaml"
    path.write_text(source.replace(block, "    monitoring:\n" + monitoring))
    return path


def _refusals(path: Path) -> list[str]:
    with pytest.raises(StackConfigError) as refused:
        check_stack_file(path, check_federation=False)
    assert "Traceback" not in str(refused.value)
    return [line.strip() for line in str(refused.value).splitlines() if line.strip()[:2] == "- "]


def _rules(setting: str, value: str, names: list[str]) -> str:
    return "      alerts:\n        rules:\n" + "".join(
        f"          {name}:\n            {setting}: {value!r}\n" for name in names
    )


@pytest.mark.parametrize("zero", ZEROS)
def test_every_window_refuses_a_zero_duration_naming_its_key(tmp_path, zero):
    assert len(WINDOWED) == 7, WINDOWED
    lines = _refusals(_stack_with(tmp_path, _rules("window", zero, WINDOWED)))
    assert len(lines) == len(WINDOWED), lines
    for name, line in zip(WINDOWED, sorted(lines), strict=True):
        assert line.startswith(f"- site.monitoring.alerts.rules.{name}.window: given {zero!r}; ")
        assert "above zero" in line and "a Prometheus duration" in line, line
    for name in WINDOWED:
        with pytest.raises(ValidationError):
            Monitoring.model_validate({"alerts": {"rules": {name: {"window": zero}}}})


@pytest.mark.parametrize("zero", ZEROS)
def test_the_scrape_interval_refuses_a_zero_duration_naming_its_key(tmp_path, zero):
    (line,) = _refusals(_stack_with(tmp_path, f"      scrape_interval: {zero!r}\n"))
    assert line.startswith(f"- site.monitoring.scrape_interval: given {zero!r}; allowed: ")
    assert "above zero" in line, line


@pytest.mark.parametrize("smallest", SMALLEST)
def test_the_smallest_positive_window_and_scrape_interval_pass(tmp_path, smallest):
    body = f"      scrape_interval: {smallest!r}\n" + _rules("window", smallest, WINDOWED)
    check_stack_file(_stack_with(tmp_path, body), check_federation=False)
    rules = {name: {"window": smallest} for name in WINDOWED}
    monitoring = Monitoring.model_validate(
        {"scrape_interval": smallest, "alerts": {"rules": rules}}
    )
    assert monitoring.chart_values(False, "catalog")["alerts"]["window"] == smallest
    assert monitoring.chart_values(False, "ingestion")["scrapeInterval"] == smallest


@pytest.mark.parametrize("zero", ["0s", "0m", "0ms"])
def test_a_for_of_zero_fires_at_once_and_stays_allowed(tmp_path, zero):
    check_stack_file(_stack_with(tmp_path, _rules("for", zero, TIMED)), check_federation=False)


def test_positive_durations_are_exactly_the_durations_with_a_digit_above_zero():
    """POSITIVE_DURATION_PATTERN is DURATION_PATTERN less the zeros, every unit and digit count
    alike (pydantic's regex engine has no look-ahead, so it is spelt out per unit)."""
    positive = re.compile(POSITIVE_DURATION_PATTERN)
    duration = re.compile(DURATION_PATTERN)
    samples = {"", "0", "1", "ms", "1s1h", "1m1m"}
    for unit, digits in DURATION_UNITS:
        for number in ("0", "1", "9", "0" * digits, "0" * (digits - 1) + "1", "1" + "0" * digits):
            samples |= {number + unit, "0h" + number + unit, number + unit + "1ms", "0s" + number}
            samples |= {"1y" + number + unit, number + unit + "0ms", "00" + number + unit}
    samples |= {"".join("0" * digits + unit for unit, digits in DURATION_UNITS)}
    samples |= {"".join("9" * digits + unit for unit, digits in DURATION_UNITS)}
    for text in sorted(samples):
        expected = bool(duration.match(text)) and bool(re.search("[1-9]", text))
        assert bool(positive.match(text)) == expected, text


def _enabled(value: Any) -> Monitoring:
    return Monitoring.model_validate({"enabled": value})


@pytest.mark.parametrize("value", [True, False, "auto"])
def test_monitoring_enabled_takes_true_false_or_auto(value):
    assert _enabled(value).enabled == value
    assert _enabled(value).chart_values(False)["enabled"] == value


@pytest.mark.parametrize("value", ["yes", "true", "on", "1", "Auto", "", 1, 0, None])
def test_monitoring_enabled_refuses_a_string_or_number_read_as_a_boolean(tmp_path, value):
    with pytest.raises(ValidationError):
        _enabled(value)
    written = "null" if value is None else repr(value)
    (line,) = _refusals(_stack_with(tmp_path, f"      enabled: {written}\n"))
    assert line.startswith("- site.monitoring.enabled: given "), line
    assert "allowed: auto, true or false" in line, line
