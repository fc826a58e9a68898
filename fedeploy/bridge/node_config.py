"""The bridge node's configuration, rendered from templates/bridge: files, setup and cloud-init."""

from __future__ import annotations

import base64
import gzip
import hashlib
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache

import jinja2

from fedeploy.bridge.firewall import FirewallRules
from fedeploy.bridge.slurm_api import adapter_for
from fedeploy.config.bridge import BridgeConfig
from fedeploy.project import project_dir

TEMPLATE_DIR = project_dir() / "templates" / "bridge"
BANNER = "Rendered by fedeploy from templates/bridge; the next deployment overwrites changes."
HEREDOC_END = "FEDEPLOY_END_OF_FILE"

# Secrets reach the node on the setup script's standard input, never in its text.
SECRET_NAMES = ("jwt.key", "tls.key", "tls.crt", "ca.crt", "token")
REST_UNIT = "fedeploy-slurmrestd.service"
TLS_UNIT = "fedeploy-bridge-tls.service"
FIREWALL_UNIT = "fedeploy-bridge-firewall.service"
VM_PACKAGES = (
    "munge",
    "slurmctld",
    "slurmd",
    "slurmrestd",
    "slurm-client",
    "slurm-wlm-jwt-plugin",
    "nginx-light",
    "nftables",
    "curl",
)


@dataclass(frozen=True)
class NodeLayout:
    """Where the bridge's files live on the node; tests root it in a scratch directory."""

    config_dir: str = "/etc/fedeploy-bridge"
    unit_dir: str = "/etc/systemd/system"
    run_dir: str = "/run/fedeploy-bridge"
    # journald's stderr is a socket, which nginx cannot open as a log file.
    access_log: str = "syslog:server=unix:/dev/log,tag=fedeploy_bridge"
    systemd: bool = True

    @property
    def rest_env(self) -> str:
        return f"{self.config_dir}/slurmrestd.env"

    @property
    def tls_conf(self) -> str:
        return f"{self.config_dir}/tls-proxy.conf"

    @property
    def tls_cert(self) -> str:
        return f"{self.config_dir}/tls.crt"

    @property
    def tls_key(self) -> str:
        return f"{self.config_dir}/tls.key"

    @property
    def ca_cert(self) -> str:
        return f"{self.config_dir}/ca.crt"

    @property
    def firewall(self) -> str:
        return f"{self.config_dir}/firewall.nft"

    @property
    def verify(self) -> str:
        return f"{self.config_dir}/verify.sh"


@dataclass(frozen=True)
class NodeSpec:
    """A node line written at render time (tests); a VM writes its own from `slurmd -C`."""

    name: str
    address: str
    cpus: int
    memory_mb: int
    cpus_override: bool = False


@dataclass(frozen=True)
class OneNodeSlurm:
    """The one-node SLURM of a vm bridge: Debian's paths and the scheduler's pace."""

    ctld_port: int = 6817
    d_port: int = 6818
    state_dir: str = "/var/lib/slurm/slurmctld"
    spool_dir: str = "/var/lib/slurm/slurmd"
    pid_dir: str = "/run"
    log_dir: str = "/var/log/slurm"
    node_conf: str = "/etc/slurm/fedeploy-node.conf"
    munge_socket: str | None = None
    # Verified here without cgroups; a VM could use proctrack/cgroup to confine jobs' memory.
    proctrack: str = "proctrack/linuxproc"
    task_plugin: str = "task/none"
    min_job_age: int = 300
    message_timeout: int = 10
    max_time: str = "2-00:00:00"
    def_mem_per_cpu: int = 1024
    node: NodeSpec | None = None


@dataclass(frozen=True)
class NodeFile:
    """A file the setup script installs, and the units to restart when it changes."""

    path: str
    content: str
    mode: str
    owner: str = "root"
    group: str = "root"
    restarts: tuple[str, ...] = ()


@dataclass(frozen=True)
class SecretFile:
    """A file whose content arrives on the setup script's standard input."""

    name: str
    path: str
    mode: str
    owner: str
    group: str
    restarts: tuple[str, ...] = ()


