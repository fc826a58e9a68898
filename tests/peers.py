"""The one way a test starts a loopback peer (loopback/src/loopback) and stops it again.

- `start_peer(start)`: `start()`; a missing peer program skips the test, or fails it under
  FEDEPLOY_REQUIRE_INTEGRATION=1 (`tests.conftest.unavailable`).
- `running(start)`: the same as a context manager that stops the peer on the way out.
- `peer_fixture(Peer, "workdir")`: a fixture of `Peer(<a fresh temporary folder>).start()`, once
  per scope, stopped after it (`teardown="remove"` for a PostgresServer, whose data goes too).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest


def start_peer(start: Callable[[], Any]) -> Any:
    """`start()`, a loopback peer; a missing peer program skips the test, or fails it in CI
    (`unavailable`)."""
    from loopback import PeerUnavailable
    from tests.conftest import unavailable

    try:
        return start()
    except PeerUnavailable as missing:
        unavailable(str(missing))


@contextmanager
def running(start: Callable[[], Any], teardown: str = "stop") -> Iterator[Any]:
    """The peer `start()` returns (`start_peer`), stopped by its `teardown` method on the way
    out."""
    peer = start_peer(start)
    try:
        yield peer
    finally:
        getattr(peer, teardown)()


def peer_fixture(
    peer: Callable[[Path], Any],
    workdir: str,
    *,
    scope: str = "session",
    teardown: str = "stop",
    doc: str | None = None,
) -> Any:
    """A fixture: `peer(tmp_path_factory.mktemp(workdir)).start()` once per `scope`, then its
    `teardown` method. Assign it to the fixture's name: `broker = peer_fixture(...)`."""

    def fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
        with running(lambda: peer(tmp_path_factory.mktemp(workdir)).start(), teardown) as server:
            yield server

    fixture.__doc__ = doc
    return pytest.fixture(scope=scope)(fixture)  # type: ignore[call-overload]
