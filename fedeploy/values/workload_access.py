"""What each service does in its bucket, as data, and the IAM policy that grants exactly that.

Each entry lists the key prefixes a service's code reads, writes, deletes and resumes multipart
uploads under (read from the code under services/); `workload_policy` turns one entry into a
policy document scoped to one bucket and those prefixes. The integration test
`tests/integration/test_least_privilege.py` attaches the documents the offline plan renders to a
user of an IAM-enforcing moto and runs the services' real code with its keys, so a call the
code makes and this table lacks fails there, not on AWS.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class WorkloadAccess:
    """Key prefixes (each ending in `/`) a service touches in its one bucket.

    reads: `s3:GetObject` (GET and HEAD). writes: `s3:PutObject` (also multipart create, part
    upload and complete, and conditional writes). deletes: `s3:DeleteObject`. resumes: listing
    the parts of an unfinished multipart upload and aborting one (`s3:ListMultipartUploadParts`,
    `s3:AbortMultipartUpload`), plus `s3:ListBucketMultipartUploads` on the bucket.
    """

    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    deletes: tuple[str, ...] = ()
    resumes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for prefix in self.reads + self.writes + self.deletes + self.resumes:
            if not prefix.endswith("/") or "*" in prefix or prefix.startswith("/"):
                raise ValueError(f"key prefix {prefix!r} must end in '/' and hold no '*'")


WORKLOAD_ACCESS: dict[str, WorkloadAccess] = {
    # fedeploy_ingestion: Sentinel copies (head, resumable multipart copy, read back, delete a
    # bad copy) under sentinel/; stream windows (read to merge, write) under observations/;
    # rejected messages under dead-letter/ (INGEST_DEAD_LETTER_PREFIX's default); the record of
    # each unfinished copy (read, written, deleted) under .fedeploy-uploads/sentinel/.
    "ingestion": WorkloadAccess(
        reads=("sentinel/", "observations/", ".fedeploy-uploads/sentinel/"),
        writes=("sentinel/", "observations/", "dead-letter/", ".fedeploy-uploads/sentinel/"),
        deletes=("sentinel/", ".fedeploy-uploads/sentinel/"),
        resumes=("sentinel/",),
    ),
    # fedeploy_inference: reads windows, publishes and loads models (models/<name>/...),
    # writes batch forecasts; where the site copies ECMWF forecasts into its bucket, training
    # reads them too (service_access adds their prefixes). `fedeploy-infer generate` (synthetic windows) is a demo
    # command with its own credentials, not a workload of the site.
    "inference": WorkloadAccess(
        reads=("observations/", "models/"),
        writes=("models/", "forecasts/"),
    ),
    # fedeploy_ingestion.asset_endpoint (the catalog chart's asset endpoint on a published site):
    # presigns GETs of the ingestion bucket's assets for token holders; reads nothing else.
    "assets": WorkloadAccess(reads=("sentinel/", "observations/")),
}


def ecmwf_forecast_prefixes(ingestion: Any) -> tuple[str, ...]:
    """The key prefixes the ingestion service (an `ingestion` service config, or None) copies
    ECMWF open-data forecasts under: `sentinel/ecmwf-<model>-<stream>-<type>/` per `ecmwf`
    source (fedeploy_ingestion.forecast_plan's collection), sorted; () where it copies none."""
    sentinel = getattr(ingestion, "sentinel", None)
    if ingestion is None or not ingestion.enabled or sentinel is None or not sentinel.enabled:
        return ()
    return tuple(sorted({f"sentinel/ecmwf-{s.model}-{s.stream}-{s.type}/" for s in sentinel.ecmwf}))


def service_access(service: str, services: Any) -> WorkloadAccess:
    """What `service` (a WORKLOAD_ACCESS key) may do on a site's `services`: WORKLOAD_ACCESS's
    entry; for inference, also reading the ECMWF forecasts the site's ingestion copies into the
    inference bucket (training reads them as NWP input and baseline), where it copies any."""
    access = WORKLOAD_ACCESS[service]
    if service != "inference" or services.inference is None:
        return access
    ingestion = services.ingestion
    if ingestion is None or ingestion.bucket != services.inference.bucket:
        return access
    forecasts = ecmwf_forecast_prefixes(ingestion)
    return replace(access, reads=access.reads + forecasts) if forecasts else access


# The catalog database's backup sidecar (barman-cloud, charts/catalog/files/backup.sh): its own
# identity, whose service account no other workload uses.
CATALOG_BACKUP_SERVICE_ACCOUNT = "catalog-backup"


# The catalog's restore drill (fedeploy/restore_drill): reads the backups as an identity of its
# own, never the writer's, so a drill that misbehaves cannot touch a backup.
CATALOG_DRILL_SERVICE_ACCOUNT = "catalog-drill"


def catalog_backup_access(prefix: str, read_only: bool = False) -> WorkloadAccess:
    """What barman-cloud does under the backup prefix: upload WAL and base backups (multipart
    for large files), read its own catalogue of backups back, and delete what retention expires;
    `read_only` (the restore drill): list and read the backups, nothing else."""
    folder = prefix.strip("/") + "/"
    if read_only:
        return WorkloadAccess(reads=(folder,))
    return WorkloadAccess(reads=(folder,), writes=(folder,), deletes=(folder,), resumes=(folder,))


def _objects(bucket_arns: list[str], prefixes: tuple[str, ...]) -> list[str]:
    return [f"{arn}/{prefix}*" for arn in bucket_arns for prefix in prefixes]


def workload_policy(
    access: WorkloadAccess, bucket_arns: list[str], kms_key_arn: str | None
) -> dict[str, Any]:
    """The IAM policy document (a dict) granting `access` on buckets (ARNs) and their KMS key.

    `s3:ListBucket` is granted on the bucket without a prefix condition: S3 answers a GET or
    HEAD of a missing key with 404 only to a caller that may list the bucket (403 otherwise),
    and the services read "absent" as a normal answer (no window yet, no LATEST pointer).
    The KMS statement holds only through S3 in the key's region (`kms:ViaService`).
    """
    statements: list[dict[str, Any]] = [
        {
            "Sid": "ListBucket",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": bucket_arns,
        }
    ]
    if access.resumes:
        statements.append(
            {
                "Sid": "ListUnfinishedUploads",
                "Effect": "Allow",
                "Action": ["s3:ListBucketMultipartUploads"],
                "Resource": bucket_arns,
            }
        )
    for sid, actions, prefixes in (
        ("Read", ["s3:GetObject"], access.reads),
        ("Write", ["s3:PutObject"], access.writes),
        (
            "ResumeUploads",
            ["s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"],
            access.resumes,
        ),
        ("Delete", ["s3:DeleteObject"], access.deletes),
    ):
        if prefixes:
            statements.append(
                {
                    "Sid": sid,
                    "Effect": "Allow",
                    "Action": actions,
                    "Resource": _objects(bucket_arns, prefixes),
                }
            )
    if kms_key_arn:
        actions = ["kms:Decrypt"] + (["kms:GenerateDataKey"] if access.writes else [])
        statement: dict[str, Any] = {
            "Sid": "BucketKey",
            "Effect": "Allow",
            "Action": actions,
            "Resource": [kms_key_arn],
        }
        region = kms_key_arn.split(":")[3] if kms_key_arn.count(":") >= 5 else ""
        if region:
            statement["Condition"] = {
                "StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}
            }
        statements.append(statement)
    return {"Version": "2012-10-17", "Statement": statements}
