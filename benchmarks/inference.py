"""Prediction latency and throughput per batch size: through the HTTP server, beside the same
model called in-process (with request encoding, and bare: the ceiling).

    .venv/bin/python benchmarks/inference.py [--seconds 3] [--batch-sizes 1,8,64,512]

It trains a small model on the synthetic set, publishes it to S3 on loopback (moto), starts
`fedeploy-infer serve` as its own process and measures each path for a fixed time per batch
size. Where a GPU is visible the in-process and server figures are repeated on it. The
in-process paths take the batch parsed once into arrays (RequestArrays); the server receives the
JSON bytes (or, for the Arrow rows, the same requests as an Arrow IPC stream, answered in Arrow),
validates and parses them and writes its answer. /proc/loadavg is printed at the start and the
end. Goals, printed beside the figures
(from median latencies): encoding at most ENCODING_GOAL times the bare model, the server at
least SERVER_GOAL of the in-process rate.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
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


def measure(call: Callable[[], None], seconds: float) -> list[float]:
    """Latencies (s) of repeated calls for about `seconds`, after a short warm-up."""
    for _ in range(3):
        call()
    latencies = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(latencies) < 5:
        began = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - began)
    return latencies


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


def start_server(endpoint: str, device: str, threads: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        **({"OMP_NUM_THREADS": str(threads)} if threads else {}),
        "INFER_BUCKET": BUCKET,
        "INFER_S3_ENDPOINT_URL": endpoint,
        "INFER_DEVICE": device,
        "INFER_MAX_BATCH": "4096",
    }
    process = subprocess.Popen(
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
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz").status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not become ready in 120 s")


def row(path: str, device: str, batch: int, latencies: list[float]) -> str:
    p50, p99 = percentile(latencies, 50) * 1e3, percentile(latencies, 99) * 1e3
    rate = batch * len(latencies) / sum(latencies)
    return f"{path:<22} {device:<5} {batch:>6} {p50:>10.3f} {p99:>10.3f} {rate:>14,.0f}"


def verdicts(device: str, figures: dict[int, dict[str, list[float]]]) -> list[str]:
    """Each batch size's ratios beside their goals (from median latencies)."""
    lines = []
    for batch, f in figures.items():
        bare, encoded = percentile(f["bare"], 50), percentile(f["encoded"], 50)
        encoding = max(encoded - bare, 0.0) / bare
        line = (
            f"{device} batch {batch:>4}: encoding {(encoded - bare) * 1e3:.3f} ms = "
            f"{encoding:.1f}x the bare model's {bare * 1e3:.3f} ms (goal: at most "
            f"{ENCODING_GOAL:g}x: {'met' if encoding <= ENCODING_GOAL else 'NOT met'})"
        )
        for path in ("server", "arrow"):
            if path not in f:
                continue
            share = encoded / percentile(f[path], 50)
            name = "server JSON" if path == "server" else "server Arrow"
            line += (
                f"; {name} {share:.0%} of in-process (goal: at least {SERVER_GOAL:.0%}: "
                f"{'met' if share >= SERVER_GOAL else 'NOT met'})"
            )
        lines.append(line)
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    parser.add_argument("--batch-sizes", default="1,8,64,512")
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
            f"{args.seconds:g} s per figure; "
            f"started {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; load {loadavg()}"
        )
        print(
            f"{'path':<22} {'dev':<5} {'batch':>6} {'p50 ms':>10} {'p99 ms':>10} "
            f"{'forecasts/s':>14}"
        )
        summary = []
        for device in devices:
            loaded = load_model(client, BUCKET, settings.model_name, version, torch.device(device))
            figures: dict[int, dict[str, list[float]]] = {b: {} for b in sizes}
            for batch in sizes:
                head = arrays.head(batch)
                encoded = encode_arrays(loaded.spec, head)

                def bare(encoded=encoded, loaded=loaded, device=device) -> None:
                    run_model(loaded, encoded)
                    if device == "cuda":  # GPU calls return before the work is done
                        torch.cuda.synchronize()

                figures[batch]["bare"] = measure(bare, args.seconds)
                print(row("model, bare (ceiling)", device, batch, figures[batch]["bare"]))
                figures[batch]["encoded"] = measure(
                    lambda h=head, m=loaded: forecast_arrays(m, h), args.seconds
                )
                print(row("model + encoding", device, batch, figures[batch]["encoded"]))
            server, base = start_server(s3.endpoint.endpoint_url, device, args.threads)
            try:
                with httpx.Client(base_url=base, timeout=60) as http:
                    for batch in sizes:
                        if batch == 1:

                            def call() -> None:
                                http.post(
                                    "/v1/predict", content=single, headers=headers
                                ).raise_for_status()
                        else:

                            def call(content: bytes = batches[batch]) -> None:
                                http.post(
                                    "/v1/predict/batch", content=content, headers=headers
                                ).raise_for_status()

                        figures[batch]["server"] = measure(call, args.seconds)
                        print(row("server (HTTP, JSON)", device, batch, figures[batch]["server"]))

                        def arrow(content: bytes = arrow_bodies[batch]) -> None:
                            http.post(
                                "/v1/predict/batch", content=content, headers=arrow_headers
                            ).raise_for_status()

                        figures[batch]["arrow"] = measure(arrow, args.seconds)
                        print(row("server (HTTP, Arrow)", device, batch, figures[batch]["arrow"]))
            finally:
                os.kill(server.pid, signal.SIGTERM)
                server.wait(timeout=30)
            summary += verdicts(device, figures)
        print()
        print("\n".join(summary))
        print(f"load at the end {loadavg()}")
    finally:
        s3.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
