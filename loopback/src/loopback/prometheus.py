"""A private Prometheus (Debian 12's 2.42) on loopback, with the rule files it is given."""

from __future__ import annotations

import json
import shutil
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from loopback.errors import PeerUnavailable
from loopback.processes import Daemon, free_port


class PrometheusServer:
    """Prometheus with its own config, rules and storage in `workdir`, on 127.0.0.1.

    `scrape_configs` and `rules` (rule files' contents, e.g. a rendered PrometheusRule's spec)
    are Prometheus's own formats; scraping and rule evaluation run every `interval`.
    """

    def __init__(
        self,
        workdir: Path,
        scrape_configs: list[dict[str, Any]],
        rules: list[dict[str, Any]],
        interval: str = "1s",
    ) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise PeerUnavailable(
                "prometheus is not installed (Debian 12: apt-get install -y prometheus)"
            )
        self.workdir = Path(workdir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.scrape_configs = scrape_configs
        self.rules = rules
        self.interval = interval
        self.config_file = self.workdir / "prometheus.yml"
        self.daemon = Daemon(
            "prometheus",
            [
                binary,
                f"--config.file={self.config_file}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            self.workdir,
        )

    def start(self) -> PrometheusServer:
        """Write the config and rule files, start Prometheus and wait until it is ready."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        rule_files = []
        for n, rules in enumerate(self.rules):
            path = self.workdir / f"rules-{n}.yaml"
            path.write_text(yaml.safe_dump(rules))
            rule_files.append(str(path))
        config = {
            "global": {"scrape_interval": self.interval, "evaluation_interval": self.interval},
            "rule_files": rule_files,
            "scrape_configs": self.scrape_configs,
        }
        self.config_file.write_text(yaml.safe_dump(config))
        self.daemon.start_and_wait(self._ready, 30, f"prometheus on port {self.port}")
        return self

    def _ready(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as answer:
            return bool(answer.status == 200)

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path> and return its `data`; a query Prometheus refuses raises
        ValueError with Prometheus's error."""
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                body = json.loads(answer.read())
        except urllib.error.HTTPError as error:
            body = json.loads(error.read() or b"{}")
        if body.get("status") != "success":
            raise ValueError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector (or scalar, as one sample) of `expr` now."""
        data = self.api("query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def alert_states(self) -> dict[str, str]:
        """Each active alert's name and state (pending or firing); resolved alerts are absent."""
        return {
            alert["labels"]["alertname"]: alert["state"] for alert in self.api("alerts")["alerts"]
        }

    def stop(self) -> None:
        """SIGTERM by pid file."""
        self.daemon.stop()


class Pushgateway:
    """Debian 12's Prometheus Pushgateway on 127.0.0.1, where batch runs push their outcome."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("prometheus-pushgateway")
        if binary is None:
            raise PeerUnavailable(
                "prometheus-pushgateway is not installed "
                "(Debian 12: apt-get install -y prometheus-pushgateway)"
            )
        self.workdir = Path(workdir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.daemon = Daemon(
            "pushgateway",
            [
                binary,
                f"--web.listen-address=127.0.0.1:{self.port}",
                # Debian's build persists to /var/lib/prometheus/pushgateway.data by default,
                # which every instance on the machine would share (and start with).
                f"--persistence.file={self.workdir / 'pushgateway.data'}",
                "--log.level=warn",
            ],
            self.workdir,
        )

    def start(self) -> Pushgateway:
        """Start it and wait until it is ready."""
        self.daemon.start_and_wait(self._ready, 30, f"pushgateway on port {self.port}")
        return self

    def _ready(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as answer:
            return bool(answer.status == 200)

    def metrics(self) -> str:
        """What Prometheus would scrape from it."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as answer:
            return str(answer.read().decode())

    def stop(self) -> None:
        """SIGTERM by pid file."""
        self.daemon.stop()
