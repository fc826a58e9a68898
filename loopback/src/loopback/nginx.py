"""Debian's nginx-light terminating TLS on loopback in front of local HTTP services.

Each site gets its own loopback address (127.0.0.x), port and certificate from a test CA, and
routes path prefixes to upstream URLs, as an Ingress does in the cluster. Headers as an ingress
controller sets them (`Host`, `X-Forwarded-Proto`, `X-Forwarded-For`), so the services behind
build https links.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from loopback.errors import PeerUnavailable
from loopback.processes import Daemon, free_port, port_open
from loopback.tls import TestCA

NGINX = "/usr/sbin/nginx"


@dataclass(frozen=True)
class TlsSite:
    """One TLS server: `url` is https://address:port; `routes` map path prefixes to upstreams."""

    name: str
    address: str
    port: int
    routes: dict[str, str]

    @property
    def url(self) -> str:
        return f"https://{self.address}:{self.port}"


def free_port_on(address: str) -> int:
    """A TCP port for a site on `address`, reserved as processes.free_port reserves one."""
    return free_port(address)


class NginxTls:
    """One nginx process serving several TLS sites; certificates from `ca`."""

    def __init__(self, workdir: Path, ca: TestCA) -> None:
        if not Path(NGINX).exists():
            raise PeerUnavailable("nginx is not installed: apt-get install -y nginx-light")
        self.workdir = Path(workdir)
        self.ca = ca
        self.sites: dict[str, TlsSite] = {}
        # Workers run as nobody when started by root; give them scratch space they can enter.
        self._scratch = Path(tempfile.mkdtemp(prefix="fedeploy-nginx-"))
        self._user: str | None = None
        if os.geteuid() == 0:
            entry = pwd.getpwnam("nobody")
            self._user = f"nobody {grp.getgrgid(entry.pw_gid).gr_name}"
            os.chown(self._scratch, entry.pw_uid, entry.pw_gid)
        self.daemon = Daemon(
            "nginx",
            [NGINX, "-p", str(self.workdir), "-c", str(self.workdir / "nginx.conf")],
            self.workdir,
        )

    def add_site(self, name: str, address: str, routes: dict[str, str]) -> TlsSite:
        """Declare a site (before `start`): address 127.0.0.x, routes {"/": "http://..."}."""
        site = TlsSite(name, address, free_port_on(address), dict(routes))
        self.sites[name] = site
        return site

    def _config(self) -> str:
        scratch = self._scratch
        lines = [
            "daemon off;",
            "master_process on;",
            "worker_processes 1;",
            f"pid {self.workdir / 'nginx-master.pid'};",
            f"error_log {self.workdir / 'nginx-error.log'} warn;",
            *([f"user {self._user};"] if self._user else []),
            "events { worker_connections 256; }",
            "http {",
            "  access_log off;",
            f"  client_body_temp_path {scratch / 'body'};",
            f"  proxy_temp_path {scratch / 'proxy'};",
            f"  fastcgi_temp_path {scratch / 'fastcgi'};",
            f"  uwsgi_temp_path {scratch / 'uwsgi'};",
            f"  scgi_temp_path {scratch / 'scgi'};",
            "  ssl_protocols TLSv1.2 TLSv1.3;",
        ]
        for site in self.sites.values():
            cert = self.ca.issue(site.name, [site.address])
            lines += [
                "  server {",
                f"    listen {site.address}:{site.port} ssl;",
                f"    server_name {site.address};",
                f"    ssl_certificate {cert.cert_file};",
                f"    ssl_certificate_key {cert.key_file};",
            ]
            for prefix, upstream in sorted(site.routes.items()):
                lines += [
                    f"    location {prefix} {{",
                    f"      proxy_pass {upstream.rstrip('/')};",
                    "      proxy_set_header Host $http_host;",
                    "      proxy_set_header X-Forwarded-Proto $scheme;",
                    "      proxy_set_header X-Forwarded-For $remote_addr;",
                    "      proxy_redirect off;",
                    "    }",
                ]
            lines.append("  }")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 15.0) -> NginxTls:
        """Write the configuration, start nginx and wait until every site accepts connections."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "logs").mkdir(exist_ok=True)  # nginx opens its default log at start
        (self.workdir / "nginx.conf").write_text(self._config())
        self.daemon.start_and_wait(
            lambda: all(port_open(s.port, s.address) for s in self.sites.values()),
            timeout,
            "nginx",
        )
        return self

    def stop(self) -> None:
        """Stop by pid file and remove the scratch directory."""
        self.daemon.stop()
        shutil.rmtree(self._scratch, ignore_errors=True)
