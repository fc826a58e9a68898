"""The federation's case study on one machine, in one command.

    .venv/bin/python examples/case-study/run.py [--out DIR] [--days N] [--stations N] [--wis2]

Starts on loopback: S3 (SeaweedFS, or moto where SeaweedFS is missing), PostgreSQL with
pgstac, the site's STAC API and a stand-in upstream STAC API with Sentinel-2-like items,
mosquitto. Then, through the ingestion service's own entry points, copies the upstream's
products into the site and consumes a generated edge stream into Parquet windows; trains and
publishes the model from those windows (Sentinel scenes from the site catalog as features);
serves it; prints a prediction; writes the plot of forecasts against observations and
persistence over the held-out period (the plot the model card shows). Everything stops at the
end, by pid.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
from edge_stream import WIS2_TOPIC, messages, publish, wis2_files, wis2_station
from fedeploy_inference.contract import VARIABLES
from fedeploy_inference.hourly import to_hourly
from fedeploy_inference.plot import place_text
from fedeploy_inference.registry import model_prefix
from fedeploy_inference.s3 import s3_client
from fedeploy_inference.settings import InferenceSettings
from fedeploy_inference.synthetic import SyntheticSpec, generate, scenes
from fedeploy_inference.train_from_store import record_dataset, train_and_publish
from fedeploy_inference.training import TrainConfig
from fedeploy_inference.window_store import list_windows, read_windows

from loopback import MosquittoBroker, PeerUnavailable, PostgresServer, StacApiServer
from loopback.asset_server import AssetServer
from loopback.data_host import DataHost
from loopback.processes import free_port
from loopback.s3 import MotoS3, SeaweedS3
from loopback.sentinel_upstream import COLLECTION, load, make_items

SITE = "demo"
BUCKET = "demo-site"
# Under the stand-in upstream's Sentinel-2 tiles (11-12.4 E, 46-47.2 N).
AREA = (11.1, 46.1, 12.3, 47.0)


def say(message: str) -> None:
    print(f"[case-study] {message}", flush=True)


def start_s3(stack: ExitStack, work: Path):
    try:
        store = SeaweedS3(work / "s3").start()
        kind = "SeaweedFS"
    except PeerUnavailable:
        store = MotoS3().start()
        kind = "moto"
    stack.callback(store.stop)
    store.create_bucket(BUCKET)
    say(f"S3 ({kind}) at {store.endpoint.endpoint_url}, bucket {BUCKET}")
    return store.endpoint


def cloud_cover_by_day(spec: SyntheticSpec) -> list[float]:
    """Cloud cover for the daily scenes (one footprint over every station, 10:30 UTC): the mean
    of the generator's own scenes over the stations (`synthetic.scenes`: the fronts' cloud
    shield). No observed value, least of all the rain of the hours a model forecasts, enters
    it, so what the Sentinel ablation measures is what the generator put there."""
    return [float(x) for x in np.mean([s.cloud_cover for s in scenes(spec).values()], axis=0)]


def demo_dataset_name(spec: SyntheticSpec) -> str:
    """The name the published plot and card give the demo's data (marked synthetic)."""
    return (
        f"fedeploy synthetic set ({spec.stations} stations, {spec.days} days, seed {spec.seed}) "
        "through the edge stream"
    )


def run_checked(argv: list[str], env: dict[str, str], what: str) -> str:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"{what} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done.stdout


