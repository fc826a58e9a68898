"""A stand-in for ECMWF's open-data server (data.ecmwf.int/forecasts), on 127.0.0.1.

The tree has the real one's shape, in our own values:
`/forecasts/<yyyymmdd>/<HH>z/<model>/<resol>/<stream>/<yyyymmddHH0000>-<step>h-<stream>-<type>.grib2`
and, beside each GRIB2 file, its `.index`: one JSON object a line per GRIB message (`param`,
`levtype`, `step`, ... and `_offset`, `_length` in bytes), which clients read to fetch only the
messages they want with Range requests. The GRIB2 messages are written with ecCodes (tiny
regular lat-lon grids). Beside serving files with Range support (AssetServer), the server can
answer a path with a redirect or with an error status a number of times, as the real one does
under load (503) or for a run not yet published (404).
"""

from __future__ import annotations

import json
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import unquote, urlsplit

from loopback.asset_server import AssetServer

# What the stand-in writes for each run: (levtype, levelist) per parameter.
SURFACE = {"2t", "msl", "10u", "10v", "tp", "sp", "tcc", "2d"}


def grib2_message(
    param: str, run: datetime, step: int, levelist: int | None = None, grid: float | None = None
) -> bytes:
    """One GRIB2 message of `param` (an ecCodes short name), forecast `step` hours from `run`,
    written with ecCodes (ValueError for a name it does not know): on ecCodes' sample grid (a
    2-degree patch, 1.7 kB), or on a global grid of `grid` degrees (0.25: 3 MB)."""
    import eccodes
    import numpy

    sample = "regular_ll_pl_grib2" if levelist else "regular_ll_sfc_grib2"
    handle = eccodes.codes_grib_new_from_samples(sample)
    try:
        eccodes.codes_set(handle, "dataDate", int(f"{run:%Y%m%d}"))
        eccodes.codes_set(handle, "dataTime", run.hour * 100)
        eccodes.codes_set(handle, "stepRange", str(step))
        if levelist:
            eccodes.codes_set(handle, "level", levelist)
        try:
            eccodes.codes_set(handle, "shortName", param)
        except eccodes.CodesInternalError as error:
            raise ValueError(f"ecCodes knows no GRIB2 short name {param!r}: {error}") from None
        points = eccodes.codes_get(handle, "numberOfPoints")
        if grid:
            columns, rows = round(360 / grid), round(180 / grid) + 1
            eccodes.codes_set_key_vals(
                handle,
                f"Ni={columns},Nj={rows},latitudeOfFirstGridPointInDegrees=90,"
                "longitudeOfFirstGridPointInDegrees=0,latitudeOfLastGridPointInDegrees=-90,"
                f"longitudeOfLastGridPointInDegrees={360 - grid},"
                f"iDirectionIncrementInDegrees={grid},jDirectionIncrementInDegrees={grid}",
            )
            points = columns * rows
        # Values that do not compress away (a real field's noise), the same on every call.
        values = numpy.random.default_rng(step).normal(280.0, 10.0, points)
        eccodes.codes_set_values(handle, values)
        return bytes(eccodes.codes_get_message(handle))
    finally:
        eccodes.codes_release(handle)


def data_path(
    run: datetime,
    step: int,
    *,
    model: str = "ifs",
    resol: str = "0p25",
    stream: str = "oper",
    type: str = "fc",
) -> str:
    """The GRIB2 file's path under the server's root, as data.ecmwf.int names it."""
    return (
        f"forecasts/{run:%Y%m%d}/{run:%H}z/{model}/{resol}/{stream}/"
        f"{run:%Y%m%d%H}0000-{step}h-{stream}-{type}.grib2"
    )


def publish(
    root: Path,
    run: datetime,
    step: int,
    params: list[str],
    *,
    model: str = "ifs",
    resol: str = "0p25",
    stream: str = "oper",
    type: str = "fc",
    levels: tuple[int, ...] = (500, 850),
    grid: float | None = None,
) -> tuple[str, list[dict[str, object]]]:
    """Write one GRIB2 file (a message per parameter, per level for upper-air ones; on a global
    grid of `grid` degrees if given) and its `.index` under `root`; its path and the index's
    entries."""
    relative = data_path(run, step, model=model, resol=resol, stream=stream, type=type)
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, object]] = []
    offset = 0
    with path.open("wb") as data:
        for param in params:
            for level in (None,) if param in SURFACE else levels:
                message = grib2_message(param, run, step, level, grid)
                entry: dict[str, object] = {
                    "domain": "g",
                    "date": f"{run:%Y%m%d}",
                    "time": f"{run:%H}00",
                    "expver": "0001",
                    "class": "od" if model == "ifs" else "ai",
                    "type": type,
                    "stream": stream,
                    "step": str(step),
                    "levtype": "sfc" if level is None else "pl",
                    "param": param,
                }
                if level is not None:
                    entry["levelist"] = str(level)
                entry.update({"_offset": offset, "_length": len(message)})
                data.write(message)
                offset += len(message)
                entries.append(entry)
    index = path.with_suffix(".index")
    index.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return relative, entries


class OpenDataServer(AssetServer):
    """The open-data tree under `root` over HTTP with Range support, redirects and errors."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self._redirects: dict[str, str] = {}
        self._failures: dict[str, list[int]] = {}
        self.authorization: list[str | None] = []

    @property
    def base(self) -> str:
        """What `ecmwf.opendata.Client(source=...)` is given: the `/forecasts` root."""
        return f"{self.url}/forecasts"

    def redirect(self, relative: str, location: str) -> None:
        """Answer every GET of `relative` with a 302 to `location`."""
        self._redirects["/" + relative] = location

    def fail(self, relative: str, status: int, times: int = 1) -> None:
        """Answer the next `times` requests of `relative` with `status`."""
        with self._lock:
            self._failures.setdefault("/" + relative, []).extend([status] * times)

    def _serve(self, handler: BaseHTTPRequestHandler, body: bool = True) -> None:
        path = unquote(urlsplit(handler.path).path)
        self.authorization.append(handler.headers.get("Authorization"))
        with self._lock:
            failures = self._failures.get(path)
            status = failures.pop(0) if failures else None
        if status is not None:
            self._record(path, handler.headers.get("Range"), status)
            handler.send_response(status)
            handler.send_header("Content-Length", "0")
            handler.send_header("Retry-After", "0")
            handler.end_headers()
            return
        if path in self._redirects:
            self._record(path, handler.headers.get("Range"), 302)
            handler.send_response(302)
            handler.send_header("Location", self._redirects[path])
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        super()._serve(handler, body)
