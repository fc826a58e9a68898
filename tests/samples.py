"""Data samples the tests share.

- `DATA`: the data.json record published beside a model (`fedeploy_inference.registry.publish`
  needs one); its figures are not what the tests that publish it check. Spread it to change a
  field (`{**DATA, "name": "hand set"}`), never edit it in place.
"""

from __future__ import annotations

DATA = {
    "source": "s3://b/observations/",
    "windows": 1,
    "rows": 1,
    "stations": ["syn-000"],
    "period": {"start": "2026-01-01", "end": "2026-03-01"},
    "samples": {"train": 1, "test": 1},
}
