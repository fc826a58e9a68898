"""What every kind of site's model shares: the kinds, the tags and the base model the
per-kind models (fedeploy/config/site.py, openstack.py, ovh.py) build on."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from fedeploy.config.base import StrictModel
from fedeploy.config.monitoring import Monitoring

Kind = Literal["aws", "kubernetes", "hpc", "hub", "openstack", "ovh"]
KINDS: tuple[str, ...] = ("aws", "kubernetes", "hpc", "hub", "openstack", "ovh")

RESERVED_TAG_PREFIXES = ("aws:", "fedeploy:")


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
        "_ . : / = + - @ (what AWS accepts on every resource)."
    ),
]


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
    def _service_buckets_exist(self) -> SiteBase:
        services = getattr(self, "services", None)
        storage = getattr(self, "storage", None)
        if services is None or storage is None:
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
        return self
