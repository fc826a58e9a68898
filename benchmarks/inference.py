"""Prediction latency and throughput per batch size: through the HTTP server, beside the same
model called in-process (with request encoding, and bare: the ceiling).

    .venv/bin/python benchmarks/inference.py [--seconds 3] [--rounds 3] [--batch-sizes 1,8,64,512]

It trains a small model on the synthetic set, publishes it to S3 on loopback (moto), starts
`fedeploy-infer serve` as its own process and measures each path for a fixed time per batch
size, in ROUNDS rounds that alternate in-process and server (so a change of the machine's load
falls on both). Where a GPU is visible the figures are repeated on it. The in-process paths take
the batch parsed once into arrays (RequestArrays); the server receives the JSON bytes (or, for
the Arrow rows, the same requests as an Arrow IPC stream, answered in Arrow), validates and
parses them and writes its answer. One request at a time on both sides (no concurrency), torch
on the same number of threads; the client is one kept-alive connection that writes each request
in one send and reads the answer by its Content-Length (Connection: a few hundredths of a
millisecond a call, where http.client takes about 0.2 ms and httpx about 1 ms of their own), so
the server is what is measured. Beside each wall-clock median the processor time per call is printed (the server
process's, from /proc, and the in-process caller's): on shared cores it says what the work
costs, where the wall clock also says how long the scheduler made it wait. /proc/loadavg is
printed at the start and the end. Goals, printed beside the figures (from median latencies):
encoding at most ENCODING_GOAL times the bare model, the server at least SERVER_GOAL of the
in-process rate.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial

import numpy as np
import pyarrow as pa
import torch
from fedeploy_inference.api_schema import PredictionRequest
from fedeploy_inference.arrow_api import ARROW_STREAM, table_from_requests, to_stream
from fedeploy_inference.contract import VARIABLES
from fedeploy_inference.hourly import to_hourly
from fedeploy_inference.predictor import (
    RequestArrays,
    encode_arrays,
    forecast_arrays,
    run_model,
)
from fedeploy_inference.registry import load_model, publish
from fedeploy_inference.s3 import s3_client
from fedeploy_inference.settings import InferenceSettings
from fedeploy_inference.synthetic import SyntheticSpec, generate
from fedeploy_inference.training import TrainConfig, train

from loopback import MotoS3
from loopback.processes import free_port

BUCKET = "bench"
ENCODING_GOAL = 5.0  # encoding at most 5x the bare model, per batch
SERVER_GOAL = 0.50  # the server at least half the in-process rate (model + encoding)
logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto logs every request


def loadavg() -> str:
    """/proc/loadavg's 1, 5 and 15 minute figures (the benchmark shares its cores)."""
    try:
        with open("/proc/loadavg") as file:
            return " ".join(file.read().split()[:3])
    except OSError:
        return "unknown"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


@dataclass
class Figure:
    """One path's calls at one batch size: latencies (s) and processor time (s) over them."""

    latencies: list[float] = field(default_factory=list)
    cpu: float = 0.0

    def cpu_ms(self) -> float:
        """Processor time per call, ms."""
        return self.cpu / max(len(self.latencies), 1) * 1e3


def measure(
    call: Callable[[], None], seconds: float, cpu: Callable[[], float], into: Figure
) -> None:
    """Repeated calls for about `seconds` after a short warm-up, their latencies and the
    processor time `cpu()` counted over them added to `into`."""
    for _ in range(3):
        call()
    count = 0
    end = time.perf_counter() + seconds
    before = cpu()
    while time.perf_counter() < end or count < 5:
        began = time.perf_counter()
        call()
        into.latencies.append(time.perf_counter() - began)
        count += 1
    into.cpu += cpu() - before


def requests_from(series, count: int) -> list[dict]:
    """`count` requests, each 24 hourly observations of a station before an hour."""
    out = []
    stations = sorted(series)
    for k in range(count):
        st = series[stations[k % len(stations)]]
        first = 48 + (k * 7) % (st.values.shape[0] - 80)
        obs = []
        for i in range(first - 24, first):
            row = {"time": (st.start + timedelta(hours=i)).isoformat()}
            row.update(
                {
                    n: float(st.values[i, j])
                    for j, n in enumerate(VARIABLES)
                    if not np.isnan(st.values[i, j])
                }
            )
            obs.append(row)
        if not any("air_temperature" in o for o in obs[-6:]):
            obs[-1]["air_temperature"] = 5.0
        out.append(
            {
                "station": st.station,
                "issued_at": (st.start + timedelta(hours=first)).isoformat(),
                "longitude": st.longitude,
                "latitude": st.latitude,
                "observations": obs,
            }
        )
    return out


