"""Data samples the tests share.

- `DATA`: the data.json record published beside a model (`fedeploy_inference.registry.publish`
  needs one); its figures are not what the tests that publish it check. Spread it to change a
  field (`{**DATA, "name": "hand set"}`), never edit it in place.
- `request_for`: a prediction request (PredictionRequest's JSON shape) from a station's hourly
  series: its 24 observations before the origin.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
from fedeploy_inference.contract import VARIABLES

DATA = {
    "source": "s3://b/observations/",
    "windows": 1,
    "rows": 1,
    "stations": ["syn-000"],
    "period": {"start": "2026-01-01", "end": "2026-03-01"},
    "samples": {"train": 1, "test": 1},
}


def request_for(
    series: dict[str, Any], station: str, origin: datetime, scene: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The request of `station` at `origin` (aware, a whole hour in the series): its 24 hourly
    observations before it (missing values left out), its place, and `scene` if given."""
    st = series[station]
    first = st.hour_index(origin) - 24
    observations = []
    for i in range(first, first + 24):
        row = {"time": (st.start + timedelta(hours=i)).isoformat()}
        for j, name in enumerate(VARIABLES):
            if not np.isnan(st.values[i, j]):
                row[name] = float(st.values[i, j])
        observations.append(row)
    body = {
        "station": station,
        "issued_at": origin.isoformat(),
        "longitude": st.longitude,
        "latitude": st.latitude,
        "observations": observations,
    }
    if scene:
        body["scene"] = scene
    return body
