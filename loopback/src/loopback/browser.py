"""STAC Browser served on loopback as its pod serves it: nginx, the built files, a config.js.

The pod's nginx runs the site configuration the catalog chart renders (a `server` block
listening on 8080 with root /usr/share/nginx/html, its security headers included); here the
same block listens on a free port of 127.0.0.1 and serves a copy of the build (services/browser/
build.sh) with the given `config.js` beside its index.html. A TLS front (`NginxTls`) routes a
site's `/` to `url`, as the Ingress routes the browser's host to its Service.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import tempfile
from pathlib import Path

from loopback.errors import PeerStartError, PeerUnavailable
from loopback.nginx import NGINX
from loopback.processes import Daemon, free_port, port_open

# What the chart's (and the image's) site configuration listens on and serves from.
POD_LISTEN = re.compile(r"^(\s*)listen\s+8080\s*;", re.MULTILINE)
POD_ROOT = re.compile(r"^(\s*)root\s+/usr/share/nginx/html\s*;", re.MULTILINE)


class BrowserServer:
    """nginx on 127.0.0.1 serving `dist` with `config_js` as its config.js under the `site`
    server block (listen 8080 and root /usr/share/nginx/html are replaced). Raises
    PeerUnavailable without nginx or a build, PeerStartError for a block lacking either line."""

    def __init__(self, workdir: Path, dist: Path, config_js: str, site: str) -> None:
        if not Path(NGINX).exists():
            raise PeerUnavailable("nginx is not installed: apt-get install -y nginx-light")
        if not (dist / "index.html").is_file():
            raise PeerUnavailable(
                f"no STAC Browser build in {dist}: make browser (npm ci and services/browser/build.sh)"
            )
        for line, pattern in (
            ("listen 8080;", POD_LISTEN),
            ("root /usr/share/nginx/html;", POD_ROOT),
        ):
            if not pattern.search(site):
                raise PeerStartError(f"the browser's site configuration has no '{line}'")
        self.workdir = Path(workdir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Workers run as nobody when started by root: the files and scratch space must be theirs
        # to read and enter, outside pytest's private temporary directory.
        self._scratch = Path(tempfile.mkdtemp(prefix="fedeploy-browser-"))
        self._scratch.chmod(0o755)
        self.root = self._scratch / "html"
        shutil.copytree(dist, self.root)
        (self.root / "config.js").write_text(config_js)
        self._user: str | None = None
        if os.geteuid() == 0:
            entry = pwd.getpwnam("nobody")
            self._user = f"nobody {grp.getgrgid(entry.pw_gid).gr_name}"
        site = POD_LISTEN.sub(rf"\g<1>listen 127.0.0.1:{self.port};", site)
        self.site = POD_ROOT.sub(rf"\g<1>root {self.root};", site)
        self.daemon = Daemon(
            "browser-nginx",
            [NGINX, "-p", str(self.workdir), "-c", str(self.workdir / "browser-nginx.conf")],
            self.workdir,
        )

    def _config(self) -> str:
        scratch = self._scratch
        return "\n".join(
            [
                "daemon off;",
                "worker_processes 1;",
                f"pid {self.workdir / 'browser-nginx-master.pid'};",
                f"error_log {self.workdir / 'browser-nginx-error.log'} warn;",
                *([f"user {self._user};"] if self._user else []),
                "events { worker_connections 256; }",
                "http {",
                "  include /etc/nginx/mime.types;",
                "  default_type application/octet-stream;",
                "  access_log off;",
                "  server_tokens off;",
                f"  client_body_temp_path {scratch / 'body'};",
                f"  proxy_temp_path {scratch / 'proxy'};",
                f"  fastcgi_temp_path {scratch / 'fastcgi'};",
                f"  uwsgi_temp_path {scratch / 'uwsgi'};",
                f"  scgi_temp_path {scratch / 'scgi'};",
                self.site,
                "}",
                "",
            ]
        )

    def start(self, timeout: float = 15.0) -> BrowserServer:
        """Write the configuration, start nginx and wait until it accepts connections."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "logs").mkdir(exist_ok=True)  # nginx opens its default log at start
        (self.workdir / "browser-nginx.conf").write_text(self._config())
        self.daemon.start_and_wait(lambda: port_open(self.port), timeout, "browser nginx")
        return self

    def stop(self) -> None:
        """Stop by pid file and remove the served copy."""
        self.daemon.stop()
        shutil.rmtree(self._scratch, ignore_errors=True)