def wait_for(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--stations", type=int, default=4)
    parser.add_argument(
        "--wis2",
        action="store_true",
        help="publish the stations as WIS2 notifications linking to BUFR files instead of "
        "fedeploy.observation/1 messages",
    )
    parser.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    with ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="fedeploy-case-study-"))
        stack.callback(shutil.rmtree, work, ignore_errors=True)  # runs last: peers stop first
        endpoint = start_s3(stack, work)
        os.environ.update(
            {
                "AWS_ACCESS_KEY_ID": endpoint.access_key_id,
                "AWS_SECRET_ACCESS_KEY": endpoint.secret_access_key,
            }
        )
        postgres = PostgresServer(work / "pg").start()
        stack.callback(postgres.remove)
        site_api = StacApiServer(postgres.create_database("site"), work / "site-api").start()
        stack.callback(site_api.stop)
        upstream_api = StacApiServer(
            postgres.create_database("upstream"), work / "upstream-api", name="upstream-api"
        ).start()
        stack.callback(upstream_api.stop)
        assets = AssetServer(work / "assets").start()
        stack.callback(assets.stop)
        broker = MosquittoBroker(work / "mqtt").start()
        stack.callback(broker.stop)
        say(f"catalog {site_api.url}, upstream {upstream_api.url}, MQTT 127.0.0.1:{broker.port}")

        spec = SyntheticSpec(stations=args.stations, days=args.days, area=AREA)
        windows = list(generate(spec))
        tables = [t for _, t in windows]

        # 1. Sentinel products: the upstream holds a scene a day; ingestion copies them.
        items = make_items(
            assets,
            args.days,
            {"B04": 4096},
            start=spec.start + timedelta(hours=10, minutes=30),
            cloud_cover=cloud_cover_by_day(spec),
        )
        load(upstream_api.url, items)
        ingest_env = {
            **os.environ,
            **endpoint.env(),
            "INGEST_SITE": SITE,
            "INGEST_BUCKET": BUCKET,
            "INGEST_CATALOG_URL": site_api.url,
            "INGEST_LOG_LEVEL": "WARNING",
        }
        period = (
            f"{spec.start:%Y-%m-%dT%H:%M:%SZ}/"
            f"{spec.start + timedelta(days=args.days):%Y-%m-%dT%H:%M:%SZ}"
        )
        sources = [
            {
                "name": "upstream",
                # The loopback upstream: its own host may resolve to 127.0.0.1.
                "privateHosts": ["127.0.0.1"],
                "url": upstream_api.url,
                "collections": [COLLECTION],
                "assets": ["B04"],
                "datetime": period,
            }
        ]
        report = run_checked(
            [sys.executable, "-m", "fedeploy_ingestion", "sentinel"],
            {**ingest_env, "INGEST_SOURCES": json.dumps(sources)},
            "fedeploy-ingest sentinel",
        )
        say(f"Sentinel products ingested: {json.dumps(json.loads(report))}")

        # 2. The edge stream: the ingestion consumer writes daily Parquet windows.
        probe_port = free_port()
        wis2_env: dict[str, str] = {}
        if args.wis2:
            served: dict[str, bytes] = {}
            host = DataHost(served)  # the WIS2 node's download host
            stack.callback(host.close)
            files, notes = wis2_files(tables, f"http://localhost:{host.port}")
            served.update(files)
            wis2_env = {
                "INGEST_STREAM_FORMAT": "wis2",
                "INGEST_MQTT_TOPICS": f"{WIS2_TOPIC}/#",
                "INGEST_WIS2_DOWNLOAD_HOSTS": '["localhost"]',
                "INGEST_WIS2_PRIVATE_HOSTS": '["localhost"]',
                "INGEST_WIS2_ALLOW_HTTP": "true",
                "INGEST_DEAD_LETTER_PREFIX": "dead-letter/wis2/",
            }
        consumer = subprocess.Popen(
            [sys.executable, "-m", "fedeploy_ingestion", "stream"],
            env={
                **ingest_env,
                **wis2_env,
                "INGEST_MQTT_HOST": "127.0.0.1",
                "INGEST_MQTT_PORT": str(broker.port),
                "INGEST_MQTT_TLS": "false",  # the loopback broker is plain MQTT
                "INGEST_WINDOW_SECONDS": "86400",
                "INGEST_WINDOW_GRACE_SECONDS": "0",
                "INGEST_FLUSH_IDLE_SECONDS": "2",
                "INGEST_MAX_PENDING_MESSAGES": "65535",
                "INGEST_HTTP_HOST": "127.0.0.1",
                "INGEST_HTTP_PORT": str(probe_port),
            },
        )
        stack.callback(stop_process, consumer)
        wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{probe_port}/readyz").status_code == 200,
            60,
            "the ingestion consumer to be ready",
        )
        if args.wis2:
            sent = publish("127.0.0.1", broker.port, notes)
            say(f"published {sent} WIS2 notifications (BUFR) from {args.stations} stations")
            expected = {replace(w, station=wis2_station(w.station)).key for w, _ in windows}
        else:
            sent = publish("127.0.0.1", broker.port, messages(SITE, tables))
            say(f"published {sent} edge observations from {args.stations} stations")
            expected = {w.key for w, _ in windows}
        client = s3_client(InferenceSettings(bucket=BUCKET, s3_endpoint_url=endpoint.endpoint_url))
        wait_for(
            lambda: {w.key for w in list_windows(client, BUCKET)} >= expected,
            600,
            f"the consumer to write {len(expected)} windows",
        )
        stop_process(consumer)
        stored = read_windows(client, BUCKET, list_windows(client, BUCKET))
        say(f"ingestion wrote {len(expected)} windows, {stored.num_rows} rows (published {sent})")

        # 3. Train on the ingested windows, Sentinel scenes from the site catalog as features.
        # The windows hold the synthetic set: recorded so, the plot and card say "(synthetic)".
        record_dataset(client, BUCKET, demo_dataset_name(spec), synthetic=True)
        settings = InferenceSettings(
            bucket=BUCKET,
            s3_endpoint_url=endpoint.endpoint_url,
            catalog_url=site_api.url,
            sentinel_collection=COLLECTION,
        )
        outcome = train_and_publish(
            settings,
            TrainConfig(epochs=args.epochs),
            note="case study: synthetic edge stream through ingestion",
        )
        version = outcome.version
        skill = outcome.metrics["skill"]
        say(
            f"published {settings.model_name}/{version}; skill against persistence "
            f"{skill['persistence']}, against climatology {skill['climatology']}"
        )

        # 4. Serve it and ask for a forecast.
        port = free_port()
        server = subprocess.Popen(
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
            env={
                **os.environ,
                "INFER_BUCKET": BUCKET,
                "INFER_S3_ENDPOINT_URL": endpoint.endpoint_url,
                "INFER_DEVICE": "auto",
            },
        )
        stack.callback(stop_process, server)
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: httpx.get(f"{base}/readyz").status_code == 200, 120, "the server")
        data = json.loads(
            client.get_object(
                Bucket=BUCKET, Key=model_prefix(settings.model_name, version) + "data.json"
            )["Body"].read()
        )
        places = data["station_places"]
        request, observed = prediction_request(to_hourly(stored), data)
        answer = httpx.post(f"{base}/v1/predict", json=request, timeout=30)
        answer.raise_for_status()
        forecast = answer.json()
        for line in forecast_table(forecast, request, observed, places[request["station"]]):
            print(line)
        (args.out / "prediction.json").write_text(json.dumps(forecast, indent=2))

        # 5. The plot and the card, as published with the version.
        prefix = model_prefix(settings.model_name, version)
        for name in ("forecast.png", "model-card.md", "metrics.json", "data.json"):
            body = client.get_object(Bucket=BUCKET, Key=prefix + name)["Body"].read()
            (args.out / name).write_bytes(body)
        say(
            f"wrote {args.out / 'forecast.png'} and the model card beside it "
            f"({time.monotonic() - started:.0f} s in all)"
        )
    return 0


