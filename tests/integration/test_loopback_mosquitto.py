"""The loopback broker's publish returns only once the broker acknowledged every message.

A publish that returned on a refused connection or a missing PUBACK let a test go on as if its
messages were sent, and then measure a consumer that never had them.
"""

from __future__ import annotations

import socket
import threading

import pytest

from loopback import MosquittoBroker, PeerUnavailable
from tests.peers import running


def test_publish_as_a_user_is_acknowledged_and_without_credentials_refused(tmp_path):
    users = {"edge": "s3cret-pass"}
    with running(lambda: MosquittoBroker(tmp_path / "broker", users=users).start()) as broker:
        broker.publish(
            [("wis2/a", b"1"), ("wis2/b", b"2")],
            timeout=10,
            username="edge",
            password="s3cret-pass",
        )
        with pytest.raises(PeerUnavailable, match="refused the connection"):
            broker.publish([("wis2/a", b"1")], timeout=10)
        with pytest.raises(PeerUnavailable, match="refused the connection"):
            broker.publish([("wis2/a", b"1")], timeout=10, username="edge", password="wrong")


def test_publish_raises_when_the_broker_never_acknowledges(tmp_path):
    """A server that accepts the connection (CONNACK) and then never sends a PUBACK."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)  # CONNECT
            connection.sendall(b"\x20\x02\x00\x00")  # CONNACK, accepted
            connection.settimeout(0.2)
            while not stop.is_set():
                try:
                    if not connection.recv(65536):
                        return
                except TimeoutError:
                    continue

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        broker = MosquittoBroker(tmp_path / "silent", port=port)
        with pytest.raises(PeerUnavailable, match="acknowledged 0 of 2 messages"):
            broker.publish([("wis2/a", b"1"), ("wis2/b", b"2")], timeout=1)
    finally:
        stop.set()
        listener.close()
        server.join(5)
