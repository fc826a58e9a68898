"""Fixtures: real peers on loopback (session-scoped), and builders shared by the tests.

Integration tests skip when a peer's program is missing, unless FEDEPLOY_REQUIRE_INTEGRATION=1
(CI), where a missing peer fails the test.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from loopback import (
    MosquittoBroker,
    PostgresServer,
    S3Endpoint,
    SeaweedS3,
    StacApiServer,
)
from loopback.observations import observation
from tests.peers import peer_fixture

_counter = itertools.count()


def unique(prefix: str) -> str:
    """A name no other test of this session uses."""
    return f"{prefix}{os.getpid()}x{next(_counter)}"


postgres = peer_fixture(
    PostgresServer,
    "postgres",
    teardown="remove",
    doc="PostgreSQL with PostGIS and a pgstac template database.",
)
s3 = peer_fixture(
    SeaweedS3, "seaweedfs", doc="SeaweedFS's S3 gateway, which checks request signatures."
)
broker = peer_fixture(
    MosquittoBroker,
    "mosquitto",
    doc="Debian's mosquitto with persistence and `max_queued_messages 0`.",
)


@pytest.fixture
def bucket(s3: SeaweedS3) -> str:
    """A fresh bucket for one test."""
    name = unique("site-bucket-")
    s3.create_bucket(name)
    return name


class Catalogs:
    """Starts STAC APIs over fresh pgstac databases; stops them all at the end of a test."""

    def __init__(self, postgres: PostgresServer, workdir: Path) -> None:
        self.postgres = postgres
        self.workdir = workdir
        self.servers: list[StacApiServer] = []

    def start(self, name: str) -> StacApiServer:
        """A new catalog (database `name` made unique) with transactions."""
        database = unique(name.replace("-", "_") + "_")
        dsn = self.postgres.create_database(database)
        server = StacApiServer(dsn, self.workdir / database, name=database).start()
        self.servers.append(server)
        return server

    def restart(self, server: StacApiServer) -> StacApiServer:
        """The same catalog again, on the same port (after `server.stop()`)."""
        again = StacApiServer(
            server.dsn, server.daemon.workdir, name=server.daemon.name, port=server.port
        ).start()
        self.servers.append(again)
        return again

    def stop_all(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture
def catalogs(postgres: PostgresServer, tmp_path: Path) -> Iterator[Catalogs]:
    """A factory of STAC APIs for one test."""
    factory = Catalogs(postgres, tmp_path)
    yield factory
    factory.stop_all()


@pytest.fixture
def site_env(s3: SeaweedS3, bucket: str) -> dict[str, str]:
    """INGEST_* and AWS_* settings for a site whose bucket is `bucket` (no catalog yet)."""
    endpoint: S3Endpoint = s3.endpoint
    return {**endpoint.env(), "INGEST_SITE": "site-a", "INGEST_BUCKET": bucket}


@pytest.fixture
def site_a(catalogs: Catalogs, site_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """Site `site-a`'s catalog (a fresh pgstac behind stac-fastapi), its settings in this
    process's environment."""
    for name, value in site_env.items():
        monkeypatch.setenv(name, value)
    return catalogs.start("site-a")


@pytest.fixture
def make_observation() -> Callable[..., dict[str, Any]]:
    """Builds valid observation messages (`loopback.observations.observation`)."""
    return observation


# --- the poison corpus (tests/poison/: files, and expected.json naming each one's reason code)

POISON = Path(__file__).parent / "poison"
_EXPECTED = json.loads((POISON / "expected.json").read_text())


def _poison(name: str) -> tuple[str, bytes, str]:
    if name == "ten-megabytes":  # generated, not kept in the repository
        message = observation("bz-01", datetime(2024, 6, 1, 11, 59, 30, tzinfo=UTC))
        payload = json.dumps({**message, "padding": "x" * (10 * 1024 * 1024)}).encode()
        return name, payload, _EXPECTED["generated"][name]
    return name, (POISON / name).read_bytes(), _EXPECTED["files"][name]


POISON_NAMES = sorted(_EXPECTED["files"]) + sorted(_EXPECTED["generated"])


@pytest.fixture(params=POISON_NAMES)
def poison_message(request: pytest.FixtureRequest) -> tuple[str, bytes, str]:
    """One poison message: (name, payload, the reason code it must be refused with)."""
    return _poison(request.param)


@pytest.fixture
def poison_messages() -> list[tuple[str, bytes, str]]:
    """Every poison message, as `poison_message` gives each."""
    return [_poison(name) for name in POISON_NAMES]
