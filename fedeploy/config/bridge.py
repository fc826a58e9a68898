"""The `site.bridge` section: how the federation reaches a SLURM through slurmrestd."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from fedeploy.config.addresses import url_port_problem
from fedeploy.config.base import Secret, SecretValue, StrictModel, no_userinfo
from fedeploy.config.pem import pem_bundle_problem
from fedeploy.config.site_base import a_kind_site

# POSIX user names as useradd accepts them by default; SLURM puts them in the token's `sun`.
UserName = Annotated[
    str,
    Field(pattern=r"^[a-z_][a-z0-9_-]{0,31}$", description="A POSIX user name."),
]
# A SLURM partition name as the bridge passes it: in the job's JSON (the inference chart's
# bridge.partition, INFER_BRIDGE_PARTITION) and in the comma-separated list of partitions the
# bridge allows, so no comma or whitespace. slurm.conf takes any other word, `_debug` and
# `.small` included, but DEFAULT (in any case) names the record of defaults, never a partition.
PARTITION_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"


def _partition(value: str) -> str:
    if value.upper() == "DEFAULT":
        raise ValueError(
            f"{value!r} is not a partition: slurm.conf's PartitionName=DEFAULT sets the other "
            "partitions' defaults; name a partition `sinfo -s` lists"
        )
    return value


PartitionName = Annotated[
    str,
    Field(
        pattern=PARTITION_PATTERN,
        description="A SLURM partition name: letters, digits, '_', '.' and '-', 1 to 64 "
        "characters, not DEFAULT.",
    ),
    AfterValidator(_partition),
]
# The slurmrestd API versions the bridge client has an adapter for (fedeploy/bridge/slurm_api.py).
ApiVersion = Literal["v0.0.38", "v0.0.40", "v0.0.41", "v0.0.42", "v0.0.43", "v0.0.44", "v0.0.45"]
# What a gateway or vm node serves when the stack file names no version: Debian 12's Slurm 22.05.
DEFAULT_NODE_API_VERSION = "v0.0.38"
# A file on the bridge node. It reaches a shell (quoted), slurm.conf, slurmrestd's environment
# file and systemd units: the characters below are plain words in all four syntaxes.
NODE_PATH_PATTERN = r"^/[A-Za-z0-9._/-]+$"


def _node_path(value: str) -> str:
    if not re.fullmatch(NODE_PATH_PATTERN, value):
        raise ValueError(
            f"{value!r} is not an absolute path of letters, digits and . _ / - "
            f"(pattern {NODE_PATH_PATTERN})"
        )
    parts = value.split("/")[1:]
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"{value!r} has an empty, '.' or '..' component; give the plain path")
    return value


NodePath = Annotated[
    str,
    AfterValidator(_node_path),
    Field(description="An absolute path on the bridge node.", pattern=NODE_PATH_PATTERN),
]
# A DNS name or an IPv4/IPv6 address; validated further below.
HostName = Annotated[str, Field(min_length=1, max_length=253)]

_DNS_NAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


def is_ip_address(host: str) -> bool:
    """True when `host` is a literal IPv4 or IPv6 address rather than a DNS name."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# Where each URL of the bridge's section is used from, and why an IPv6 literal cannot reach it.
_URL_IPV6_REASONS = {
    "endpoint": "the inference chart's NetworkPolicies admit the bridge over IPv4 (0.0.0.0/0) "
    "only (and its values.schema.json takes no IPv6 address)",
    "auth_url": "the bridge VM's security group lets it out over IPv4 only",
}


_URL_WORDS = {
    "endpoint": "http(s)://host[:port][/], the host a DNS name or an IPv4 address, the port 1 "
    "to 65535 (none: 443 for https, 80 for http)",
    "auth_url": "https://host[:port][/path]/v3, the host a DNS name or an IPv4 address, the port "
    "1 to 65535 (none: 443)",
}


def bridge_url_problem(url: str, field: str) -> str | None:
    """Why `url` (bridge.endpoint or bridge.auth_url, already matching its pattern) cannot be
    used; None when it can. Its port is 1 to 65535 (it becomes the inference NetworkPolicy's
    egress port, or the VM's security-group egress port, which Kubernetes and Neutron refuse
    outside that range), and its host not an IPv6 literal (reached over IPv4 only)."""
    authority = url.partition("://")[2].partition("/")[0]
    if authority.startswith("["):
        return f"IPv6 addresses are not supported in bridge.{field}: {_URL_IPV6_REASONS[field]}"
    return url_port_problem(url)


