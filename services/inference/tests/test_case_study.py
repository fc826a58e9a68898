"""The one-command case study runs end to end (short period): real peers, ingestion, training,
serving, the prediction and the plot."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fedeploy_inference.model_card import dataset_title

SCRIPT = Path(__file__).resolve().parents[3] / "examples" / "case-study" / "run.py"


def _peers_missing() -> str | None:
    from loopback import PeerUnavailable
    from loopback.postgres import postgres_bindir

    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        return "mosquitto is not installed (apt-get install -y mosquitto)"
    try:
        postgres_bindir()
    except PeerUnavailable as error:
        return str(error)
    return None


@pytest.mark.integration
@pytest.mark.slow
def test_case_study_runs_and_writes_the_plot_and_a_prediction(tmp_path, skip_or_fail):
    missing = _peers_missing()
    if missing:
        skip_or_fail(missing)
    run = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--days",
            "30",
            "--stations",
            "3",
            "--epochs",
            "10",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert "ingestion wrote 90 windows" in run.stdout
    assert (tmp_path / "forecast.png").read_bytes().startswith(b"\x89PNG")
    assert "(forecast.png)" in (tmp_path / "model-card.md").read_text()
    prediction = json.loads((tmp_path / "prediction.json").read_text())
    assert [f["lead_hours"] for f in prediction["forecast"]] == [1, 2, 3, 4, 5, 6]
    data = json.loads((tmp_path / "data.json").read_text())
    assert data["sentinel_scenes"] > 0
    # The plot and card say the data are synthetic; the printed forecast is for the station
    # the plot shows, named with its place.
    assert data["synthetic"] is True
    assert dataset_title(data) in (tmp_path / "model-card.md").read_text()
    assert "synthetic" in dataset_title(data).lower()
    station = data["plot_station"]
    assert prediction["station"] == station
    assert f"forecast for station {station} (" in run.stdout
    assert set(data["station_places"][station]) == {"latitude", "longitude", "elevation"}
