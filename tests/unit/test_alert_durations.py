"""Review rf2 F4: every duration a stack file gives (an alert's `for:` or window, the scrape
interval) follows Prometheus's own grammar (model.ParseDuration): units from the largest down,
each at most once, a value that fits. promtool refuses `1s1h`, `1m1m` ("not a valid duration
string") and `99999999999999999999y` ("duration out of range"); fedeploy let them through to
the rendered PrometheusRule, which the operator's CRD then refused whole."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fedeploy.config.loader import check_stack_file
from fedeploy.config.monitoring import DURATION_PATTERN, DURATION_UNITS, Monitoring
from fedeploy.errors import StackConfigError

INVALID = Path(__file__).resolve().parents[1] / "stack_files" / "invalid"
KEY = "site.monitoring.alerts.rules.IngestBrokerDisconnected.for"
_MS = {"y": 365 * 86400_000, "w": 7 * 86400_000, "d": 86400_000, "h": 3600_000}
_MS.update({"m": 60_000, "s": 1000, "ms": 1})


def _stack_with(tmp_path: Path, duration: str) -> Path:
    source = (INVALID / "Pulumi.alert-duration-in-words.yaml").read_text()
    path = tmp_path / "Pulumi.duration.yaml"
    path.write_text(source.replace("for: 5 minutes", f"for: {duration!r}"))
    return path


@pytest.mark.parametrize("duration", ["1s1h", "1m1m", "99999999999999999999y", "1ms1s", "0", ""])
def test_a_duration_prometheus_refuses_is_a_clear_error_naming_the_key(tmp_path, duration):
    path = _stack_with(tmp_path, duration)
    with pytest.raises(StackConfigError) as refused:
        check_stack_file(path, check_federation=False)
    (line,) = [line for line in str(refused.value).splitlines() if f"- {KEY}:" in line]
    assert f"given {duration!r}" in line, line
    assert "a Prometheus duration" in line and "from the largest down" in line, line


@pytest.mark.parametrize("duration", ["0s", "90s", "1h30m", "2d", "5ms", "1y2w3d4h5m6s7ms"])
def test_a_duration_in_prometheus_grammar_passes(tmp_path, duration):
    check_stack_file(_stack_with(tmp_path, duration), check_federation=False)
    rules = {"IngestBrokerDisconnected": {"for": duration}}
    settings: dict[str, object] = {"alerts": {"rules": rules}}
    if duration != "0s":  # a scrape interval is above zero (test_positive_durations.py)
        settings["scrape_interval"] = duration
    assert Monitoring.model_validate(settings)


def test_the_scrape_interval_follows_the_same_grammar(tmp_path):
    path = _stack_with(tmp_path, "5m")
    text = path.read_text()
    assert "      alerts:\n" in text
    path.write_text(
        text.replace("      alerts:\n", "      scrape_interval: 30s30s\n      alerts:\n")
    )
    with pytest.raises(StackConfigError) as refused:
        check_stack_file(path, check_federation=False)
    (line,) = [s for s in str(refused.value).splitlines() if "scrape_interval:" in s]
    assert "given '30s30s'" in line and "a Prometheus duration" in line, line


def test_the_largest_duration_the_pattern_takes_fits_prometheus_int64_nanoseconds():
    largest = "".join("9" * digits + unit for unit, digits in DURATION_UNITS)
    assert re.fullmatch(DURATION_PATTERN.strip("^$"), largest)
    milliseconds = sum(int("9" * digits) * _MS[unit] for unit, digits in DURATION_UNITS)
    assert milliseconds * 1_000_000 < 2**63 - 1
    # One more digit on any unit is refused.
    for unit, digits in DURATION_UNITS:
        assert not re.fullmatch(DURATION_PATTERN.strip("^$"), "1" + "0" * digits + unit)
