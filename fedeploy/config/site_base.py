"""What every kind of site's model shares: the kinds, the tags and the base model the
per-kind models (fedeploy/config/site.py, openstack.py, ovh.py) build on."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from fedeploy.config.base import StrictModel
from fedeploy.config.monitoring import Monitoring

Kind = Literal["aws", "kubernetes", "hpc", "hub", "openstack", "ovh"]
KINDS: tuple[str, ...] = ("aws", "kubernetes", "hpc", "hub", "openstack", "ovh")

RESERVED_TAG_PREFIXES = ("aws:", "fedeploy:")
# The kinds fedeploy provisions itself, the only ones a storage-only site (role: storage) can be.
STORAGE_ONLY_KINDS: tuple[str, ...] = ("aws", "openstack", "ovh")


def a_kind_site(kind: str) -> str:
    """`an hpc site`, `a kubernetes site`: the article as the kind is said (a-w-s, h-p-c)."""
    article = "an" if kind in ("aws", "hpc", "openstack", "ovh") else "a"
    return f"{article} {kind} site"


SiteRole = Literal["full", "storage"]
ROLE_DESCRIPTION = (
    "What the site runs. full (the default): its cluster, network, services and bridge as "
    "declared. storage: a storage-only site, its buckets and nothing else (private, encrypted, "
    "versioned as declared; no cluster, no network, no services, no bridge), which other sites "
    "replicate to and the hub lists as a storage member; cluster, network (private_network on "
    "ovh), services, bridge, workload_identities and monitoring are refused on it."
)
# Keys a storage-only site refuses (those its kind has), and what each would have built.
# What each key is, said after "has no" (so without an article).
INFRASTRUCTURE_KEYS = {
    "cluster": "Kubernetes cluster",
    "network": "network",
    "private_network": "private network",
    "services": "services",
    "bridge": "SLURM bridge",
    "workload_identities": "workload identities",
    "monitoring": "charts for a Prometheus to monitor",
}


def is_storage_only(site: Any) -> bool:
    """Whether a validated site of any kind is a storage-only site (role: storage)."""
    return getattr(site, "role", "full") == "storage"


def _declared(value: Any) -> str:
    """What a refused key holds, in words: its keys (`catalog, ingestion`), or the value."""
    if isinstance(value, dict) and value:
        return ", ".join(sorted(value))
    if value is None:
        return "an empty value"  # `cluster:` with nothing after it
    return "an empty mapping" if isinstance(value, dict) else repr(value)


def _full_site_key_missing(key: str) -> ValueError:
    return ValueError(
        f"site.{key}: is required on a site that runs services (role: full, the default); a "
        "site of buckets only sets role: storage"
    )


def storage_only_refusals(model: type[ProvisionedSiteBase], data: Any) -> Any:
    """A `mode="before"` check of a provisioned kind's raw site: on `role: storage`, refuse what
    a storage-only site cannot have (ValueError naming the key, what was found and what is
    allowed) and switch its services off so nothing downstream deploys one; else `data`."""
    if not isinstance(data, dict) or data.get("role") != "storage":
        return data
    refused = [key for key in INFRASTRUCTURE_KEYS if key in model.model_fields]
    for key in refused:
        if key in data:
            found = _declared(data[key])
            allowed = ", ".join(k for k in model.model_fields if k not in refused)
            raise ValueError(
                f"site.{key}: a storage-only site (role: storage) has no "
                f"{INFRASTRUCTURE_KEYS[key]}; found {key}: {found}. Allowed on a storage-only "
                f"site: {allowed}; or remove role: storage to run a full site"
            )
    return {**data, "services": {"catalog": {"enabled": False}}}


def require_full_site_keys(site: Any, keys: tuple[str, ...]) -> None:
    """A full site (role: full) needs `keys` (its cluster, network); ValueError naming the first
    one missing."""
    if site.role == "storage":
        return
    for key in keys:
        if getattr(site, key) is None:
            raise _full_site_key_missing(key)


def _unreserved(key: str) -> str:
    """AWS refuses `aws:` keys; fedeploy's own `fedeploy:` tags would silently replace the user's."""
    if key.lower().startswith(RESERVED_TAG_PREFIXES):
        raise PydanticCustomError(
            "reserved_tag",
            "tag keys starting with aws: (AWS's) or fedeploy: (fedeploy's own, which would "
            "replace yours) are reserved",
        )
    return key


Tags = Annotated[
    dict[
        Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:/=+@-]{1,63}$"), AfterValidator(_unreserved)],
        Annotated[
            str,
            Field(
                max_length=256,
                pattern=r"^[\p{L}\p{N}\p{Zs}_.:/=+@-]*$",
            ),
        ],
    ],
    Field(
        description="Tags on every cloud resource the site creates (AWS, OpenStack and OVHcloud "
        "resources; not Kubernetes objects). Keys: 1 to 63 letters, digits and _ . : / = + - @, "
        "not starting with aws: or fedeploy:; values: up to 256 letters, digits, spaces and "
        "_ . : / = + - @ (what AWS accepts on every resource). On openstack sites each tag is "
        "the string key=value, which OpenStack's APIs limit further: up to 255 characters "
        "(Neutron: network, subnet, router, security groups); without '/' or ',' too with "
        "workload_identities (Keystone projects); up to 60 characters without '/' or ',' with "
        "bridge.mode vm (Nova: the bridge VM)."
    ),
]


# What OpenStack takes of a tag: openstack sites tag their resources with `key=value` strings
# (components/providers/openstack/network.py tag_list). Per service (the API's own limits):
# (what carries the tags, most characters, whether '/' and ',' are refused).
_NEUTRON = ("Neutron (the site's network, subnet, router and security groups)", 255, False)
_KEYSTONE = ("Keystone (the projects of workload_identities)", 255, True)
_NOVA = ("Nova (the bridge VM, bridge.mode: vm)", 60, True)


def openstack_tag_rules(site: Any) -> list[tuple[str, int, bool]]:
    """The OpenStack services that get an openstack site's tags, each with its rule: Neutron
    (tags up to 255 characters), Keystone (1 to 255, without '/' or ','), Nova (up to 60,
    without '/' or ','). A storage-only site tags nothing (its S3 buckets take no tags)."""
    if getattr(site, "kind", None) != "openstack" or is_storage_only(site):
        return []
    rules = [_NEUTRON]
    if getattr(site, "workload_identities", None) is not None:
        rules.append(_KEYSTONE)
    bridge = getattr(site, "bridge", None)
    if bridge is not None and bridge.mode == "vm":
        rules.append(_NOVA)
    return rules


def _openstack_tag_problem(key: str, value: str, rules: list[tuple[str, int, bool]]) -> str | None:
    """Why the tag `key=value` breaks the rules of the services that get it; None when it fits."""
    tag = f"{key}={value}"
    broken = [
        f"{service} takes tags of up to {most} characters"
        + (" without '/' or ','" if no_separators else "")
        for service, most, no_separators in rules
        if len(tag) > most or (no_separators and ("/" in tag or "," in tag))
    ]
    if not broken:
        return None
    shown = tag if len(tag) <= 72 else f"{tag[:69]}..."
    separators = sorted({c for c in "/," if c in tag})
    found = f"{len(tag)} characters" + (
        f", with {' and '.join(repr(c) for c in separators)}" if separators else ""
    )
    return (
        f"site.tags.{key}: on an openstack site the tag is the string {shown!r} ({found}); "
        + "; ".join(broken)
        + ": shorten it or leave those characters out"
    )


class SiteBase(StrictModel):
    """The keys every kind of site has: environment, tags, monitoring."""

    environment: Literal["production", "staging", "development"] = Field(
        "production", description="Production sites deploy only after approval in GitOps."
    )
    tags: Tags = Field(default_factory=dict)
    monitoring: Monitoring = Field(
        default_factory=Monitoring,
        description="How the site's charts meet the cluster's Prometheus: monitors, alert rules "
        "and dashboards (docs/charts.md, Monitoring).",
    )

    @model_validator(mode="after")
    def _tags_fit_openstack(self) -> SiteBase:
        """Tags are checked against AWS's rules above; an openstack site's become `key=value`
        strings on Neutron, Keystone and Nova resources, whose APIs refuse more."""
        rules = openstack_tag_rules(self)
        for key, value in sorted(self.tags.items()) if rules else ():
            problem = _openstack_tag_problem(key, value, rules)
            if problem is not None:
                raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _services_not_in_prometheus_namespace(self) -> SiteBase:
        """The services' namespace (services.namespace, a hub's too) is fedeploy's: it creates
        it, labels it restricted and deletes it with the stack, so it cannot be the cluster
        Prometheus's (monitoring.namespace)."""
        namespace = getattr(getattr(self, "services", None), "namespace", None)
        if (
            namespace is not None
            and self.monitoring.enabled is not False  # off: no Prometheus of the site's to meet
            and namespace == self.monitoring.namespace
        ):
            raise ValueError(
                f"services.namespace is {namespace!r}, also monitoring.namespace (the cluster Prometheus's): "
                "fedeploy creates the services' namespace (creating one that exists fails at "
                "pulumi up), labels it with the restricted Pod Security level and deletes it "
                "with the stack, and the NetworkPolicies admit Prometheus's namespace to every "
                "metrics port; give the services a namespace of their own, e.g. fedeploy"
            )
        return self

    @model_validator(mode="after")
    def _service_buckets_exist(self) -> SiteBase:
        services = getattr(self, "services", None)
        storage = getattr(self, "storage", None)
        if services is None or storage is None or is_storage_only(self):
            return self
        if getattr(self, "cluster", "") is None:  # a full site without one: its own check says so
            return self
        for service in ("ingestion", "inference"):
            spec = getattr(services, service, None)
            if spec is not None and spec.enabled and spec.bucket not in storage.buckets:
                allowed = ", ".join(sorted(storage.buckets))
                raise ValueError(
                    f"services.{service}.bucket is {spec.bucket!r}, which storage.buckets does not "
                    f"declare (declared: {allowed})"
                )
        catalog = getattr(services, "catalog", None)
        if (
            catalog is not None
            and catalog.enabled
            and catalog.database == "internal"
            and catalog.backup.enabled
            and catalog.backup.bucket not in storage.buckets
        ):
            raise ValueError(
                f"services.catalog.backup.bucket is {catalog.backup.bucket!r}, which "
                f"storage.buckets does not declare (declared: {', '.join(sorted(storage.buckets))})"
            )
        if (
            catalog is not None
            and catalog.backup.enabled
            and catalog.backup.bucket in storage.buckets
        ):
            lifecycle = storage.buckets[catalog.backup.bucket].lifecycle
            expiry = getattr(lifecycle, "expire_after_days", None)
            if expiry is not None and expiry < catalog.backup.retention_days:
                raise ValueError(
                    f"storage.buckets.{catalog.backup.bucket}.lifecycle.expire_after_days "
                    f"({expiry}) is below services.catalog.backup.retention_days "
                    f"({catalog.backup.retention_days}): the bucket would delete backups the "
                    "retention keeps; raise the expiry or back up to another bucket"
                )
        if catalog is not None:
            _backup_choices_hold(catalog, services, getattr(self, "kind", ""))
        return self