@dataclass(frozen=True)
class BridgeNode:
    """Everything one bridge node gets: its rendered files and its scripts."""

    files: tuple[NodeFile, ...]
    secret_files: tuple[SecretFile, ...]
    setup_script: str
    teardown_script: str
    units: tuple[str, ...] = field(default=())
    secret_names: tuple[str, ...] = field(default=())

    @property
    def content_hash(self) -> str:
        """SHA-256 over every rendered file and script: what a re-deployment compares."""
        digest = hashlib.sha256()
        for text in (self.setup_script, self.teardown_script):
            digest.update(text.encode())
        return digest.hexdigest()


@cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # configuration files, not HTML
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # The one quoting filter: every value a template puts into a shell passes through it.
    environment.filters["shell"] = lambda value: shlex.quote(str(value))
    return environment


def render(template: str, **context: object) -> str:
    """Render one template of templates/bridge with a strict context (a missing name fails)."""
    return _environment().get_template(template).render(banner=BANNER, **context)


def tls_server_name(service: str, namespace: str) -> str:
    """The name pods connect to, which the listener's certificate must carry."""
    return f"{service}.{namespace}.svc.cluster.local"


def bridge_node(
    config: BridgeConfig,
    *,
    bridge_name: str,
    firewall: FirewallRules,
    tls_name: str,
    layout: NodeLayout | None = None,
    slurm: OneNodeSlurm | None = None,
    probe_timeout: int = 30,
) -> BridgeNode:
    """Render a gateway or vm node's files and scripts (existing bridges have no node)."""
    if config.mode == "existing":
        raise ValueError("bridge mode 'existing' has no node to configure: the centre runs it")
    layout = layout or NodeLayout()
    slurm = slurm or OneNodeSlurm()
    one_node = config.mode == "vm"
    tls = config.tls.enabled
    slurm_conf_path = config.slurm_conf_path
    slurmrestd_port = config.internal_port if tls else config.rest_port
    rest_listen = f"127.0.0.1:{config.internal_port}" if tls else f"0.0.0.0:{config.rest_port}"
    context: dict[str, object] = {
        "bridge_name": bridge_name,
        "mode": config.mode,
        "one_node": one_node,
        "tls": tls,
        "tls_name": tls_name,
        "paths": layout,
        "systemd": layout.systemd,
        "slurm": slurm,
        "node": slurm.node,
        "slurm_conf_path": slurm_conf_path,
        "jwt_key_path": config.jwt_key_path,
        "api_version": config.node_api_version,
        # Slurm 23.11 and later serve every version through openapi/slurmctld and pick it by
        # its data_parser plugin; 22.05 had one openapi plugin per version.
        "openapi_plugin": (
            "openapi/v0.0.38" if config.node_api_version == "v0.0.38" else "openapi/slurmctld"
        ),
        "probe": _probe(config.node_api_version),
        "data_parser": (
            None
            if config.node_api_version == "v0.0.38"
            else f"data_parser/{config.node_api_version}"
        ),
        "daemon_user": config.daemon_user,
        "slurm_user": config.slurm_user,
        "service_user": config.service_user,
        "service_home": f"/var/lib/{config.service_user}",
        "partitions": config.partitions,
        "cluster_name": _cluster_name(bridge_name),
        "rest_port": config.rest_port,
        "internal_port": config.internal_port,
        "slurmrestd_port": slurmrestd_port,
        "rest_listen": rest_listen,
        "firewall": firewall,
        "ipv6": bool(firewall.ipv6),
        "probe_timeout": probe_timeout,
        "wait_seconds": 30,
    }

    slurm_units: tuple[str, ...] = (
        ("munge.service", "slurmctld.service", "slurmd.service") if one_node else ()
    )
    files: list[NodeFile] = [
        NodeFile(
            layout.firewall, render("firewall.nft.j2", **context), "0644", restarts=(FIREWALL_UNIT,)
        ),
        NodeFile(
            layout.rest_env, render("slurmrestd.env.j2", **context), "0644", restarts=(REST_UNIT,)
        ),
        NodeFile(layout.verify, render("verify.sh.j2", **context), "0755"),
    ]
    if one_node:
        files.append(
            NodeFile(
                slurm_conf_path,
                render("slurm.conf.j2", **context),
                "0644",
                restarts=(*slurm_units[1:], REST_UNIT),
            )
        )
    if tls:
        files.append(
            NodeFile(
                layout.tls_conf,
                render("tls-proxy.conf.j2", **context),
                "0644",
                restarts=(TLS_UNIT,),
            )
        )
    unit_templates = [
        (FIREWALL_UNIT, "fedeploy-bridge-firewall.service.j2"),
        (REST_UNIT, "fedeploy-slurmrestd.service.j2"),
    ]
    if tls:
        unit_templates.append((TLS_UNIT, "fedeploy-bridge-tls.service.j2"))
    for unit, template in unit_templates:
        files.append(
            NodeFile(
                f"{layout.unit_dir}/{unit}",
                render(template, **context),
                "0644",
                restarts=("units", unit),
            )
        )
    units = (*slurm_units, *(unit for unit, _ in unit_templates))

    # The controller reads the key when it starts: on a vm bridge it is ours to restart.
    secret_files = [
        SecretFile(
            "jwt.key",
            config.jwt_key_path,
            "0600",
            config.slurm_user,
            config.slurm_user,
            ("slurmctld.service",) if one_node else (),
        ),
    ]
    if tls:
        secret_files += [
            SecretFile(
                "tls.key",
                layout.tls_key,
                "0600",
                config.daemon_user,
                config.daemon_user,
                (TLS_UNIT,),
            ),
            SecretFile("tls.crt", layout.tls_cert, "0644", "root", "root", (TLS_UNIT,)),
            SecretFile("ca.crt", layout.ca_cert, "0644", "root", "root"),
        ]
    for file in files:
        if HEREDOC_END in file.content:
            raise ValueError(
                f"{file.path}: the rendered file contains the setup script's delimiter"
            )
        if not file.content.endswith("\n"):
            raise ValueError(f"{file.path}: a rendered file must end with a newline")

    tools = {"nft": "nftables", "curl": "curl", "slurmrestd": "slurmrestd", "useradd": "passwd"}
    if tls:
        tools["nginx"] = "nginx-light"
    # A gateway verifies with the service user's token; a vm asks its own controller for one.
    secret_names = tuple(s.name for s in secret_files) + (
        ("token",) if config.mode == "gateway" else ()
    )
    directories = [{"path": layout.config_dir, "mode": "0755", "owner": "root", "group": "root"}]
    setup = render(
        "setup.sh.j2",
        **context,
        required_tools=tools,
        secret_names=secret_names,
        directories=directories,
        files=files,
        secret_files=secret_files,
        units=units,
        delimiter=HEREDOC_END,
    )
    removed = [f.path for f in files] + [s.path for s in secret_files]
    teardown = render(
        "teardown.sh.j2", **context, units=units[len(slurm_units) :], removed_files=removed
    )
    return BridgeNode(tuple(files), tuple(secret_files), setup, teardown, units, secret_names)


