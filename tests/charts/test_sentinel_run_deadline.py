"""The Sentinel Job's deadline reaches the service as INGEST_RUN_DEADLINE_SECONDS (review
copyfix28 F1), and the HTTP timeout is at most an hour in the stack file and the chart's schema
as in the service (F3: 1e10 or inf overflowed every request's socket timeout)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from fedeploy.charts import ChartValuesError
from fedeploy.config.services import Sentinel
from tests.charts.test_sentinel_copy_settings import SOURCE, sentinel_env, values_of


def test_the_jobs_deadline_reaches_the_services_run_deadline(
    charts_dir: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fedeploy_ingestion.settings import IngestSettings

    values = values_of()
    assert sentinel_env(charts_dir, values)["INGEST_RUN_DEADLINE_SECONDS"] == "21600"
    values["sentinel"]["activeDeadlineSeconds"] = 7200
    env = sentinel_env(charts_dir, values)
    assert env["INGEST_RUN_DEADLINE_SECONDS"] == "7200"
    monkeypatch.setenv("INGEST_RUN_DEADLINE_SECONDS", str(env["INGEST_RUN_DEADLINE_SECONDS"]))
    assert IngestSettings().run_deadline_seconds == 7200


def test_the_chart_takes_an_http_timeout_of_at_most_an_hour(charts_dir: Any) -> None:
    values = values_of()
    values["sentinel"]["httpTimeoutSeconds"] = 3600
    assert sentinel_env(charts_dir, values)["INGEST_HTTP_TIMEOUT_SECONDS"] == "3600"
    values["sentinel"]["httpTimeoutSeconds"] = 1e10
    with pytest.raises(ChartValuesError, match="httpTimeoutSeconds"):
        sentinel_env(charts_dir, values)


@pytest.mark.parametrize("value", [1e10, float("inf"), "inf", 3601])
def test_the_stack_file_refuses_an_http_timeout_above_an_hour(value: object) -> None:
    with pytest.raises(ValidationError, match="http_timeout_seconds") as refused:
        Sentinel.model_validate({"sources": [SOURCE], "http_timeout_seconds": value})
    assert "less than or equal to 3600" in str(refused.value)
    assert Sentinel.model_validate({"sources": [SOURCE], "http_timeout_seconds": 3600})


def test_the_chart_refuses_a_job_deadline_the_service_would_refuse(charts_dir: Any) -> None:
    """The deadline reaches the workers as INGEST_RUN_DEADLINE_SECONDS, at most a week there
    (review last28 F5: a longer one rendered, then every pod exited with a config error)."""
    from fedeploy_ingestion.settings import MAX_RUN_DEADLINE_SECONDS

    values = values_of()
    values["sentinel"]["activeDeadlineSeconds"] = MAX_RUN_DEADLINE_SECONDS
    assert sentinel_env(charts_dir, values)["INGEST_RUN_DEADLINE_SECONDS"] == "604800"
    values["sentinel"]["activeDeadlineSeconds"] = MAX_RUN_DEADLINE_SECONDS + 1
    with pytest.raises(ChartValuesError, match="activeDeadlineSeconds"):
        sentinel_env(charts_dir, values)
