"""How the cluster reaches a bridge: names, the endpoint pods use, the certificate's names."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from fedeploy.bridge.node_config import tls_server_name
from fedeploy.config.bridge import BridgeConfig, is_ip_address

SERVICE_NAME = "fedeploy-slurm-bridge"
SECRET_NAME = "fedeploy-slurm-bridge"
COMPONENT_LABELS = {
    "app.kubernetes.io/name": "slurm-bridge",
    "app.kubernetes.io/component": "slurm-bridge",
}
# A generated CA outlives many server certificates, which renew at a quarter of their life.
CA_VALIDITY_HOURS = 5 * 8760


@dataclass(frozen=True)
class ServiceTarget:
    """Where the Service sends pods: a DNS name (ExternalName) or an address (EndpointSlice)."""

    kind: Literal["dns", "address"]
    host: str | None  # None: the address is only known once the VM exists
    port: int


def endpoint(config: BridgeConfig, namespace: str) -> str:
    """The URL pods use. Gateway and vm: the Service's name, which the generated certificate
    carries; existing: the centre's own URL, whose certificate names the centre's host."""
    if config.mode == "existing":
        assert config.endpoint is not None
        return config.endpoint.rstrip("/")
    scheme = "https" if config.tls.enabled else "http"
    return f"{scheme}://{tls_server_name(SERVICE_NAME, namespace)}:{config.rest_port}"


def service_target(config: BridgeConfig) -> ServiceTarget:
    """What the bridge's Service points at."""
    if config.mode == "vm":
        return ServiceTarget("address", None, config.rest_port)
    if config.mode == "gateway":
        assert config.host is not None
        host, port = config.host, config.rest_port
    else:
        assert config.endpoint is not None
        url = urlsplit(config.endpoint)
        host = url.hostname or ""
        port = url.port or (443 if url.scheme == "https" else 80)
    return ServiceTarget("address" if is_ip_address(host) else "dns", host, port)


def certificate_names(config: BridgeConfig, namespace: str) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) of a generated server certificate: the Service's names, and
    the gateway's own name for checks from the node itself."""
    dns = [
        SERVICE_NAME,
        f"{SERVICE_NAME}.{namespace}",
        f"{SERVICE_NAME}.{namespace}.svc",
        tls_server_name(SERVICE_NAME, namespace),
    ]
    ips: list[str] = []
    if config.mode == "gateway" and config.host is not None:
        (ips if is_ip_address(config.host) else dns).append(config.host)
    return dns, ips


def remote_command(script: str) -> str:
    """The SSH command that runs a rendered script as root (the SSH user needs sudo without a
    password); the script's text is no secret, its secrets come on standard input."""
    return f"sudo -n bash -c {shlex.quote(script)}"