def secret_stdin(secrets: Mapping[str, str | bytes]) -> str:
    """The setup script's standard input: one '<name><TAB><base64>' line per secret."""
    lines = []
    for name, value in sorted(secrets.items()):
        if name not in SECRET_NAMES:
            raise ValueError(f"unknown bridge secret {name!r} (allowed: {', '.join(SECRET_NAMES)})")
        raw = value.encode() if isinstance(value, str) else value
        lines.append(f"{name}\t{base64.b64encode(raw).decode()}\n")
    return "".join(lines)


def user_data_base64(cloud_config: str) -> str:
    """Gzip and base64 for EC2, whose 16 KiB user-data limit the plain text would exceed."""
    # mtime=0 keeps the bytes, and so the instance, unchanged from run to run.
    packed = gzip.compress(cloud_config.encode(), compresslevel=9, mtime=0)
    if len(packed) > 16 * 1024:
        raise ValueError(f"bridge cloud-init is {len(packed)} bytes gzipped, above EC2's 16384")
    return base64.b64encode(packed).decode()


def _probe(api_version: str) -> dict[str, object]:
    """How verify.sh tells a refused token from a down controller on this API version: the
    client's own probe (BridgeClient.diagnose)."""
    api = adapter_for(api_version)
    return {
        "method": api.probe_method,
        "job_id": api.probe_job_id,
        "refused": sorted(api.token_refused),
    }


def _cluster_name(bridge_name: str) -> str:
    # slurm.conf's ClusterName: lower case, at most 40 characters.
    return bridge_name.lower().replace("_", "-")[:40]