class BridgeTls(StrictModel):
    """TLS on the bridge's REST listener (a TLS proxy in front of slurmrestd, which has none)."""

    enabled: bool = Field(
        True,
        description=(
            "Serve the REST API over TLS only (gateway, vm: an nginx TLS proxy in front of a "
            "loopback-only slurmrestd; existing: the endpoint must be https). Turning it off sends "
            "the bearer token in clear text."
        ),
    )
    certificate: str | None = Field(
        None,
        description=(
            "PEM server certificate for the listener (gateway, vm). Unset: fedeploy generates a "
            "private CA and a server certificate and gives pods the CA."
        ),
    )
    private_key: Secret | None = Field(
        None, description="The PEM private key of `certificate` (a secret); set both or neither."
    )
    ca_certificate: str | None = Field(
        None,
        description=(
            "PEM CA that clients trust for the listener: for `certificate` or an existing endpoint "
            "signed by a private CA. Unset: the generated CA, or the system's trust store."
        ),
    )
    validity_hours: int = Field(
        8760,
        ge=24,
        le=8760 * 3,
        description="Lifetime of a generated server certificate, in hours (24 to 26280).",
    )

    @field_validator("certificate", "ca_certificate")
    @classmethod
    def _pem(cls, value: str | None, info: ValidationInfo) -> str | None:
        problem = pem_bundle_problem(value) if value is not None else None
        if problem:
            raise ValueError(f"tls.{info.field_name} {problem}")
        return value

    @model_validator(mode="after")
    def _pairs(self) -> BridgeTls:
        if (self.certificate is None) != (self.private_key is None):
            raise ValueError("tls.certificate and tls.private_key go together: set both or neither")
        if not self.enabled and (self.certificate or self.ca_certificate):
            raise ValueError(
                "tls.enabled is false but tls.certificate or tls.ca_certificate is set: "
                "remove them or enable TLS"
            )
        return self


# The fields a vm bridge needs, by the cloud it runs on.
VM_FIELDS: dict[str, tuple[str, ...]] = {
    "aws": ("instance_type", "ami"),
    "openstack": ("flavor_id", "image_id", "auth_url"),
}


def check_vm_platform(bridge: BridgeConfig | None, kind: str) -> None:
    """Refuse a vm bridge whose fields belong to another cloud than the site's `kind`
    ('aws' or 'openstack'); other kinds offer no vm bridge. Raises ValueError naming the keys."""
    if bridge is None or bridge.mode != "vm":
        return
    if kind not in VM_FIELDS:
        raise ValueError(
            f"bridge.mode 'vm' is not offered on {kind} sites yet; use 'gateway' (the centre's "
            "node over SSH) or 'existing' (the centre's slurmrestd)"
        )
    if bridge.vm_platform != kind:
        fields = ", ".join(f"bridge.{f}" for f in VM_FIELDS[kind])
        raise ValueError(
            f"bridge.mode is 'vm' on {a_kind_site(kind)}, which requires {fields} "
            f"(found the fields of {bridge.vm_platform})"
        )


# The widest range allowed_cidrs may name, by IP version.
_WIDEST_ALLOWED = {4: 8, 6: 32}


class BridgeProbe(StrictModel):
    """The inference chart's bridge probe's own credential (it only checks its token and pings).

    docs/operations.md, SlurmBridgeDown, says which SLURM account is enough."""

    existing_secret: Annotated[
        str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=253)
    ] = Field(
        description=(
            "A Kubernetes Secret in the services' namespace with keys `token` and `user` of a "
            "ping-only SLURM account (a user slurmctld knows, with no association and no "
            "AdminLevel, so it can neither submit nor act on others' jobs), which the probe "
            "uses instead of the submitting service_user's token."
        ),
    )


