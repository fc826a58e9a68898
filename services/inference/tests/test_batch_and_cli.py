"""Batch prediction runs and the command line, against S3 on loopback."""

import io
import json
from datetime import UTC, datetime

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from fedeploy_inference.batch import Area, run_batch
from fedeploy_inference.catalog import forecast_item
from fedeploy_inference.cli import main
from fedeploy_inference.registry import publish
from fedeploy_inference.s3 import s3_client
from fedeploy_inference.training import predict
from fedeploy_inference.window_store import write_windows

from tests.samples import DATA

HOUR = 3_600_000_000


def _read(client, bucket, key):
    return pq.read_table(io.BytesIO(client.get_object(Bucket=bucket, Key=key)["Body"].read()))


def test_batch_run_forecasts_the_area_and_matches_the_model(settings, trained, small_data):
    client = s3_client(settings)
    write_windows(client, settings.bucket, small_data.windows)
    publish(client, settings.bucket, settings.model_name, trained, DATA)
    start, end = datetime(2026, 2, 22, tzinfo=UTC), datetime(2026, 2, 23, tzinfo=UTC)
    # Stations sit at 5, 10 and 15 degE: this box holds the first two.
    outcome = run_batch(settings, Area(4.0, 40.0, 11.0, 55.0), start, end)
    table = _read(client, settings.bucket, outcome.key)
    assert outcome.stations == 2 and set(table["station"].to_pylist()) == {"syn-000", "syn-001"}
    assert outcome.rows == table.num_rows and table.num_rows % 6 == 0
    assert table.num_rows > 2 * 20 * 6, "most hours of the day have a usable context"
    assert not outcome.registered, "no catalog configured"

    # The same origins through the in-memory model give the same numbers.
    test = trained.test
    rows = np.flatnonzero(
        (test.station == "syn-001")
        & (test.origin_us >= start.timestamp() * 1e6)
        & (test.origin_us < end.timestamp() * 1e6)
    )
    expected = predict(trained.model, test.features[rows], test.anchor[rows], torch.device("cpu"))
    got = {}
    for rec in table.to_pylist():
        if rec["station"] == "syn-001":
            got[(int(rec["issued_at"].timestamp() * 1e6), rec["lead_hours"])] = rec[
                "air_temperature"
            ]
    for k, row in enumerate(rows):
        for lead in range(6):
            assert got[(int(test.origin_us[row]), lead + 1)] == pytest.approx(
                expected[k, lead, 0], abs=1e-4
            )

    again = run_batch(settings, Area(4.0, 40.0, 11.0, 55.0), start, end)
    assert again.key == outcome.key, "a repeated run writes the same object"
    assert _read(client, settings.bucket, again.key).equals(table)


def test_batch_period_must_be_whole_hours(settings):
    with pytest.raises(ValueError, match="batch start"):
        run_batch(
            settings,
            Area(0, 0, 1, 1),
            datetime(2026, 1, 1, 0, 30, tzinfo=UTC),
            datetime(2026, 1, 2, tzinfo=UTC),
        )


def test_area_must_be_ordered():
    with pytest.raises(ValueError, match="west < east"):
        Area(10, 0, 5, 1)


def test_forecast_item_points_at_the_object():
    item = forecast_item(
        "station-forecasts",
        "run-1",
        (5, 45, 15, 52),
        datetime(2026, 4, 1, tzinfo=UTC),
        datetime(2026, 4, 2, tzinfo=UTC),
        "s3://b/forecasts/m/v/run-1.parquet",
        "m",
        "v",
        datetime(2026, 4, 3, tzinfo=UTC),
    )
    assert item["assets"]["data"] == {
        "href": "s3://b/forecasts/m/v/run-1.parquet",
        "type": "application/vnd.apache.parquet",
        "roles": ["data"],
    }
    assert item["properties"]["start_datetime"] == "2026-04-01T00:00:00Z"
    assert item["bbox"] == [5, 45, 15, 52]


def test_command_line_generates_trains_and_runs_a_batch(settings, monkeypatch, capsys):
    monkeypatch.setenv("INFER_BUCKET", settings.bucket)
    monkeypatch.setenv("INFER_S3_ENDPOINT_URL", settings.s3_endpoint_url)
    monkeypatch.setenv("INFER_DEVICE", "cpu")
    assert main(["generate", "--stations", "2", "--days", "20"]) == 0
    assert json.loads(capsys.readouterr().out)["windows"] == 40
    assert main(["train", "--epochs", "10"]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["skill"]["persistence"]["air_temperature"] > 0
    code = main(
        [
            "batch",
            "--bbox",
            "0,40,20,55",
            "--start",
            "2026-01-18T00:00:00Z",
            "--end",
            "2026-01-18T06:00:00Z",
        ]
    )
    assert code == 0
    outcome = json.loads(capsys.readouterr().out)
    assert outcome["key"].startswith(f"forecasts/station-forecast/{trained['version']}/")


def test_command_line_errors_are_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.delenv("INFER_BUCKET", raising=False)
    assert main(["train"]) == 2
    assert "INFER_BUCKET" in capsys.readouterr().err


def test_a_bad_ablation_seed_count_is_named(settings, monkeypatch, capsys):
    monkeypatch.setenv("INFER_BUCKET", settings.bucket)
    monkeypatch.setenv("INFER_S3_ENDPOINT_URL", settings.s3_endpoint_url)
    assert main(["train", "--ablation-seeds", "0"]) == 2
    assert "ablation_seeds: 0 given" in capsys.readouterr().err


def test_training_on_an_empty_bucket_says_what_to_do(settings, monkeypatch, capsys):
    monkeypatch.setenv("INFER_BUCKET", settings.bucket)
    monkeypatch.setenv("INFER_S3_ENDPOINT_URL", settings.s3_endpoint_url)
    assert main(["train"]) == 2
    assert "no window" in capsys.readouterr().err