def _backup_choices_hold(catalog: Any, services: Any, kind: str) -> None:
    """A drill asked for without backups, or an object lock on openstack or ovh on a bucket
    other workloads write (there a lock needs a bucket created with it, and pins their objects):
    ValueError naming the key path."""
    backup = catalog.backup
    if (
        not backup.enabled
        and "drill" in backup.model_fields_set
        and "enabled" in backup.drill.model_fields_set
        and backup.drill.enabled
    ):
        raise ValueError(
            "services.catalog.backup.drill.enabled is true but services.catalog.backup.enabled "
            "is false: the drill restores the backups, so without them it never runs; turn "
            "backups on or remove the drill setting"
        )
    if kind not in ("openstack", "ovh") or backup.object_lock in (None, "off"):
        return
    shared = [
        f"services.{name}"
        for name in ("ingestion", "inference")
        if getattr(getattr(services, name, None), "bucket", None) == backup.bucket
    ]
    if shared:
        raise ValueError(
            f"services.catalog.backup.object_lock is {backup.object_lock!r} on bucket "
            f"{backup.bucket!r}, which {' and '.join(shared)} also use: "
            f"{kind} stores lock only a bucket created with the lock (an existing one would be "
            "replaced, and pulumi up stops on it), and the lock would pin their objects for "
            "the lock's days too. Declare a bucket for the backups alone (storage.buckets."
            "backups) and set services.catalog.backup.bucket: backups"
        )


