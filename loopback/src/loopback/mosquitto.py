"""A private mosquitto broker on loopback, with persistence and no queue limit."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from loopback.errors import PeerUnavailable
from loopback.processes import Daemon, free_port, port_open


class MosquittoBroker:
    """Debian's mosquitto with its own config in `workdir`, stopped by its pid file.

    `max_queued_messages 0`: mosquitto's default of 1000 silently drops QoS 1 messages
    queued beyond it for a slow or absent subscriber, which a "nothing lost" test would
    measure instead of the consumer. Production brokers need the same setting (or a limit
    sized for the longest consumer outage).
    """

    def __init__(
        self, workdir: Path, port: int | None = None, users: dict[str, str] | None = None
    ) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise PeerUnavailable("mosquitto is not installed: apt-get install -y mosquitto")
        self.binary = binary
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.users = dict(users or {})
        self.config_file = self.workdir / "mosquitto.conf"
        self.daemon = Daemon("mosquitto", [binary, "-c", str(self.config_file)], self.workdir)

    def start(self) -> MosquittoBroker:
        """Write the config, start the broker and wait until it accepts connections."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "store").mkdir(exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {self.workdir / 'store'}/",
            "max_queued_messages 0",
            # For MQTT 3.1.1 clients; MQTT 5 clients announce their own receive maximum.
            "max_inflight_messages 0",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
        ]
        if self.users:
            password_file = self.workdir / "passwords"
            password_file.write_text("")
            for user, password in self.users.items():
                subprocess.run(
                    [
                        shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd",
                        "-b",
                        str(password_file),
                        user,
                        password,
                    ],
                    check=True,
                    capture_output=True,
                )
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines.append("allow_anonymous true")
        if os.geteuid() == 0:
            # Started as root, mosquitto would drop to the `mosquitto` user, which cannot reach
            # a workdir under a root-only folder (pytest's tmp_path): the password file and the
            # persistent store could not be opened. The peer stays root on loopback.
            lines.append("user root")
        self.config_file.write_text("\n".join(lines) + "\n")
        self.daemon.start_and_wait(
            lambda: port_open(self.port), 10, f"mosquitto on port {self.port}"
        )
        return self

    def publish(
        self,
        messages: Iterable[tuple[str, bytes]],
        timeout: float = 30.0,
        *,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        """Publish each (topic, payload) at QoS 1 from a client of its own (as `username`
        where the broker has users) and return once the broker has acknowledged them all.

        Raises PeerUnavailable when the broker refuses or does not answer the connection, or
        when a message is not acknowledged (PUBACK) within `timeout` seconds of the last
        publish: the count and the first topic say which.
        """
        import threading
        import time

        import paho.mqtt.client as mqtt

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{time.time_ns()}")
        if username is not None:
            client.username_pw_set(username, password)
        answered = threading.Event()
        refused: list[str] = []

        def on_connect(_client, _userdata, _flags, reason, _properties) -> None:
            if reason.is_failure:
                refused.append(str(reason))
            answered.set()

        client.on_connect = on_connect
        client.connect(self.host, self.port)
        client.loop_start()
        try:
            if not answered.wait(timeout):
                raise PeerUnavailable(
                    f"mosquitto on port {self.port} did not answer the connection in {timeout:g} s"
                )
            if refused:
                raise PeerUnavailable(
                    f"mosquitto on port {self.port} refused the connection: {refused[0]}"
                )
            sent = [(topic, client.publish(topic, payload, qos=1)) for topic, payload in messages]
            deadline = time.monotonic() + timeout
            unacknowledged = []
            for topic, info in sent:
                with contextlib.suppress(RuntimeError, ValueError):
                    info.wait_for_publish(timeout=max(0.0, deadline - time.monotonic()))
                if not info.is_published():
                    unacknowledged.append(topic)
            if unacknowledged:
                raise PeerUnavailable(
                    f"mosquitto on port {self.port} acknowledged {len(sent) - len(unacknowledged)}"
                    f" of {len(sent)} messages within {timeout:g} s; the first not acknowledged "
                    f"was on topic {unacknowledged[0]!r}"
                )
        finally:
            client.disconnect()
            client.loop_stop()

    def stop(self) -> None:
        """SIGTERM by pid file: mosquitto saves its persistent sessions on the way out."""
        self.daemon.stop()
