"""The storage Secret's shared credentials file is all our services need to reach the store.

With nothing in the environment but AWS_SHARED_CREDENTIALS_FILE (as the charts set it), each
service's own S3 client (ingestion, inference, the asset endpoint's presigner) writes and reads
SeaweedFS, which checks signatures; a file with a wrong secret is refused, so the keys really
come from the file. The file's text is what fedeploy puts in the Secret."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from fedeploy.values.storage_credentials import OTHER_CREDENTIAL_SOURCES, shared_credentials_file
from loopback import SeaweedS3
from loopback.s3 import S3Endpoint
from tests.peers import running

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SeaweedS3, str]]:
    with running(lambda: SeaweedS3(tmp_path_factory.mktemp("seaweedfs")).start()) as server:
        bucket = f"credentials-file-{uuid.uuid4().hex[:8]}"
        server.create_bucket(bucket)
        yield server, bucket


def _only_the_file(monkeypatch: pytest.MonkeyPatch, path: Path, text: str) -> None:
    import boto3

    path.write_text(text)
    path.chmod(0o440)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # it caches the first keys found
    for name in OTHER_CREDENTIAL_SOURCES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(path.parent / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(path))


def _ingestion(endpoint: S3Endpoint, bucket: str) -> Any:
    from fedeploy_ingestion.object_store import s3_client

    return s3_client(endpoint.endpoint_url, endpoint.region, "auto")


def _inference(endpoint: S3Endpoint, bucket: str) -> Any:
    from fedeploy_inference.s3 import s3_client
    from fedeploy_inference.settings import InferenceSettings

    return s3_client(
        InferenceSettings(
            bucket=bucket, s3_endpoint_url=endpoint.endpoint_url, s3_region=endpoint.region
        )
    )


CLIENTS: dict[str, Callable[[S3Endpoint, str], Any]] = {
    "ingestion": _ingestion,
    "inference": _inference,
}


@pytest.mark.parametrize("service", sorted(CLIENTS))
def test_a_service_reaches_the_store_with_only_the_credentials_file(
    service: str, store: tuple[SeaweedS3, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, bucket = store
    endpoint = server.endpoint
    file = tmp_path / "credentials"
    _only_the_file(
        monkeypatch,
        file,
        shared_credentials_file(endpoint.access_key_id, endpoint.secret_access_key),
    )
    client = CLIENTS[service](endpoint, bucket)
    key = f"{service}/probe.txt"
    client.put_object(Bucket=bucket, Key=key, Body=b"written with the file's keys")
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert body == b"written with the file's keys"

    # The keys come from the file: a wrong secret in it is refused by the store.
    _only_the_file(
        monkeypatch, file, shared_credentials_file(endpoint.access_key_id, "not-the-secret")
    )
    with pytest.raises(ClientError) as refused:
        CLIENTS[service](endpoint, bucket).get_object(Bucket=bucket, Key=key)
    assert refused.value.response["Error"]["Code"] in {"SignatureDoesNotMatch", "AccessDenied"}


def test_the_asset_endpoint_presigns_with_the_files_keys(
    store: tuple[SeaweedS3, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fedeploy_ingestion.asset_endpoint import AssetSettings, presigning_client

    server, bucket = store
    endpoint = server.endpoint
    endpoint.client().put_object(Bucket=bucket, Key="assets/a.tif", Body=b"asset bytes")
    _only_the_file(
        monkeypatch,
        tmp_path / "credentials",
        shared_credentials_file(endpoint.access_key_id, endpoint.secret_access_key),
    )
    settings = AssetSettings.model_construct(
        s3_endpoint_url=endpoint.endpoint_url, s3_region=endpoint.region, s3_addressing_style="auto"
    )
    url = presigning_client(settings).generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "assets/a.tif"}, ExpiresIn=60
    )
    assert httpx.get(url, timeout=10).content == b"asset bytes"