def _role_schema(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """What the validators say, for editors: a full site requires its FULL_SITE_KEYS, a
    storage-only one has none of INFRASTRUCTURE_KEYS."""
    refused = [k for k in INFRASTRUCTURE_KEYS if k in model.model_fields]
    schema["if"] = {"properties": {"role": {"const": "storage"}}, "required": ["role"]}
    schema["then"] = {
        "not": {"anyOf": [{"properties": {key: True}, "required": [key]} for key in refused]}
    }
    required = list(getattr(model, "FULL_SITE_KEYS", ()))
    schema["else"] = {"properties": dict.fromkeys(required, True), "required": required}


class ProvisionedSiteBase(SiteBase):
    """A kind fedeploy provisions (aws, openstack, ovh): a full site, or a storage-only one."""

    model_config = ConfigDict(json_schema_extra=_role_schema)

    # The keys a full site of the kind must set (a storage-only site refuses them).
    FULL_SITE_KEYS: ClassVar[tuple[str, ...]] = ("cluster",)

    role: SiteRole = Field("full", description=ROLE_DESCRIPTION)

    @model_validator(mode="before")
    @classmethod
    def _storage_only(cls, data: Any) -> Any:
        return storage_only_refusals(cls, data)

    @model_validator(mode="after")
    def _full_site_keys(self) -> ProvisionedSiteBase:
        require_full_site_keys(self, self.FULL_SITE_KEYS)
        return self

    @property
    def storage_only(self) -> bool:
        """Whether the site is buckets only (role: storage)."""
        return is_storage_only(self)