def forecast_table(
    forecast: dict, request: dict, observed: list[tuple[float, float]], place: dict
) -> list[str]:
    """The printed forecast: the station with its place, then one line per lead. Each value
    describes an hour (mean temperature, the hour's rain) and is stamped at that hour's end
    (WMO): lead +k issued at t0 is the hour [t0 + (k-1) h, t0 + k h), valid at t0 + k h."""
    issued = datetime.fromisoformat(forecast["issued_at"].replace("Z", "+00:00"))
    anchor = next(
        o["air_temperature"] for o in reversed(request["observations"]) if "air_temperature" in o
    )
    lines = [
        f"forecast for station {forecast['station']} ({place_text(place)}) issued "
        f"{issued:%Y-%m-%dT%H:%MZ}; valid time: the end of the hour each value describes (UTC)",
        "  lead  valid time (UTC)   model T °C  persistence T °C  observed T °C  "
        "model rain mm  observed rain mm",
    ]
    for lead, obs in zip(forecast["forecast"], observed, strict=True):
        valid = issued + timedelta(hours=lead["lead_hours"])
        lines.append(
            f"  +{lead['lead_hours']}h   {valid:%Y-%m-%dT%H:%MZ}  {lead['air_temperature']:10.2f}"
            f"  {anchor:16.2f}  {obs[0]:13.2f}  {_amount(lead['precipitation']):>13}"
            f"  {obs[1]:16.2f}"
        )
    return lines


def _amount(value: float | None) -> str:
    """A forecast amount, or `absent` where the station has not reported it (null)."""
    return "absent" if value is None else f"{value:.2f}"


def prediction_request(series: dict, data: dict):
    """A request for the station the published plot shows (`plot_station` in data.json) at an
    hour of the held-out period, and what happened in the six hours after it."""
    split = datetime.fromisoformat(data["split"])
    origin = (split + timedelta(days=3)).replace(hour=6, tzinfo=UTC)
    station = data["plot_station"]
    st = series[station]
    first = st.hour_index(origin)
    observations = []
    for i in range(first - 24, first):
        row = {"time": (st.start + timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ")}
        row.update(
            {
                name: float(st.values[i, j])
                for j, name in enumerate(VARIABLES)
                if not np.isnan(st.values[i, j])
            }
        )
        observations.append(row)
    # Bin i is the hour [start + i h, start + (i+1) h): the hours of leads +1 .. +6.
    observed = [
        (
            st.values[i, VARIABLES.index("air_temperature")],
            st.values[i, VARIABLES.index("precipitation")],
        )
        for i in range(first, first + 6)
    ]
    request = {
        "station": station,
        "issued_at": origin.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "longitude": st.longitude,
        "latitude": st.latitude,
        "observations": observations,
    }
    return request, observed


if __name__ == "__main__":
    raise SystemExit(main())
