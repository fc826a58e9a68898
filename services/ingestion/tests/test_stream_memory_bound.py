"""Inputs built to exhaust memory, sent to the real stream process running under the chart's
memory limit (512Mi, as an RLIMIT_DATA bound through prlimit): a `Content-Encoding: gzip, gzip`
bomb, a gzip bomb, a BUFR subset bomb and a 150 MiB MQTT publish, then a good notification.
Each bomb ends as a dead letter with its reason (the oversized publish is discarded by the
broker, told the consumer's maximum packet size); the process never dies and stores the good
one."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import httpx
import pytest
from fedeploy_ingestion.object_store import ObjectStore

from loopback import MosquittoBroker, SeaweedS3
from loopback.processes import Daemon, free_port, wait_until
from services.ingestion.tests.bufr_encode import Station, encode, encode_message
from services.ingestion.tests.encoded_host import EncodedHost, MiB, gzip_of_zeros, stacked_gzip_bomb
from services.ingestion.tests.field_corpus import T0
from services.ingestion.tests.test_field_integration import send, stored
from services.ingestion.tests.test_stream_integration import stream_env
from services.ingestion.tests.test_wis2_integration import ORIGIN, WIS2_ENV
from services.ingestion.tests.wis2_build import notification, payload

pytestmark = pytest.mark.integration

CHART_MEMORY_LIMIT = 512 * MiB  # charts/ingestion/values.yaml: stream.resources.limits.memory


def peak_rss(pid: int) -> int:
    """VmHWM of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for {pid}")


def test_memory_bombs_are_dead_lettered_within_the_charts_memory_limit(
    broker: MosquittoBroker,
    s3: SeaweedS3,
    bucket: str,
    catalogs,
    site_env: dict[str, str],
    tmp_path: Path,
) -> None:
    if shutil.which("prlimit") is None:
        pytest.skip("prlimit (util-linux) is not installed")
    site = catalogs.start("site-a")
    host = EncodedHost()
    subset_bomb = encode_message([{"blockNumber": 1, "stationNumber": 1}] * 65_535, (1001, 1002))
    good = encode([Station(T0, wigos="SAFE1", values={"windSpeed": 2.0})])
    host.routes = {
        "/stacked.bufr": (stacked_gzip_bomb(), {"Content-Encoding": "gzip, gzip"}),
        "/single.bufr": (gzip_of_zeros(600 * MiB), {"Content-Encoding": "gzip"}),
        "/subsets.bufr": (subset_bomb * 10, {}),
        "/good.bufr": (good, {}),
    }
    port = free_port()
    env = stream_env(
        site_env, site.url, broker, f"bombs-{bucket}", port, **WIS2_ENV,
        INGEST_MQTT_TOPICS=f"{ORIGIN}/#", INGEST_DEAD_LETTER_PREFIX="dead-letter/wis2/",
    )  # fmt: skip
    argv = [f"--data={CHART_MEMORY_LIMIT}", "--", sys.executable, "-m", "fedeploy_ingestion"]
    consumer = Daemon("consumer", ["prlimit", *argv, "stream"], tmp_path, env=env)
    store = ObjectStore(s3.endpoint.client(), bucket)

    def letters() -> dict[str, str]:
        listed = store.client.list_objects_v2(Bucket=bucket, Prefix="dead-letter/wis2/")
        documents = [json.loads(store.get(o["Key"])) for o in listed.get("Contents", [])]
        return {d["topic"].rsplit("/", 1)[1]: d["code"] for d in documents}

    consumer.start()
    try:
        wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200,
            60,
            "the consumer's /readyz",
            consumer.log_file,
        )
        pid = int(consumer.pid_file.read_text()) if consumer.pid_file.exists() else None
        notes = []
        for path in ("/stacked.bufr", "/single.bufr", "/subsets.bufr"):
            data = host.routes[path][0]
            note = notification(data, host.url(path), data_id=path)
            notes.append((f"{ORIGIN}{path.removesuffix('.bufr')}", payload(note)))
        send(broker, notes, qos=1)
        send(broker, [(f"{ORIGIN}/huge", b"x" * (150 * MiB))], qos=1)
        note = notification(good, host.url("/good.bufr"), data_id="/good.bufr")
        send(broker, [(f"{ORIGIN}/good", payload(note))], qos=1)
        wait_until(lambda: len(letters()) == 3, 120, "the dead letters", consumer.log_file)
        wait_until(lambda: len(stored(store)) == 1, 60, "the good notification", consumer.log_file)
        if pid is not None:
            assert peak_rss(pid) < CHART_MEMORY_LIMIT
    finally:
        alive = consumer._popen is not None and consumer._popen.poll() is None
        consumer.stop()
        host.close()
    assert alive, consumer.log_file.read_text()[-3000:]
    assert letters() == {"stacked": "download", "single": "download", "subsets": "too-large"}
    assert "Traceback" not in consumer.log_file.read_text()
