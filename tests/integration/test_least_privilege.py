"""Least privilege, enforced: each workload role's policy from the offline plan, attached to a user
of an IAM-enforcing moto, runs the services' real S3 code paths; a call outside it is denied.

The documents come from the plan of the example federation (the `aws:iam/rolePolicy:RolePolicy`
the program registers), never a copy. moto checks actions and resource ARNs; it does not check
KMS (an SSE-KMS bucket needs no `kms:*` grant there), so the KMS statement is checked for shape
in tests/unit/test_workload_access.py only.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from loopback import MosquittoBroker, S3Endpoint
from loopback.enforcing_s3 import IamEnforcingMoto
from loopback.observations import encoded, observation
from loopback.processes import wait_until
from tests.builders import example_site
from tests.conftest import EXAMPLE_STACKS, STACKS, start_peer
from tests.peers import peer_fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
MiB = 1024 * 1024


def _workloads() -> list[tuple[str, str]]:
    """(stack, service) of every workload role the example federation should have."""
    found = []
    for stack in EXAMPLE_STACKS:
        site = example_site(stack)
        if site["kind"] != "aws":
            continue
        for service in ("ingestion", "inference"):
            spec = (site.get("services") or {}).get(service)
            if spec is not None and spec.get("enabled", True):
                found.append((stack, service))
        # A published catalog's asset endpoint reads the ingestion bucket's assets.
        services = site.get("services") or {}
        if (services.get("catalog") or {}).get("exposure") and (stack, "ingestion") in found:
            found.append((stack, "assets"))
        # An in-cluster catalog database backs up with a role of its own (on by default).
        catalog = services.get("catalog") or {}
        if catalog.get("database", "internal") == "internal" and (catalog.get("backup") or {}).get(
            "enabled", True
        ):
            found.append((stack, "catalog-backup"))
            # Its restore drill (on by default) reads the backups with a role of its own.
            if ((catalog.get("backup") or {}).get("drill") or {}).get("enabled", True):
                found.append((stack, "catalog-drill"))
    return found


WORKLOADS = _workloads()


moto_iam = peer_fixture(IamEnforcingMoto, "moto-iam", scope="module")
broker = peer_fixture(MosquittoBroker, "mosquitto", scope="module")


def workloads_of(service: str) -> pytest.MarkDecorator:
    """The test once per workload role of `service` the example federation has (`workload`)."""
    return pytest.mark.parametrize(
        "workload",
        [w for w in WORKLOADS if w[1] == service],
        indirect=True,
        ids=lambda w: f"{w[0]}-{w[1]}",
    )


def _planned_policy(example_plans: Any, stack: str, service: str) -> dict[str, Any]:
    name = f"{stack}-{service}-role-access"
    found = [r for r in example_plans[stack].by_type(ROLE_POLICY) if r.name == name]
    assert found, f"the plan of {stack} has no {ROLE_POLICY} named {name}"
    return json.loads(found[0].inputs["policy"])


def _bucket_of(policy: dict[str, Any]) -> str:
    arns = {
        str(arn).removeprefix("arn:aws:s3:::").split("/")[0]
        for statement in policy["Statement"]
        for arn in statement["Resource"]
        if str(arn).startswith("arn:aws:s3:::")
    }
    assert len(arns) == 1, f"one bucket per workload role, found {sorted(arns)}"
    return arns.pop()


@pytest.fixture
def workload(request: pytest.FixtureRequest, moto_iam: IamEnforcingMoto, example_plans: Any):
    """(bucket, keys of a user holding only the planned policy) for one (stack, service)."""
    stack, service = request.param
    policy = _planned_policy(example_plans, stack, service)
    bucket = _bucket_of(policy)
    assert moto_iam.admin is not None
    moto_iam.admin.create_bucket(bucket)
    keys = moto_iam.user(f"{stack}-{service}-{time.monotonic_ns()}", policy)
    # A failure of the test lists every request the server denied from here on, with the
    # statement that should have allowed it (tests/integration/conftest.py).
    request.node.iam_denials = (moto_iam, moto_iam.log_offset(), policy)
    return bucket, keys


def _denied(call: Any) -> bool:
    try:
        call()
    except Exception as error:  # StorageError wraps ClientError; both name the code
        cause = error if isinstance(error, ClientError) else error.__cause__
        return isinstance(cause, ClientError) and cause.response["Error"]["Code"] == "AccessDenied"
    return False


def _use_keys(monkeypatch: pytest.MonkeyPatch, keys: S3Endpoint) -> None:
    """The services build their clients from boto3's chain: give it the user's keys only."""
    import boto3

    # boto3's default session caches the first credentials it finds: start a fresh one.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys.secret_access_key)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")


# --- ingestion ------------------------------------------------------------------------------


class _Source:
    """A range-capable source of `data`, optionally failing after `fail_after` bytes."""

    def __init__(self, data: bytes, fail_after: int | None = None) -> None:
        self.data = data
        self.fail_after = fail_after

    def open(self, offset: int) -> tuple[Iterator[bytes], int, int]:
        from fedeploy_ingestion.errors import SourceError

        def chunks() -> Iterator[bytes]:
            sent = 0
            for position in range(offset, len(self.data), MiB):
                chunk = self.data[position : position + MiB]
                sent += len(chunk)
                yield chunk
                if self.fail_after is not None and sent >= self.fail_after:
                    raise SourceError("connection dropped midway")

        return chunks(), offset, len(self.data)


def _sentinel_copies(store: Any) -> None:
    """Interrupted copy, resume onto a bad object (deleted), resume to a good one, bad start."""
    from fedeploy_ingestion import sentinel_plan
    from fedeploy_ingestion.errors import ChecksumMismatch, IngestError
    from fedeploy_ingestion.multihash import Digest
    from fedeploy_ingestion.object_store import RangeSource

    data = os.urandom(12 * MiB + 77)
    good = Digest("sha256", hashlib.sha256(data).digest())
    bad = Digest("sha256", hashlib.sha256(b"other bytes").digest())
    key = sentinel_plan.object_key("sentinel-2-l2a", "S2A_T32TPS", "B04", "x/B04.jp2", None)

    def copy(source: RangeSource, expected: Digest) -> Any:
        return store.copy_from(
            key,
            source,
            part_size=5 * MiB,
            expected=expected,
            expected_size=len(data),
            content_type="image/jp2",
            metadata={"fedeploy-fingerprint": "f1"},
        )

    assert store.head(key) is None
    with pytest.raises(IngestError):
        copy(_Source(data, fail_after=6 * MiB), good)
    with pytest.raises(ChecksumMismatch, match="deleted"):
        copy(_Source(data), bad)  # resumes, completes, reads back, deletes the bad object
    assert store.head(key) is None
    with pytest.raises(IngestError):
        copy(_Source(data, fail_after=6 * MiB), good)
    result = copy(_Source(data), good)
    assert result.resumed_from > 0 and result.size == len(data)
    stored = store.head(key)
    assert stored is not None and stored.metadata["fedeploy-fingerprint"] == "f1"
    with pytest.raises(ChecksumMismatch):
        copy(_Source(data), bad)  # from the start: the upload is aborted


def _catalog_stand_in() -> Any:
    """The real CatalogClient over an HTTP stand-in that accepts every write."""
    from fedeploy_ingestion.catalog import CatalogClient

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201 if request.method == "POST" else 200, json={})

    url = "http://catalog.test"
    return CatalogClient(
        url, http=httpx.Client(base_url=url, transport=httpx.MockTransport(answer))
    )


def _stream(store: Any, bucket: str, broker: MosquittoBroker, admin: Any) -> None:
    """The MQTT consumer: two windows' writes (the second merges) and one dead letter."""
    from fedeploy_ingestion.metrics import Metrics
    from fedeploy_ingestion.settings import IngestSettings
    from fedeploy_ingestion.stream import Consumer
    from fedeploy_ingestion.window_writer import WindowWriter

    site = "site-a"
    settings = IngestSettings(
        site=site,
        bucket=bucket,
        mqtt_host=broker.host,
        mqtt_port=broker.port,
        mqtt_tls=False,
        mqtt_client_id=f"least-privilege-{bucket}-{time.monotonic_ns()}",
        flush_idle_seconds=0.3,
        window_grace_seconds=0,
    )
    metrics = Metrics()
    consumer = Consumer(
        settings, store, WindowWriter(store, _catalog_stand_in(), site, metrics), metrics
    )
    worker = threading.Thread(target=consumer.run)
    worker.start()
    t0 = datetime(2024, 6, 1, 0, 0, tzinfo=UTC)
    topic = f"fedeploy/{site}/stations/bz-01/observations"

    def message(moment: datetime) -> bytes:
        return encoded(observation("bz-01", moment, humidity=None))

    def publish(payload: bytes) -> None:
        broker.publish([(topic, payload)], timeout=20)

    def listed(prefix: str) -> list[str]:
        answer = admin.list_objects_v2(Bucket=bucket, Prefix=prefix)
        return [o["Key"] for o in answer.get("Contents", [])]

    def window_rows() -> int:
        from fedeploy_ingestion.window_table import from_parquet

        keys = listed("observations/")
        if len(keys) != 1:
            return 0
        return len(from_parquet(admin.get_object(Bucket=bucket, Key=keys[0])["Body"].read()))

    try:
        wait_until(lambda: consumer.ready, 15, "subscription", None)
        publish(message(t0))
        publish(b"{not json")
        wait_until(lambda: window_rows() == 1, 20, "the first window", None)
        publish(message(t0 + timedelta(seconds=30)))  # same window: read, merge, write
        wait_until(lambda: window_rows() == 2, 20, "the merged window", None)
        wait_until(lambda: len(listed("dead-letter/")) == 1, 20, "the dead letter", None)
    finally:
        consumer.stop()
        worker.join(timeout=30)
    assert not worker.is_alive()


