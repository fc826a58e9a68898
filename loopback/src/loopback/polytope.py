"""A stand-in for ECMWF's Polytope REST API (DestinE's digital-twin data), on 127.0.0.1.

Shaped like the real one as polytope-client (0.7.10) drives it, in our own values:
- `POST /api/v1/requests/<collection>` with `{"verb": "retrieve", "request": "<YAML>"}` and
  `Authorization: Bearer <key>` (or `EmailKey <email>:<key>`): 202 with `Location:
  /api/v1/requests/<id>` and `{"status": "queued", "message": ...}`; 401 for a wrong key,
  403 for a collection the key may not read, 400 for a request it refuses, each with
  `{"message": ...}` as the server words its errors;
- `GET /api/v1/requests/<id>`: 202 `{"status": "processing"}` a number of times, then 303 to
  the result (`/api/v1/downloads/<id>`, or the same path on `result_base`, another host name
  of this server); 400 `{"message": ...}` once a request failed while processing;
- `GET /api/v1/downloads/<id>`: the result's GRIB2 bytes with Range support (AssetServer).
The GRIB2 messages are written with ecCodes (loopback.ecmwf_open_data.grib2_message), one per
date, time, step and param of the request. Every request's method, host, path and
Authorization header are recorded in `seen`.
"""

from __future__ import annotations

import itertools
import json
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from loopback.asset_server import AssetServer
from loopback.ecmwf_open_data import grib2_message

API = "/api/v1"
# Parameter ids DestinE requests use, as the ecCodes short names the encoder takes.
PARAM_IDS = {"167": "2t", "151": "msl", "165": "10u", "166": "10v", "228": "tp", "168": "2d"}


def _values(value: Any) -> list[str]:
    """A MARS value as its list of words ('2t/msl' and ['2t', 'msl'] alike)."""
    words = value if isinstance(value, list) else str(value).split("/")
    return [str(word).strip() for word in words if str(word).strip()]


def encode(request: dict[str, Any]) -> bytes:
    """The GRIB2 messages of `request`: one per date, time, step and param (ecCodes)."""
    messages = []
    dates = _values(request.get("date", "20260101"))
    times = _values(request.get("time", "0000"))
    steps = _values(request.get("step", "0"))
    params = _values(request.get("param", "2t"))
    for date, time, step, param in itertools.product(dates, times, steps, params):
        run = datetime.strptime(f"{date.replace('-', '')}{int(time):04d}", "%Y%m%d%H%M")
        messages.append(grib2_message(PARAM_IDS.get(param, param), run, int(step)))
    return b"".join(messages)