class BridgeConfig(StrictModel):
    """A SLURM bridge: slurmrestd with JWT authentication, reached from the site's cluster."""

    mode: Literal["gateway", "vm", "existing"] = Field(
        description=(
            "gateway: configure the centre's login or gateway node over SSH; vm: a new one-node "
            "SLURM VM in an aws or openstack site's private subnet, configured by cloud-init; "
            "existing: a "
            "slurmrestd the centre already runs (fedeploy only checks and wires it)."
        )
    )

    # -- gateway: the centre's node, reached over SSH ------------------------------------------
    host: HostName | None = Field(
        None,
        description="gateway: DNS name or IPv4 address of the gateway node (SSH and REST).",
    )
    port: int = Field(22, ge=1, le=65535, description="gateway: the node's SSH port.")
    ssh_user: UserName | None = Field(
        None, description="gateway: the SSH user; needs passwordless sudo to install the bridge."
    )
    ssh_private_key: Secret | None = Field(
        None, description="gateway: the SSH private key (PEM or OpenSSH, a secret)."
    )
    host_key: str | None = Field(
        None,
        pattern=r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+$",
        description=(
            "gateway: the node's SSH host public key ('ssh-ed25519 AAAA...'). Unset: the key is "
            "not checked, which a man in the middle can exploit; set it in production."
        ),
    )
    slurm_conf_path: NodePath = Field(
        "/etc/slurm/slurm.conf",
        description=(
            "The slurm.conf slurmrestd reads: the centre's own on a gateway node; written by "
            "fedeploy on a vm."
        ),
    )

    # -- vm: a bridge instance on an aws site --------------------------------------------------
    instance_type: str | None = Field(
        None,
        pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$",
        description="vm: the EC2 instance type (its CPUs and memory are the SLURM node's).",
    )
    ami: str | None = Field(
        None,
        pattern=r"^ami-[0-9a-f]{8,17}$",
        description=(
            "vm: the Debian 12 AMI of the site's region (`aws ssm get-parameter --name "
            "/aws/service/debian/release/12/latest/amd64`), pinned: a new AMI replaces the VM."
        ),
    )
    root_volume_gb: int = Field(
        30, ge=16, le=2048, description="vm (aws): size of the encrypted root volume, GiB."
    )

    # -- vm: a bridge instance on an openstack site --------------------------------------------
    flavor_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$",
        description=(
            "vm (openstack): the Nova flavor id of the bridge instance (`openstack flavor list`); "
            "its CPUs and memory are the SLURM node's."
        ),
    )
    image_id: str | None = Field(
        None,
        pattern=r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$",
        description=(
            "vm (openstack): the Glance image id (a UUID) of a Debian 12 cloud image, pinned: a "
            "new image replaces the VM."
        ),
    )
    auth_url: Annotated[str | None, BeforeValidator(no_userinfo)] = Field(
        None,
        pattern=r"^https://[^\s/@]+(:\d+)?(/[A-Za-z0-9._~-]+)*/v3/?$",
        description=(
            "vm (openstack): the cloud's Keystone v3 URL as the instance reaches it, e.g. "
            "https://keystone.cloudferro.com:5000/v3 (https only; a DNS name or IPv4 address, "
            "IPv6 addresses are not supported; a port 1 to 65535)."
        ),
    )
    credential_generation: int = Field(
        1,
        ge=1,
        description=(
            "vm (openstack): raise it to replace the boot credential with a fresh one (and the "
            "instance with it), e.g. when the instance is re-created after the credential expired."
        ),
    )
    boot_window_minutes: int = Field(
        30,
        ge=10,
        le=120,
        description=(
            "vm (openstack): the boot window, in minutes (10 to 120): the application credential "
            "that lets the instance read its secrets from Barbican once, at first boot, expires "
            "this long after it is created, so a copy of the user data opens nothing after it."
        ),
    )

    # -- existing: the centre's own slurmrestd -------------------------------------------------
    endpoint: Annotated[str | None, BeforeValidator(no_userinfo)] = Field(
        None,
        pattern=r"^https?://[^\s/@]+(:\d+)?/?$",
        description="existing: the centre's slurmrestd base URL, e.g. "
        "https://slurm-api.example.org:6820 (a DNS name or IPv4 address, IPv6 addresses are not "
        "supported; a port 1 to 65535).",
    )
    token: Secret | None = Field(
        None,
        description=(
            "existing: a token the centre issued for `service_user` (`scontrol token`), a secret; "
            "fedeploy cannot sign tokens for a key it does not hold."
        ),
    )

    # -- all modes ----------------------------------------------------------------------------
    rest_port: int = Field(
        6820,
        ge=1024,
        le=65535,
        description="gateway, vm: the port of the REST listener that the cluster reaches.",
    )
    internal_port: int = Field(
        6821,
        ge=1024,
        le=65535,
        description="gateway, vm: slurmrestd's own port, bound to 127.0.0.1 behind the TLS proxy.",
    )
    api_version: ApiVersion | None = Field(
        None,
        description=(
            "The slurmrestd REST API version: v0.0.38 (Slurm 22.05), v0.0.40 to v0.0.42 (23.11 "
            "to 24.11, tested on 24.11), v0.0.43 to v0.0.45 (25.05 to 26.05). gateway, vm: the "
            "version the node's slurmrestd is configured to serve (unset: v0.0.38, Debian 12's "
            "Slurm 22.05; a vm's must be its image's: Debian 13's 24.11 serves v0.0.40 to "
            "v0.0.42); existing: the version `fedeploy verify` probes (unset: the centre's "
            "/openapi/v3). Clients take the newest version the bridge's /openapi/v3 offers. "
            "docs/bridge.md."
        ),
    )
    daemon_user: UserName = Field(
        "slurmrestd",
        description="gateway, vm: the dedicated unprivileged user slurmrestd runs as (never root or slurm).",
    )
    slurm_user: UserName = Field(
        "slurm",
        description="gateway, vm: the SlurmUser of the controller, owner of the JWT key file.",
    )
    probe: BridgeProbe | None = Field(
        None,
        description=(
            "The bridge probe's own credential. Unset: the probe uses the bridge's Secret, whose "
            "token can submit and cancel jobs as service_user (the plan advises)."
        ),
    )
    service_user: UserName = Field(
        "fedeploy",
        description=(
            "The unprivileged account the federation's jobs run as: the token's subject. Its SLURM "
            "association should admit only `partitions`."
        ),
    )
    jwt_key_path: NodePath = Field(
        "/etc/slurm/jwt_hs256.key",
        description=(
            "gateway, vm: where the JWT signing key is written (mode 0600, owner slurm_user); the "
            "controller's AuthAltParameters=jwt_key= must name it."
        ),
    )
    partitions: list[PartitionName] = Field(
        min_length=1,
        description="The partitions the federation may submit to, each listed once (letters, "
        "digits, '_', '.' and '-', 1 to 64 characters, not DEFAULT); the first is the default.",
    )
    token_lifetime_hours: int = Field(
        168,
        ge=2,
        le=8760,
        description=(
            "Lifetime of the service user's token (gateway, vm). A new token is issued by the "
            "first deployment after half of it has passed."
        ),
    )
    allowed_cidrs: list[str] = Field(
        default_factory=list,
        description=(
            "Extra address ranges admitted to the REST listener, beside the cluster's own ranges; "
            "each at most a /8 (IPv4) or a /32 (IPv6), never 0.0.0.0/0 or ::/0."
        ),
    )
    tls: BridgeTls = Field(default_factory=BridgeTls, description="TLS on the REST listener.")

    # -- validation -------------------------------------------------------------------------------
    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        # A name whose last label is all digits (1.2.3.4.5, 10.0.0.256) is a mistyped address.
        if value is not None and not (
            is_ip_address(value)
            or (_DNS_NAME.match(value) and not value.rsplit(".", 1)[-1].isdigit())
        ):
            raise ValueError(f"host {value!r} is neither a DNS name nor an IP address")
        if value is not None and ":" in value:
            raise ValueError(
                f"IPv6 addresses are not supported in bridge.host ({value!r}): the inference "
                "pods reach the bridge through a Service of the cluster's own address family and "
                "the inference chart's NetworkPolicies admit it over IPv4 (0.0.0.0/0) only; give "
                "the node's DNS name or IPv4 address"
            )
        return value

    @field_validator("allowed_cidrs")
    @classmethod
    def _cidrs(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                net = ipaddress.ip_network(value, strict=True)
            except ValueError as err:
                raise ValueError(
                    f"allowed_cidrs: {value!r} is not an address range: {err}"
                ) from None
            if net.prefixlen == 0:
                raise ValueError(
                    f"allowed_cidrs: {value!r} admits the whole internet; name the ranges that "
                    "need the bridge"
                )
            widest = _WIDEST_ALLOWED[net.version]
            if net.prefixlen < widest:
                # 0.0.0.0/1 and 128.0.0.0/1 together are the whole internet too.
                raise ValueError(
                    f"allowed_cidrs: {value!r} admits a /{net.prefixlen}, a large part of the "
                    f"internet; name the ranges that need the bridge (at most /{widest} each)"
                )
        return values

    @field_validator("partitions")
    @classmethod
    def _unique_partitions(cls, values: list[str]) -> list[str]:
        twice = sorted({p for i, p in enumerate(values) if p in values[:i]})
        if twice:
            raise ValueError(f"partitions lists {twice[0]!r} twice")
        return values

    @field_validator("endpoint", "auth_url")
    @classmethod
    def _url(cls, value: str | None, info: ValidationInfo) -> str | None:
        assert info.field_name is not None
        if value is not None and (problem := bridge_url_problem(value, info.field_name)):
            raise ValueError(f"given {value!r}: {problem}; allowed: {_URL_WORDS[info.field_name]}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _no_lifetime_hours(cls, data: Any) -> Any:
        if isinstance(data, dict) and "credential_lifetime_hours" in data:
            raise ValueError(
                "credential_lifetime_hours is gone: the boot credential now lives for the boot "
                "window only; set boot_window_minutes (10 to 120, default 30) or remove the key"
            )
        return data

    @model_validator(mode="after")
    def _mode_fields(self) -> BridgeConfig:
        needs = {
            "gateway": ("host", "ssh_user", "ssh_private_key"),
            "vm": VM_FIELDS[self.vm_platform or "aws"],
            "existing": ("endpoint", "token"),
        }
        if self.mode == "vm" and self.vm_platform is None:
            raise ValueError(
                "mode is 'vm', which requires instance_type and ami (aws) or flavor_id, "
                "image_id and auth_url (openstack)"
            )
        aws, openstack = (
            [f for f in VM_FIELDS[p] if getattr(self, f) is not None] for p in ("aws", "openstack")
        )
        if aws and openstack:
            raise ValueError(
                f"{aws[0]} (aws) and {openstack[0]} (openstack) are both set; a vm bridge runs "
                "on one cloud: keep the pair of the site's kind"
            )
        if self.mode != "vm" and (aws or openstack):
            field = (aws or openstack)[0]
            raise ValueError(
                f"{field} is set but mode is {self.mode!r}; {field} belongs to mode 'vm'"
            )
        for field in needs[self.mode]:
            if getattr(self, field) is None:
                raise ValueError(f"mode is {self.mode!r}, which requires {field}")
        for other, fields in needs.items():
            if other == self.mode:
                continue
            for field in fields:
                if getattr(self, field) is not None and field not in needs[self.mode]:
                    raise ValueError(
                        f"{field} is set but mode is {self.mode!r}; {field} belongs to mode {other!r}"
                    )
        if self.mode != "gateway" and self.host_key is not None:
            raise ValueError(
                f"host_key is set but mode is {self.mode!r}; host_key belongs to mode 'gateway'"
            )
        return self

    @model_validator(mode="after")
    def _users(self) -> BridgeConfig:
        if "root" in (self.daemon_user, self.service_user):
            raise ValueError("daemon_user and service_user must not be root")
        if self.daemon_user == self.slurm_user:
            raise ValueError(
                f"daemon_user and slurm_user are both {self.daemon_user!r}: slurmrestd must not run "
                "as the SlurmUser, which can impersonate every user"
            )
        if self.service_user in (self.daemon_user, self.slurm_user):
            raise ValueError(
                f"service_user {self.service_user!r} equals daemon_user or slurm_user: jobs need an "
                "account of their own"
            )
        return self

    @model_validator(mode="after")
    def _ports_and_tls(self) -> BridgeConfig:
        if self.mode != "existing" and self.rest_port == self.internal_port:
            raise ValueError(
                f"rest_port and internal_port are both {self.rest_port}: the TLS listener and "
                "slurmrestd need a port each"
            )
        if self.mode == "existing":
            assert self.endpoint is not None
            https = self.endpoint.startswith("https://")
            if self.tls.enabled != https:
                raise ValueError(
                    f"endpoint {self.endpoint!r} and tls.enabled={self.tls.enabled} disagree: use an "
                    "https endpoint, or set tls.enabled to false to accept plain http"
                )
            if self.tls.certificate is not None:
                raise ValueError(
                    "tls.certificate is set but mode is 'existing': the centre serves its own "
                    "certificate; set tls.ca_certificate to trust a private CA"
                )
        return self

    # -- derived ----------------------------------------------------------------------------------
    @property
    def vm_platform(self) -> Literal["aws", "openstack"] | None:
        """The cloud whose vm fields are set: 'aws' (instance_type, ami), 'openstack'
        (flavor_id, image_id), or None when neither pair has a field set."""
        for platform in ("aws", "openstack"):
            if any(getattr(self, f) is not None for f in VM_FIELDS[platform]):
                return platform  # type: ignore[return-value]
        return None

    @property
    def node_api_version(self) -> str:
        """The REST API version a gateway or vm node's slurmrestd is rendered to serve."""
        return self.api_version or DEFAULT_NODE_API_VERSION

    @property
    def default_partition(self) -> str:
        """The partition a job runs in when it names none."""
        return self.partitions[0]

    @property
    def ssh_key(self) -> SecretValue:
        """The SSH key of a gateway bridge (validated present in that mode)."""
        if self.ssh_private_key is None:
            raise ValueError(f"mode {self.mode!r} has no ssh_private_key")
        return self.ssh_private_key