@workloads_of("ingestion")
def test_ingestion_role_from_the_plan_allows_every_call_of_the_service_and_no_other(
    workload: tuple[str, S3Endpoint],
    moto_iam: IamEnforcingMoto,
    broker: MosquittoBroker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fedeploy_ingestion.object_store import ObjectStore, s3_client

    bucket, keys = workload
    _use_keys(monkeypatch, keys)
    store = ObjectStore(s3_client(keys.endpoint_url, keys.region, "path"), bucket)
    _sentinel_copies(store)
    assert moto_iam.admin is not None
    _stream(store, bucket, broker, moto_iam.admin.client())

    # Outside the policy: another service's prefix, and deleting a window.
    assert _denied(lambda: store.put("models/m/LATEST", b"x", "text/plain"))
    assert _denied(lambda: store.delete("observations/bz-01/2024/06/01/x.parquet"))


# --- inference ------------------------------------------------------------------------------


@workloads_of("inference")
def test_inference_role_from_the_plan_allows_every_call_of_the_service_and_no_other(
    workload: tuple[str, S3Endpoint],
    moto_iam: IamEnforcingMoto,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch
    from fedeploy_inference.batch import Area, run_batch
    from fedeploy_inference.model_watcher import ModelWatcher
    from fedeploy_inference.s3 import s3_client
    from fedeploy_inference.service_metrics import ServiceMetrics
    from fedeploy_inference.settings import InferenceSettings
    from fedeploy_inference.synthetic import SyntheticSpec, generate
    from fedeploy_inference.train_from_store import train_and_publish
    from fedeploy_inference.training import TrainConfig
    from fedeploy_inference.window_store import write_windows

    bucket, keys = workload
    assert moto_iam.admin is not None
    # The ingestion side's windows, written with the administrator's keys.
    write_windows(moto_iam.admin.client(), bucket, generate(SyntheticSpec(stations=2, days=20)))

    _use_keys(monkeypatch, keys)
    settings = InferenceSettings(  # type: ignore[call-arg]
        bucket=bucket, s3_endpoint_url=keys.endpoint_url, s3_region=keys.region, device="cpu"
    )
    outcome = train_and_publish(settings, TrainConfig(epochs=1, hidden=16, layers=1))
    assert outcome.version is not None
    watcher = ModelWatcher(
        s3_client(settings),
        bucket,
        settings.model_name,
        "latest",
        torch.device("cpu"),
        ServiceMetrics(),
        poll_seconds=60,
    )
    assert watcher.check() and watcher.current is not None
    batch = run_batch(
        settings,
        Area(0.0, 30.0, 30.0, 70.0),
        datetime(2026, 1, 15, tzinfo=UTC),
        datetime(2026, 1, 16, tzinfo=UTC),
    )
    assert batch.key.startswith("forecasts/")

    client = s3_client(settings)
    # Outside the policy: writing windows (the ingestion's job) and deleting a model.
    assert _denied(lambda: client.put_object(Bucket=bucket, Key="observations/x", Body=b"x"))
    assert _denied(
        lambda: client.delete_object(Bucket=bucket, Key=f"models/{settings.model_name}/LATEST")
    )


# --- the catalog's asset endpoint -----------------------------------------------------------


def asset_presigner(
    moto_iam: IamEnforcingMoto, bucket: str, keys: S3Endpoint, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """Three objects in `bucket` (two assets, one model), written as admin; then the asset
    endpoint's own S3 client with only `keys` in boto3's chain."""
    from fedeploy_ingestion.asset_endpoint import AssetSettings, presigning_client

    assert moto_iam.admin is not None
    admin = moto_iam.admin.client()
    for key in ("sentinel/s2/item/B04.tif", "observations/bz-01/w.parquet", "models/m/LATEST"):
        admin.put_object(Bucket=bucket, Key=key, Body=b"asset bytes")
    _use_keys(monkeypatch, keys)
    return presigning_client(
        AssetSettings(  # type: ignore[call-arg]
            issuer="https://id.example",
            audience="a",
            catalog_url="http://catalog:8080",
            s3_endpoint_url=keys.endpoint_url,
            s3_region=keys.region,
        )
    )


@workloads_of("assets")
def test_assets_role_from_the_plan_presigns_reads_of_assets_and_nothing_else(
    workload: tuple[str, S3Endpoint],
    moto_iam: IamEnforcingMoto,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket, keys = workload
    client = asset_presigner(moto_iam, bucket, keys, monkeypatch)

    # A presigned URL performs, under the role's keys, exactly the GetObject below; moto's IAM
    # enforcement does not read query-string signatures, so the call is made in header form.
    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "sentinel/s2/item/B04.tif"}
    )
    assert keys.access_key_id in url and "X-Amz-Signature=" in url

    def read(key: str) -> bytes:
        return bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())

    # What the endpoint hands out works: the assets under the ingestion's prefixes.
    assert read("sentinel/s2/item/B04.tif") == b"asset bytes"
    assert read("observations/bz-01/w.parquet") == b"asset bytes"
    # Outside the policy: another prefix, and any write or delete.
    assert _denied(lambda: read("models/m/LATEST"))
    assert _denied(lambda: client.delete_object(Bucket=bucket, Key="sentinel/s2/item/B04.tif"))
    assert _denied(lambda: client.put_object(Bucket=bucket, Key="sentinel/x", Body=b"x"))


# --- the catalog database's backups ---------------------------------------------------------


@workloads_of("catalog-backup")
def test_catalog_backup_role_from_the_plan_runs_barman_cloud_and_touches_nothing_else(
    workload: tuple[str, S3Endpoint],
    moto_iam: IamEnforcingMoto,
    example_plans: Any,
    tmp_path: Path,
) -> None:
    """The chart's backup sidecar (archive, base backup, retention) and a restore, by
    barman-cloud itself, with only the backup role's keys; other prefixes are refused. The
    restore drill's role restores it too and may neither overwrite nor delete a backup."""
    from fedeploy.restore_drill.barman import BackupStore
    from loopback.barman import BarmanTools, archiving_server, aws_env, sidecar_round

    bucket, keys = workload
    ((plan, planned),) = [
        (plan, r.inputs["values"]["backup"])
        for plan in example_plans.values()
        for r in plan.by_type("kubernetes:helm.sh/v3:Release")
        if r.inputs["name"] == "catalog"
        and (r.inputs["values"].get("backup") or {}).get("bucket") == bucket
    ]
    tools = start_peer(lambda: BarmanTools().start())
    server = None
    try:
        server, spool = start_peer(lambda: archiving_server(tmp_path / "pg"))
        store = BackupStore(
            bucket, planned["prefix"], "catalog-db", keys.endpoint_url, str(tools.bindir)
        )
        env = aws_env(keys.access_key_id, keys.secret_access_key, keys.region)
        # barman-cloud-check-wal-archive's HeadBucket needs s3:ListBucket, which the policy
        # grants, but moto 5.2.5 refuses it under IAM enforcement (requirements/
        # upstream-regressions.txt); the check runs against SeaweedFS in test_backup_restore.py.
        (spool / ".archive-checked").write_text("checked against SeaweedFS\n")
        server.execute("postgres", "CREATE TABLE t AS SELECT generate_series(1, 1000) AS n")
        server.execute("postgres", "SELECT pg_switch_wal()")
        sidecar_round(
            tools.bindir, store.url, "catalog-db", keys.endpoint_url, server, spool, env, True
        )
        tools.run(store.restore(str(tmp_path / "restored")), env)
        assert (tmp_path / "restored" / "PG_VERSION").exists()
        # The restore drill's own role restores the same backup and may not change it.
        stack = next(s for s, p in example_plans.items() if p is plan)
        drill = moto_iam.user(
            f"{stack}-catalog-drill-{time.monotonic_ns()}",
            _planned_policy(example_plans, stack, "catalog-drill"),
        )
        drill_env = aws_env(drill.access_key_id, drill.secret_access_key, drill.region)
        tools.run(store.restore(str(tmp_path / "drilled")), drill_env)
        assert (tmp_path / "drilled" / "PG_VERSION").exists()
        reader = drill.client()
        backups = reader.list_objects_v2(Bucket=bucket, Prefix=store.key_prefix())["Contents"]
        key = backups[0]["Key"]
        assert _denied(lambda: reader.put_object(Bucket=bucket, Key=key, Body=b"forged"))
        assert _denied(lambda: reader.delete_object(Bucket=bucket, Key=key))
    finally:
        if server is not None:
            server.remove()
        tools.remove()

    client = keys.client()
    listed = client.list_objects_v2(Bucket=bucket, Prefix=store.key_prefix())
    assert listed.get("KeyCount", 0) > 0
    # Outside the prefix: the ingestion's data, read or written or deleted.
    assert moto_iam.admin is not None
    moto_iam.admin.client().put_object(Bucket=bucket, Key="sentinel/s2/x.tif", Body=b"x")
    assert _denied(lambda: client.get_object(Bucket=bucket, Key="sentinel/s2/x.tif"))
    assert _denied(lambda: client.put_object(Bucket=bucket, Key="sentinel/s2/y", Body=b"y"))
    assert _denied(lambda: client.delete_object(Bucket=bucket, Key="sentinel/s2/x.tif"))


def test_every_workload_of_the_example_federation_is_covered(example_plans: Any) -> None:
    planned = {
        (stack, r.name.removeprefix(f"{stack}-").removesuffix("-role-access"))
        for stack, plan in example_plans.items()
        for r in plan.by_type(ROLE_POLICY)
        if r.name.endswith("-role-access")
    }
    assert planned == set(WORKLOADS)
    assert Path(STACKS).is_dir()