class PolytopeServer(AssetServer):
    """Polytope's retrieve flow for the key `key` (and `email`, for EmailKey), on 127.0.0.1."""

    def __init__(
        self,
        root: Path,
        key: str,
        *,
        email: str | None = None,
        collections: tuple[str, ...] = ("destination-earth",),
        polls: int = 2,
    ) -> None:
        super().__init__(root)
        handler: Any = self._server.RequestHandlerClass
        handler.do_POST = lambda request: self._serve(request)
        self._key, self._email = key, email
        self.collections = collections
        self.polls = polls
        # where a finished request's 303 points: this server, or `result_base` (another name)
        self.result_base: str | None = None
        self._requests: dict[str, dict[str, Any]] = {}
        self._refusals: dict[str, tuple[int, str]] = {}
        self._failing: dict[str, str] = {}
        self._counter = itertools.count(1)
        # (method, Host header, path, Authorization header) of every request, in order
        self.seen: list[tuple[str, str, str, str | None]] = []
        # the requests submitted (their decoded YAML), in order
        self.submitted: list[dict[str, Any]] = []

    @property
    def address(self) -> str:
        """What polytope-client's `address` is: the server's root, without /api/v1."""
        return self.url

    def refuse(self, param: str, status: int, message: str) -> None:
        """Answer a submitted request naming `param` with `status` and `{"message": ...}`."""
        self._refusals[param] = (status, message)

    def fail_processing(self, param: str, message: str) -> None:
        """Accept a request naming `param`, then fail it while polled (400, `message`)."""
        self._failing[param] = message

    def _json(self, handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any], **headers: str) -> None:  # fmt: skip
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _authorized(self, authorization: str | None) -> bool:
        accepted = {f"Bearer {self._key}"}
        if self._email:
            accepted.add(f"EmailKey {self._email}:{self._key}")
        return authorization in accepted

    def _serve(self, handler: BaseHTTPRequestHandler, body: bool = True) -> None:
        path = unquote(urlsplit(handler.path).path)
        authorization = handler.headers.get("Authorization")
        with self._lock:
            self.seen.append(
                (handler.command, handler.headers.get("Host", ""), path, authorization)
            )
        if path.startswith(f"{API}/downloads/"):
            # The result: served to whoever holds its URL (a staging area's presigned link).
            super()._serve(handler, body)
            return
        if not self._authorized(authorization):
            self._record(path, None, 401)
            self._json(handler, 401, {"message": "Unauthorized: invalid or missing key"})
            return
        if handler.command == "POST" and path.startswith(f"{API}/requests/"):
            self._submit(handler, path.removeprefix(f"{API}/requests/"))
        elif handler.command == "GET" and path.startswith(f"{API}/requests/"):
            self._poll(handler, path.removeprefix(f"{API}/requests/"))
        else:
            self._record(path, None, 404)
            self._json(handler, 404, {"message": f"Not found: {path}"})

    def _submit(self, handler: BaseHTTPRequestHandler, collection: str) -> None:
        path = f"{API}/requests/{collection}"
        length = int(handler.headers.get("Content-Length", 0))
        try:
            document = json.loads(handler.rfile.read(length))
            request = yaml.safe_load(document["request"])
            if document.get("verb") != "retrieve" or not isinstance(request, dict):
                raise ValueError("verb must be retrieve and request a YAML mapping")
        except (ValueError, KeyError, TypeError, yaml.YAMLError) as error:
            self._record(path, None, 400)
            self._json(handler, 400, {"message": f"Invalid request: {error}"})
            return
        if collection not in self.collections:
            self._record(path, None, 403)
            self._json(handler, 403, {"message": f"Not authorized to access collection {collection}"})  # fmt: skip
            return
        with self._lock:
            self.submitted.append(request)
        for param in _values(request.get("param", "")):
            if param in self._refusals:
                status, message = self._refusals[param]
                self._record(path, None, status)
                self._json(handler, status, {"message": message})
                return
        request_id = f"req-{next(self._counter):04d}"
        failing = [
            self._failing[p] for p in _values(request.get("param", "")) if p in self._failing
        ]
        self._requests[request_id] = {"request": request, "polls": 0, "failed": failing[:1]}
        if not failing:
            result = self.root / f"{API}/downloads/{request_id}".lstrip("/")
            result.parent.mkdir(parents=True, exist_ok=True)
            result.write_bytes(encode(request))
        self._record(path, None, 202)
        self._json(
            handler,
            202,
            {"status": "queued", "message": "Request queued"},
            Location=f"{self.url}{API}/requests/{request_id}",
        )

    def _poll(self, handler: BaseHTTPRequestHandler, request_id: str) -> None:
        path = f"{API}/requests/{request_id}"
        state = self._requests.get(request_id)
        if state is None:
            self._record(path, None, 404)
            self._json(handler, 404, {"message": f"Request {request_id} not found"})
            return
        state["polls"] += 1
        if state["polls"] <= self.polls:
            self._record(path, None, 202)
            self._json(handler, 202, {"status": "processing", "message": "Gathering data"})
        elif state["failed"]:
            self._record(path, None, 400)
            self._json(handler, 400, {"message": f"Request failed with error: {state['failed'][0]}"})  # fmt: skip
        else:
            self._record(path, None, 303)
            base = self.result_base or self.url
            handler.send_response(303)
            handler.send_header("Location", f"{base}{API}/downloads/{request_id}")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
