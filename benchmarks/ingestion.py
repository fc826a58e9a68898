"""Ingestion throughput on loopback peers, each figure beside the ceiling measured in the same run.

    .venv/bin/python benchmarks/ingestion.py [--observations 20000] [--stations 20]
                                             [--asset-mib 48] [--assets 3] [--rounds 5]
                                             [--paths edge,wis2,sentinel]

Edge path: observations published at QoS 1 to mosquitto are consumed by the service's own
consumer (in this process), grouped into windows, written to SeaweedFS as Parquet and
registered in stac-fastapi-pgstac; the rate counts from the consumer's start to the last
acknowledgement. Ceilings: the broker alone (a Python subscriber acknowledging at once) and
S3 PUTs of window-sized objects alone.

WIS2 path: WIS2 notification messages (each linking to a BUFR file of 10 stations at one
time, encoded with ecCodes, served by a loopback HTTP server) are consumed by the same consumer
with INGEST_STREAM_FORMAT=wis2: notification -> guarded download -> digest check -> BUFR
decode -> window -> S3 + catalog. Its rate is set beside the edge path's (goal: at least 30 %).

Sentinel path: assets served by a local HTTP server (sendfile) and found through a search
answered from memory (loopback.sentinel_upstream.StaticSearch, as a CDN serves a cached STAC
search: a remote upstream costs the site none of its processor) are copied by `SentinelRun`
(multipart, digest verified) and registered in the site's stac-fastapi-pgstac. Ceilings:
reading the same assets over HTTP alone, and S3 multipart uploads of the same bytes alone. Copy
and multipart ceiling alternate over `--rounds` rounds (default 5; new items each round, and
each round's run searches only its own), so a change in the machine's load falls on both; the
figure is the median of the rounds' ratios, each round printed beside it with the load
average. A warm-up round (not measured) goes first. `--paths sentinel` measures this path
alone.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median

import httpx
import paho.mqtt.client as mqtt
from fedeploy_ingestion.catalog import CatalogClient
from fedeploy_ingestion.metrics import Metrics
from fedeploy_ingestion.object_store import MiB, ObjectStore, parts_in_flight, s3_client
from fedeploy_ingestion.observation import Observation
from fedeploy_ingestion.sentinel import SentinelRun
from fedeploy_ingestion.settings import IngestSettings
from fedeploy_ingestion.stream import Consumer
from fedeploy_ingestion.window_table import MEDIA_TYPE, to_parquet
from fedeploy_ingestion.window_writer import WindowWriter

from loopback import MosquittoBroker, PostgresServer, SeaweedS3, StacApiServer
from loopback.asset_server import AssetServer
from loopback.data_host import DataHost
from loopback.sentinel_upstream import COLLECTION, StaticSearch, make_items

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' BUFR encoder
from services.ingestion.tests.bufr_encode import Station, encode  # noqa: E402
from services.ingestion.tests.wis2_build import notification, payload  # noqa: E402

WIS2_GOAL = 0.30  # of the edge path's observations per second
EDGE_GOAL = 0.50  # of the broker-alone rate (QoS 1, a Python subscriber)
SENTINEL_GOAL = 0.80  # of the S3-multipart-alone rate, same part size and parts in flight
PART_SIZE = IngestSettings.model_fields["part_size_mib"].default * MiB  # the service's default

T0 = datetime(2024, 6, 1, tzinfo=UTC)
WINDOW_SECONDS = 600
SPACING_SECONDS = 12  # one observation per station every 12 s: 50 per window


def messages(count: int, stations: int) -> list[tuple[str, bytes]]:
    """`count` valid observation messages, stations interleaved, in time order."""
    result = []
    for index in range(count):
        station = f"st-{index % stations:03d}"
        moment = T0 + timedelta(seconds=SPACING_SECONDS * (index // stations))
        body = {
            "schema": "fedeploy.observation/1",
            "station": station,
            "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "position": {"longitude": 11.0 + (index % stations) / 100, "latitude": 46.5},
            "variables": {
                "air_temperature": {"value": 15.0 + index % 7, "unit": "degC"},
                "relative_humidity": {"value": 60.0, "unit": "%"},
                "air_pressure": {"value": 1010.0, "unit": "hPa"},
            },
        }
        result.append(
            (f"fedeploy/bench/stations/{station}/observations", json.dumps(body).encode())
        )
    return result


def publisher(broker: MosquittoBroker, name: str) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def publish_all(broker: MosquittoBroker, batch: list[tuple[str, bytes]]) -> float:
    """Publish at QoS 1; seconds until the broker acknowledged the last one."""
    client = publisher(broker, f"bench-publisher-{time.time_ns()}")
    began = time.perf_counter()
    sent = [client.publish(topic, payload, qos=1) for topic, payload in batch]
    for info in sent:
        info.wait_for_publish(timeout=120)
    elapsed = time.perf_counter() - began
    client.disconnect()
    client.loop_stop()
    return elapsed


def broker_ceiling(broker: MosquittoBroker, batch: list[tuple[str, bytes]]) -> float:
    """Messages per second through the broker to a Python subscriber acknowledging at once."""
    received = threading.Event()
    count = [0]

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        client.ack(message.mid, message.qos)
        count[0] += 1
        if count[0] == len(batch):
            received.set()

    subscriber = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"bench-ceiling-{time.time_ns()}",
        protocol=mqtt.MQTTv5,
        manual_ack=True,
    )
    subscriber.on_message = on_message
    subscriber.connect(broker.host, broker.port)
    subscriber.loop_start()
    subscriber.subscribe("ceiling/#", qos=1)
    time.sleep(0.3)
    began = time.perf_counter()
    publish_all(broker, [(f"ceiling/{topic}", payload) for topic, payload in batch])
    received.wait(timeout=300)
    elapsed = time.perf_counter() - began
    subscriber.disconnect()
    subscriber.loop_stop()
    return len(batch) / elapsed


def backlog_settings(env: dict[str, str]) -> dict[str, object]:
    """Settings both stream benchmarks share: windows written as soon as they are idle."""
    return {
        "window_seconds": WINDOW_SECONDS,
        "window_grace_seconds": 0,
        "flush_idle_seconds": 1.0,
        "max_pending_messages": 65_535,
        "s3_endpoint_url": env["INGEST_S3_ENDPOINT_URL"],
    }


def consume_backlog(
    settings: IngestSettings,
    store: ObjectStore,
    catalog_url: str,
    broker: MosquittoBroker,
    batch: list[tuple[str, bytes]],
    metrics: Metrics,
) -> tuple[float, float]:
    """Seconds the consumer takes to acknowledge `batch`, and seconds to publish it.

    The persistent session is registered first, then the batch published while the consumer
    is away: the backlog waits in the broker and the consumer's rate is what is measured."""

    def consumer() -> Consumer:
        writer = WindowWriter(store, CatalogClient(catalog_url), "bench", metrics)
        return Consumer(settings, store, writer, metrics)

    first = consumer()
    first.connect()
    deadline = time.monotonic() + 10
    while not first.ready and time.monotonic() < deadline:
        time.sleep(0.05)
    first.stop()  # a planned disconnect: no reconnect, no warning
    first.client.disconnect()
    first.client.loop_stop()
    publish_seconds = publish_all(broker, batch)
    running = consumer()
    worker = threading.Thread(target=running.run)
    began = time.perf_counter()
    worker.start()
    try:
        while metrics.messages_acknowledged._value.get() < len(batch):
            time.sleep(0.02)
            if time.perf_counter() - began > 600:
                raise SystemExit("the consumer did not acknowledge every message in 10 minutes")
        return time.perf_counter() - began, publish_seconds
    finally:
        running.stop()
        worker.join()


