"""The STAC Browser image built from npm (services/browser) run as the catalog chart runs the
browser (user, read-only root, dropped capabilities, /tmp the only writable path, the chart's
config.js and nginx site mounted from its ConfigMap, the chart's command): it serves the app,
the chart's options and the security headers."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from fedeploy.charts import render_chart
from loopback.processes import port_open, wait_until
from tests.charts.conftest import CHARTS_DIR, NAMESPACE, SITES
from tests.conftest import ROOT
from tests.images.chart_run import chart_command, config_map_files, container_of, podman_run_args
from tests.images.conftest import built_image, podman

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _browser_image() -> str:
    """ghcr.io/fedeploy/stac-browser:<the lock's version>, built by the script unless it was built
    from the tree's inputs (`built_image`)."""
    lock = json.loads((ROOT / "services/browser/package-lock.json").read_text())
    version = lock["packages"]["node_modules/@radiantearth/stac-browser"]["version"]
    tag = f"ghcr.io/fedeploy/stac-browser:{version}"
    return built_image("browser", tag, timeout=1800)


def test_the_browser_image_serves_the_charts_config_and_headers(tmp_path: Path) -> None:
    image = _browser_image()
    values = {
        **SITES["published"]["catalog"],
        "browser": {"enabled": True, "url": "https://browse.example.org/", "oidcClientId": "sb"},
    }
    manifests = render_chart(CHARTS_DIR / "catalog", values, "catalog", NAMESPACE)
    chart = container_of(manifests, "Deployment", "catalog-browser")
    configs = {"config": config_map_files(manifests, "catalog-browser", tmp_path / "config")}
    # The pod listens on 8080; on the host network the test moves nginx to a free port.
    port = 18080 + uuid.uuid4().int % 1000
    site = (tmp_path / "config/default.conf").read_text()
    (tmp_path / "config/default.conf").write_text(site.replace("listen 8080;", f"listen {port};"))
    name = f"browser-{uuid.uuid4().hex[:8]}"
    args = podman_run_args(chart, {}, config_maps=configs)
    podman("run", "-d", "--name", name, *args, *chart_command(chart, image))
    try:
        wait_until(lambda: port_open(port), 20, "the browser image", None)
        base = f"http://127.0.0.1:{port}"
        index = httpx.get(f"{base}/collections/x/items/y", timeout=10)  # history mode
        assert index.status_code == 200
        assert '<script src="/config.js"></script>' in index.text
        policy = index.headers["content-security-policy"]
        assert (
            "connect-src 'self' https://stac.aws-eu.example.org https://login.example.org" in policy
        )
        assert index.headers["x-frame-options"] == "DENY"
        config = httpx.get(f"{base}/config.js", timeout=10)
        assert config.headers["cache-control"] == "no-store"
        # config.js's location sets Cache-Control: it must still send every security header.
        for header in ("x-frame-options", "referrer-policy", "permissions-policy"):
            assert config.headers[header] == index.headers[header], header
        assert config.headers["content-security-policy"] == policy
        assert config.headers["strict-transport-security"] == "max-age=31536000"
        assert config.headers["x-content-type-options"] == "nosniff"
        assert config.text == (tmp_path / "config/config.js").read_text()
        # It served with a read-only root: nginx writes nothing but /tmp (an emptyDir).
        assert "--read-only" in args
    finally:
        logs = podman("logs", name, check=False)
        podman("rm", "-f", name, check=False)
        print(logs.stdout[-2000:], logs.stderr[-2000:])