class Connection:
    """One kept-alive HTTP/1.1 connection on loopback, as lean as a client can be: a request is
    written in one send, its answer read by its Content-Length into one reused buffer. The
    stdlib's http.client parses each answer's headers with the email package (about 0.2 ms of
    the client's processor time a call, counted in every server figure's wall clock); this
    costs a few hundredths of a millisecond, so the server is what is measured."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.buffer = bytearray(1 << 20)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> int:
        """One request; its status, the answer read whole. A connection the server closed (its
        keep-alive timeout, while the in-process paths ran) is opened again once."""
        lines = [f"{method} {path} HTTP/1.1", f"host: 127.0.0.1:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"content-length: {len(body or b'')}")
        message = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
        for attempt in (1, 2):
            if self.sock is None:
                self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                self.sock.sendall(message)
                return self._answer()
            except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _answer(self) -> int:
        assert self.sock is not None
        view, have = memoryview(self.buffer), 0
        while (end := self.buffer.find(b"\r\n\r\n", 0, have)) < 0:
            got = self.sock.recv_into(view[have:])
            if not got:
                raise ConnectionResetError("the server closed the connection")
            have += got
        head = bytes(view[:end]).decode("latin-1").lower().split("\r\n")
        status = int(head[0].split()[1])
        fields = dict(line.split(": ", 1) for line in head[1:])
        size = end + 4 + int(fields["content-length"])
        if size > len(self.buffer):
            self.buffer.extend(bytes(size - len(self.buffer)))
            view = memoryview(self.buffer)
        while have < size:
            got = self.sock.recv_into(view[have:size])
            if not got:
                raise ConnectionResetError("the server closed the connection")
            have += got
        if fields.get("connection") == "close":
            self.close()
        return status


class Server:
    """`fedeploy-infer serve` as its own process, called over one kept-alive connection."""

    def __init__(self, endpoint: str, device: str, threads: int) -> None:
        port = free_port()
        env = {
            **os.environ,
            **({"OMP_NUM_THREADS": str(threads)} if threads else {}),
            "INFER_BUCKET": BUCKET,
            "INFER_S3_ENDPOINT_URL": endpoint,
            "INFER_DEVICE": device,
            "INFER_MAX_BATCH": "4096",
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fedeploy_inference",
                "--log-level",
                "WARNING",
                "serve",
                "--port",
                str(port),
            ],
            env=env,
        )
        self.connection = Connection(port)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if self.call("GET", "/readyz", None, {}) == 200:
                    return
            except OSError:
                self.connection.close()
            time.sleep(0.2)
        self.stop()
        raise SystemExit("the server did not become ready in 120 s")

    def call(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> int:
        """One request; its status (the answer read whole)."""
        return self.connection.request(method, path, body, headers)

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> None:
        """A request that must be answered 200."""
        if (status := self.call("POST", path, body, headers)) != 200:
            raise SystemExit(f"POST {path} answered {status}")

    def cpu_seconds(self) -> float:
        """The server process's processor time so far (user + system, all its threads)."""
        with open(f"/proc/{self.process.pid}/stat") as file:
            fields = file.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.connection.close()
        os.kill(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)


PATHS = {
    "bare": "model, bare (ceiling)",
    "encoded": "model + encoding",
    "server": "server (HTTP, JSON)",
    "arrow": "server (HTTP, Arrow)",
}


def row(path: str, device: str, batch: int, figure: Figure) -> str:
    latencies = figure.latencies
    p50, p99 = percentile(latencies, 50) * 1e3, percentile(latencies, 99) * 1e3
    rate = batch * len(latencies) / sum(latencies)
    return (
        f"{PATHS[path]:<22} {device:<5} {batch:>6} {p50:>10.3f} {p99:>10.3f} {rate:>14,.0f} "
        f"{figure.cpu_ms():>12.3f}"
    )