def edge(
    args: argparse.Namespace,
    broker: MosquittoBroker,
    store: ObjectStore,
    catalog_url: str,
    env: dict[str, str],
) -> dict[str, float]:
    batch = messages(args.observations, args.stations)
    settings = IngestSettings(
        site="bench",
        bucket=store.bucket,
        catalog_url=catalog_url,
        mqtt_host=broker.host,
        mqtt_port=broker.port,
        mqtt_tls=False,  # the loopback broker is plain MQTT
        mqtt_topics="fedeploy/bench/stations/+/observations",
        mqtt_client_id="bench-consumer",
        **backlog_settings(env),
    )
    metrics = Metrics()
    elapsed, publish_seconds = consume_backlog(settings, store, catalog_url, broker, batch, metrics)
    windows = metrics.items_written.labels("observations")._value.get()

    # Ceilings, measured after the run so they do not compete with it.
    broker_rate = broker_ceiling(broker, batch[: min(len(batch), 20_000)])
    rows = [
        Observation(
            "ceiling",
            T0 + timedelta(seconds=SPACING_SECONDS * i),
            {"air_temperature": 15.0, "relative_humidity": 60.0, "air_pressure": 1010.0},
            11.0,
            46.5,
        )
        for i in range(WINDOW_SECONDS // SPACING_SECONDS)
    ]
    body = to_parquet(rows)
    puts, began_puts = 200, time.perf_counter()
    for index in range(puts):
        store.put(f"ceiling/put-{index}.parquet", body, MEDIA_TYPE)
    put_rate = puts / (time.perf_counter() - began_puts)
    return {
        "observations": len(batch),
        "seconds": elapsed,
        "rate": len(batch) / elapsed,
        "windows": windows,
        "window_rate": windows / elapsed,
        "publish_rate": len(batch) / publish_seconds,
        "broker_rate": broker_rate,
        "put_rate": put_rate,
        "put_bytes": len(body),
        "observations_per_window": len(batch) / max(windows, 1),
    }


def wis2(
    args: argparse.Namespace,
    broker: MosquittoBroker,
    store: ObjectStore,
    catalog_url: str,
    env: dict[str, str],
) -> dict[str, float]:
    per_file = 10
    files: dict[str, bytes] = {}
    for index in range(args.wis2_files):
        moment = T0 + timedelta(seconds=SPACING_SECONDS * index)
        stations = [
            Station(
                moment,
                wigos=f"B{n:03d}",
                latitude=46.5,
                longitude=11.0 + n / 100,
                values={"airTemperature": 288.15, "nonCoordinatePressure": 101000.0},
            )
            for n in range(per_file)
        ]
        files[f"/synop/{index}.bufr4"] = encode(stations)
    host = DataHost(files)
    topic = "origin/a/wis2/xx-bench/data/core/weather/surface-based-observations/synop"
    batch = [
        (topic, payload(notification(data, f"http://localhost:{host.port}{path}", data_id=path)))
        for path, data in files.items()
    ]
    settings = IngestSettings(
        site="bench",
        bucket=store.bucket,
        catalog_url=catalog_url,
        mqtt_host=broker.host,
        mqtt_port=broker.port,
        mqtt_tls=False,  # the loopback broker is plain MQTT
        mqtt_topics=f"{topic}/#,{topic}",
        mqtt_client_id="bench-wis2-consumer",
        stream_format="wis2",
        wis2_download_hosts=["localhost"],
        wis2_private_hosts=["localhost"],
        wis2_allow_http=True,
        **backlog_settings(env),
    )
    metrics = Metrics()
    try:
        elapsed, _ = consume_backlog(settings, store, catalog_url, broker, batch, metrics)
    finally:
        host.close()
    dead = sum(m.value for f in metrics.dead_letters.collect() for m in f.samples)
    return {
        "notifications": len(batch),
        "observations": len(batch) * per_file,
        "seconds": elapsed,
        "rate": len(batch) * per_file / elapsed,
        "dead_letters": dead,
    }


def processor_seconds(roots: list[int]) -> float:
    """Processor seconds (user + system) so far of this process and of every process that
    descends from it or from `roots` (the peers: SeaweedFS, the STAC APIs, PostgreSQL), read
    from /proc; 0.0 where there is no /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    seconds: dict[int, float] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = entry.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        pid = int(entry.parent.name)
        parents[pid], seconds[pid] = int(fields[1]), (int(fields[11]) + int(fields[12])) / tick
    total = 0.0
    for pid, spent in seconds.items():
        ancestor, hops = pid, 0
        while ancestor not in roots and ancestor in parents and hops < 32:
            ancestor, hops = parents[ancestor], hops + 1
        if ancestor in roots:
            total += spent
    return total


def postgres_pids(postgres: PostgresServer) -> list[int]:
    """The postmaster's pid (its first line of postmaster.pid; pg_ctl detaches it from us)."""
    try:
        return [int((postgres.data_dir / "postmaster.pid").read_text().split()[0])]
    except (OSError, ValueError, IndexError):
        return []


def sentinel_settings(
    store: ObjectStore, catalog_url: str, env: dict[str, str], upstream_url: str, window: str
) -> IngestSettings:
    """A Sentinel run's settings: B04 of the loopback upstream's items in `window`."""
    return IngestSettings(
        site="bench",
        bucket=store.bucket,
        catalog_url=catalog_url,
        s3_endpoint_url=env["INGEST_S3_ENDPOINT_URL"],
        sources=[
            {
                "name": "upstream",
                # The loopback upstream: its own host may resolve to 127.0.0.1.
                "privateHosts": ["127.0.0.1"],
                "url": upstream_url,
                "collections": [COLLECTION],
                "datetime": window,
                "assets": ["B04"],
            }
        ],
    )


def sentinel_round(
    store: ObjectStore,
    catalog_url: str,
    env: dict[str, str],
    upstream_url: str,
    items: list[dict],
    number: int,
    window: str,
    roots: list[int],
) -> dict[str, float]:
    """One round: the copy of `items` by SentinelRun, then the two ceilings on the same bytes.

    The run searches `window` (a STAC interval holding this round's items only, as a CronJob's
    rolling window holds its day): the items of earlier rounds are not searched and skipped
    again, so every round does the same work. Besides the rates, the processor seconds the
    copy and the multipart ceiling spend, this process and the peers (`roots`) together: on
    shared cores that figure moves far less with the other jobs than the rates do."""
    settings = sentinel_settings(store, catalog_url, env, upstream_url, window)
    # The run's clients (the guarded download client's TLS context, the catalog's) are made
    # before the clock starts, as the ceiling's S3 client is: a CronJob makes them once a run.
    run = SentinelRun(settings, store, CatalogClient(catalog_url), Metrics())
    spent, began = processor_seconds(roots), time.perf_counter()
    report = run.run()
    elapsed = time.perf_counter() - began
    copy_cpu = processor_seconds(roots) - spent
    if report.failed or report.registered != len(items):
        raise SystemExit(f"the Sentinel run failed: {report}")
    total = report.bytes_copied

    # Ceiling 1: the upstream's HTTP alone.
    began = time.perf_counter()
    with httpx.Client() as http:
        for item in items:
            with http.stream("GET", item["assets"]["B04"]["href"]) as response:
                for _ in response.iter_bytes(MiB):
                    pass
    http_rate = total / (time.perf_counter() - began)

    # Ceiling 2: S3 multipart uploads of the same sizes from memory, without the copy's
    # reading and hashing: the service's default part size, as many parts in flight as its
    # copies hold at most (COPY_MEMORY_BUDGET), one stream of parts over all objects.
    part = os.urandom(PART_SIZE)
    size = int(items[0]["assets"]["B04"]["file:size"])
    spent, began = processor_seconds(roots), time.perf_counter()
    with ThreadPoolExecutor(parts_in_flight(PART_SIZE)) as pool:
        uploads = []
        for index in range(len(items)):
            key = f"ceiling/multipart-{number}-{index}"
            upload_id = store.client.create_multipart_upload(Bucket=store.bucket, Key=key)[
                "UploadId"
            ]

            def send(number: int, body: bytes, key: str = key, upload_id: str = upload_id):
                answer = store.client.upload_part(
                    Bucket=store.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=body,
                )
                return {"PartNumber": number, "ETag": answer["ETag"]}

            bodies = [part[: min(PART_SIZE, size - start)] for start in range(0, size, PART_SIZE)]
            futures = [pool.submit(send, n, b) for n, b in enumerate(bodies, 1)]
            uploads.append((key, upload_id, futures))
        for key, upload_id, futures in uploads:
            store.client.complete_multipart_upload(
                Bucket=store.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": [f.result() for f in futures]},
            )
    s3_rate = total / (time.perf_counter() - began)
    s3_cpu = processor_seconds(roots) - spent
    return {
        "cpu": copy_cpu,
        "s3_cpu": s3_cpu,
        "load": os.getloadavg()[0],
        "bytes": total,
        "seconds": elapsed,
        "rate": total / elapsed,
        "http_rate": http_rate,
        "s3_rate": s3_rate,
        "items": len(items),
    }


def sentinel(
    args: argparse.Namespace,
    work: Path,
    postgres: PostgresServer,
    store: ObjectStore,
    catalog_url: str,
    env: dict[str, str],
) -> dict[str, float]:
    assets = AssetServer(work / "assets").start()
    # The upstream's search answered from memory, as a CDN serves a cached STAC search: a real
    # upstream is remote and costs the site none of its processor, where a stac-fastapi process
    # and PostgreSQL answering each round's search on the same two cores were counted as the
    # copy's (0.03-0.04 processor seconds a round). The copy's own side of the search (pystac-
    # client, the address guard, the paging checks) is unchanged and on the clock.
    # (It answers with TCP_NODELAY, as a CDN or uvicorn does: stop 32's timeline.)
    upstream = StaticSearch().start()

    def window(start: datetime, count: int) -> str:
        end = start + timedelta(days=count) - timedelta(seconds=1)  # make_items: one a day
        return f"{start:%Y-%m-%dT%H:%M:%SZ}/{end:%Y-%m-%dT%H:%M:%SZ}"

    try:
        # As `fedeploy-ingest sentinel` does before its runs: what the process made so far is
        # kept out of the collector's full passes (gc.freeze), the ceiling's rounds alike (a
        # full pass over the benchmark's 154,000 objects, 0.09-0.11 s, fell in round 3's copy).
        gc.freeze()
        # Warm-up, not measured: a whole round (the copy of `--assets` items of the rounds'
        # size, then both ceilings), so what happens once (imports, the site collection, the
        # store's checksum probe, the first connections and the catalog's first backends, the
        # part buffers of two reading copies, SeaweedFS's first writes to each volume) is not
        # counted in the first measured round. With one item copied before, round 1 was the
        # lowest of its run in four runs of four (its copy 0.1-0.4 processor seconds above the
        # later rounds': SeaweedFS, the catalog's PostgreSQL and this process alike).
        start = datetime(2024, 5, 1, 10, 30, tzinfo=UTC)
        items = make_items(assets, args.assets, {"B04": args.asset_mib * MiB}, start=start)
        upstream.add(items)
        roots = [os.getpid(), *postgres_pids(postgres)]
        sentinel_round(
            store, catalog_url, env, upstream.url, items, -1, window(start, args.assets), roots
        )
        rounds = []
        for number in range(args.rounds):
            # New items each round (a day after the last round's): a run copies only those.
            start = datetime(2024, 6, 1, 10, 30, tzinfo=UTC) + timedelta(days=number * args.assets)
            items = make_items(assets, args.assets, {"B04": args.asset_mib * MiB}, start=start)
            upstream.add(items)
            rounds.append(
                sentinel_round(
                    store,
                    catalog_url,
                    env,
                    upstream.url,
                    items,
                    number,
                    window(start, args.assets),
                    roots,
                )
            )
        ratios = [r["rate"] / r["s3_rate"] for r in rounds]
        middle = sorted(range(len(rounds)), key=lambda i: ratios[i])[len(rounds) // 2]
        return {**rounds[middle], "ratio": median(ratios), "rounds": rounds}
    finally:
        upstream.stop()
        assets.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--observations", type=int, default=20_000)
    parser.add_argument("--stations", type=int, default=20)
    parser.add_argument("--wis2-files", type=int, default=300)
    parser.add_argument("--asset-mib", type=int, default=48)
    parser.add_argument("--assets", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5, help="Sentinel copy/ceiling rounds")
    parser.add_argument(
        "--paths",
        default="edge,wis2,sentinel",
        help="comma-separated paths to measure (edge, wis2, sentinel); WIS2 is set beside edge",
    )
    args = parser.parse_args()
    paths = set(args.paths.split(","))
    if not paths <= {"edge", "wis2", "sentinel"} or ("wis2" in paths and "edge" not in paths):
        parser.error("--paths: edge, wis2 (with edge) and sentinel")

    with tempfile.TemporaryDirectory(prefix="fedeploy-bench-") as directory:
        work = Path(directory)
        postgres = PostgresServer(work / "pg").start()
        s3 = SeaweedS3(work / "s3").start()
        broker = MosquittoBroker(work / "mqtt").start()
        site = StacApiServer(postgres.create_database("bench_site"), work / "site").start()
        try:
            s3.create_bucket("bench")
            # Room for the run's 1.6 GiB before the clock: SeaweedFS otherwise replaces a full
            # 1 GiB volume in the middle of a round (round 4's copy, every run), a pause that
            # a cloud store never makes the copy or the ceiling wait for.
            s3.grow_volumes("bench", 4)
            env = s3.endpoint.env()
            os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
            store = ObjectStore(s3_client(env["INGEST_S3_ENDPOINT_URL"], "", "auto"), "bench")
            e = edge(args, broker, store, site.url, env) if "edge" in paths else None
            w = wis2(args, broker, store, site.url, env) if "wis2" in paths else None
            s = (
                sentinel(args, work, postgres, store, site.url, env)
                if "sentinel" in paths
                else None
            )
        finally:
            site.stop()
            broker.stop()
            s3.stop()
            postgres.remove()

    cores = os.cpu_count()
    print(
        f"fedeploy ingestion benchmark (loopback peers, {cores} cores, Python "
        f"{sys.version.split()[0]}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())})"
    )
    print()
    if e is not None:
        print("edge observations, broker -> consumer -> S3 (Parquet) + catalog (STAC item):")
        print(
            f"  {e['rate']:>10,.0f} observations/s  ({e['observations']:,} in {e['seconds']:.1f} s; "
            f"{e['windows']:.0f} window writes, {e['window_rate']:.0f}/s, "
            f"{e['observations_per_window']:.0f} observations each)"
        )
        print(
            f"  ceiling, broker alone (QoS 1, Python subscriber acknowledging at once): "
            f"{e['broker_rate']:,.0f} messages/s"
        )
        print(
            f"  ceiling, S3 PUT alone ({e['put_bytes']:,}-byte window objects): "
            f"{e['put_rate']:,.0f} PUT/s"
        )
        print(f"  (publisher into the broker: {e['publish_rate']:,.0f} messages/s)")
        edge_share = e["rate"] / e["broker_rate"]
        print(
            f"  {edge_share:.0%} of the broker-alone rate (goal: at least {EDGE_GOAL:.0%}: "
            f"{'met' if edge_share >= EDGE_GOAL else 'NOT met'})"
        )
        print()
    if w is not None and e is not None:
        print(
            "WIS2 notifications -> download -> BUFR decode -> S3 (Parquet) + catalog (10 obs/file):"
        )
        share = w["rate"] / e["rate"]
        print(
            f"  {w['rate']:>10,.0f} observations/s  ({w['observations']:,.0f} in "
            f"{w['notifications']:,.0f} notifications, {w['seconds']:.1f} s; "
            f"{w['dead_letters']:.0f} dead letters)"
        )
        print(
            f"  {share:.0%} of the edge path's rate (goal: at least {WIS2_GOAL:.0%}: "
            f"{'met' if share >= WIS2_GOAL else 'NOT met'})"
        )
        print()
    if s is not None:
        print("Sentinel asset copies, upstream HTTP -> S3 multipart (digest verified) + catalog:")
        print(
            f"  {s['rate'] / MiB:>10,.1f} MiB/s  ({s['bytes'] / MiB:,.0f} MiB in {s['items']:.0f} "
            f"assets, {s['seconds']:.1f} s)"
        )
        print(f"  ceiling, upstream HTTP read alone: {s['http_rate'] / MiB:,.1f} MiB/s")
        print(
            f"  ceiling, S3 multipart upload alone ({PART_SIZE // MiB} MiB parts, "
            f"{parts_in_flight(PART_SIZE)} in flight): {s['s3_rate'] / MiB:,.1f} MiB/s"
        )
        for number, r in enumerate(s["rounds"], 1):
            print(
                f"    round {number}: copy {r['rate'] / MiB:,.1f} MiB/s, multipart alone "
                f"{r['s3_rate'] / MiB:,.1f} MiB/s: {r['rate'] / r['s3_rate']:.0%} "
                f"(load average {r['load']:.1f}); processor seconds, this process and the "
                f"peers: copy {r['cpu']:.2f}, multipart alone {r['s3_cpu']:.2f}"
            )
        copy_share = s["ratio"]
        print(
            f"  {copy_share:.0%} of the multipart-alone rate, median of {len(s['rounds'])} rounds "
            f"(goal: at least {SENTINEL_GOAL:.0%}: {'met' if copy_share >= SENTINEL_GOAL else 'NOT met'})"
        )
        work = median(r["s3_cpu"] / r["cpu"] for r in s["rounds"] if r["cpu"] > 0)
        print(
            f"  processor seconds: the multipart ceiling spends {work:.0%} of what the copy "
            "spends on the same bytes (median of the rounds; the other jobs on the cores move "
            "it far less than the rates)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
