"""Structured logs carry no secrets."""

from __future__ import annotations

import json
import logging

from fedeploy_ingestion.logs import JsonFormatter, redact


def test_credentials_are_masked_wherever_they_appear() -> None:
    text = (
        "GET https://user:p4ss@host/x failed; Authorization: Bearer eyJabc.def; "
        "password=hunter2&x=1 token: 'tok123'"
    )
    masked = redact(text)
    for secret in ("p4ss", "eyJabc.def", "hunter2", "tok123"):
        assert secret not in masked
    assert "https://***:***@host/x" in masked


def test_records_are_json_lines_with_extra_fields() -> None:
    record = logging.LogRecord(
        "fedeploy_ingestion", logging.WARNING, __file__, 1, "rejected %s", ("msg",), None
    )
    record.topic = "fedeploy/a/stations/s/observations"
    record.error = "https://u:secret@h failed"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "rejected msg"
    assert line["level"] == "WARNING"
    assert line["topic"] == "fedeploy/a/stations/s/observations"
    assert "secret" not in line["error"]