def verdicts(device: str, figures: dict[int, dict[str, Figure]]) -> list[str]:
    """Each batch size's ratios beside their goals (from median latencies), and the processor
    time per call behind them."""
    lines = []
    for batch, f in figures.items():
        bare = percentile(f["bare"].latencies, 50)
        encoded = percentile(f["encoded"].latencies, 50)
        encoding = max(encoded - bare, 0.0) / bare
        line = (
            f"{device} batch {batch:>4}: encoding {(encoded - bare) * 1e3:.3f} ms = "
            f"{encoding:.1f}x the bare model's {bare * 1e3:.3f} ms (goal: at most "
            f"{ENCODING_GOAL:g}x: {'met' if encoding <= ENCODING_GOAL else 'NOT met'})"
        )
        for path in ("server", "arrow"):
            if path not in f:
                continue
            share = encoded / percentile(f[path].latencies, 50)
            name = "server JSON" if path == "server" else "server Arrow"
            line += (
                f"; {name} {share:.0%} of in-process (goal: at least {SERVER_GOAL:.0%}: "
                f"{'met' if share >= SERVER_GOAL else 'NOT met'}; processor time "
                f"{f[path].cpu_ms():.2f} ms a call against {f['encoded'].cpu_ms():.2f} ms "
                f"in process: {f['encoded'].cpu_ms() / max(f[path].cpu_ms(), 1e-9):.0%})"
            )
        lines.append(line)
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    parser.add_argument("--batch-sizes", default="1,8,64,512")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds per batch size, each path measured for SECONDS / ROUNDS in each, in turn",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch's CPU threads, in process and in the server (OMP_NUM_THREADS); 0: torch's "
        "default. One by default: on two shared cores a second thread waits for a core at every "
        "call and the medians measure the scheduler",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [int(x) for x in args.batch_sizes.split(",")]

    s3 = MotoS3().start()
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    try:
        s3.create_bucket(BUCKET)
        settings = InferenceSettings(bucket=BUCKET, s3_endpoint_url=s3.endpoint.endpoint_url)
        client = s3_client(settings)
        series = to_hourly(pa.concat_tables([t for _, t in generate(SyntheticSpec(days=60))]))
        result = train(series, TrainConfig(epochs=5), torch.device("cpu"))
        version = publish(
            client,
            BUCKET,
            settings.model_name,
            result,
            {
                "source": "synthetic",
                "windows": 0,
                "rows": 0,
                "stations": sorted(series),
                "period": {"start": "", "end": ""},
                "samples": {"train": result.train_samples, "test": len(result.test)},
            },
        )
        bodies = requests_from(series, max(sizes))
        # The in-process paths take the batch parsed once into arrays; the server parses the
        # JSON bytes itself (the client's encoding, done here once, is not the server's cost).
        arrays = RequestArrays.from_requests([PredictionRequest.model_validate(b) for b in bodies])
        single = json.dumps(bodies[0]).encode()
        batches = {b: json.dumps({"requests": bodies[:b]}).encode() for b in sizes}
        headers = {"content-type": "application/json"}
        # Arrow IPC streams of the same requests, one row per observation (the batch client's
        # encoding, done here once like the JSON bytes).
        arrow_bodies = {b: to_stream(table_from_requests(bodies[:b])) for b in sizes}
        arrow_headers = {"content-type": ARROW_STREAM, "accept": ARROW_STREAM}
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        print(
            f"model {settings.model_name}/{version}; torch {torch.__version__}; "
            f"{os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}; "
            f"{args.seconds:g} s per figure in {args.rounds} alternating rounds; one request "
            f"at a time; started {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; load {loadavg()}"
        )
        print(
            f"{'path':<22} {'dev':<5} {'batch':>6} {'p50 ms':>10} {'p99 ms':>10} "
            f"{'forecasts/s':>14} {'cpu ms/call':>12}"
        )
        summary = []
        for device in devices:
            loaded = load_model(client, BUCKET, settings.model_name, version, torch.device(device))
            server = Server(s3.endpoint.endpoint_url, device, args.threads)
            try:
                figures = {b: {path: Figure() for path in PATHS} for b in sizes}
                for batch in sizes:
                    head = arrays.head(batch)
                    encoded = encode_arrays(loaded.spec, head)

                    def bare(encoded=encoded, loaded=loaded, device=device) -> None:
                        run_model(loaded, encoded)
                        if device == "cuda":  # GPU calls return before the work is done
                            torch.cuda.synchronize()

                    calls: dict[str, tuple[Callable[[], None], Callable[[], float]]] = {
                        "bare": (bare, time.process_time),
                        "encoded": (
                            lambda h=head, m=loaded: forecast_arrays(m, h),
                            time.process_time,
                        ),
                        "server": (
                            partial(server.post, "/v1/predict", single, headers)
                            if batch == 1
                            else partial(server.post, "/v1/predict/batch", batches[batch], headers),
                            server.cpu_seconds,
                        ),
                        "arrow": (
                            partial(
                                server.post, "/v1/predict/batch", arrow_bodies[batch], arrow_headers
                            ),
                            server.cpu_seconds,
                        ),
                    }
                    for _ in range(args.rounds):
                        for path, (call, cpu) in calls.items():
                            measure(call, args.seconds / args.rounds, cpu, figures[batch][path])
                    for path in PATHS:
                        print(row(path, device, batch, figures[batch][path]), flush=True)
            finally:
                server.stop()
            summary += verdicts(device, figures)
        print()
        print("\n".join(summary))
        print(f"load at the end {loadavg()}")
    finally:
        s3.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
