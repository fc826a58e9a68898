"""SLURM's error numbers and pending reasons, each as a sentence a person can act on.

Numbers and names from slurm/slurm_errno.h (checked against the 22.05.8 library's
`slurm_strerror`); reasons from `job_state_reason_string` in slurm_protocol_defs.c. The
sentences are the bridge's own. Pure data and lookups: no I/O.
"""

from __future__ import annotations

import re

# number -> (SLURM's name, what it means for a job sent through the bridge)
ERRORS: dict[int, tuple[str, str]] = {
    -1: ("SLURM_ERROR", "SLURM failed without saying why"),
    1007: (
        "SLURM_PROTOCOL_AUTHENTICATION_ERROR",
        "the controller could not authenticate the request",
    ),
    1800: (
        "SLURMCTLD_COMMUNICATIONS_CONNECTION_ERROR",
        "slurmrestd cannot connect to the controller",
    ),
    1801: ("SLURMCTLD_COMMUNICATIONS_SEND_ERROR", "slurmrestd could not send to the controller"),
    1802: (
        "SLURMCTLD_COMMUNICATIONS_RECEIVE_ERROR",
        "slurmrestd got no answer from the controller",
    ),
    2000: ("ESLURM_INVALID_PARTITION_NAME", "the cluster has no partition of that name"),
    2001: (
        "ESLURM_DEFAULT_PARTITION_NOT_SET",
        "no partition was given and the cluster has no default one",
    ),
    2002: ("ESLURM_ACCESS_DENIED", "the user may not do this"),
    2005: ("ESLURM_TOO_MANY_REQUESTED_CPUS", "more CPUs than the user or partition may have"),
    2006: ("ESLURM_INVALID_NODE_COUNT", "the node count is not valid"),
    2007: (
        "ESLURM_ERROR_ON_DESC_TO_RECORD_COPY",
        "the controller could not create the job record (it may hold MaxJobCount jobs): try later",
    ),
    2014: (
        "ESLURM_REQUESTED_NODE_CONFIG_UNAVAILABLE",
        "no node of the partition has the CPUs, memory or GPUs asked for",
    ),
    2015: (
        "ESLURM_REQUESTED_PART_CONFIG_UNAVAILABLE",
        "the partition's limits (time, nodes, CPUs) do not admit the job",
    ),
    2017: ("ESLURM_INVALID_JOB_ID", "the controller knows no job with that id"),
    2037: ("ESLURM_DISABLED", "the operation is disabled on this cluster"),
    2038: ("ESLURM_DEPENDENCY", "the job's dependency is not valid"),
    2042: ("ESLURM_JOB_HELD", "the job is held until someone releases it"),
    2044: ("ESLURM_INVALID_TASK_MEMORY", "the memory asked for is more than a node offers"),
    2045: ("ESLURM_INVALID_ACCOUNT", "the account does not exist or the user may not use it"),
    2050: (
        "ESLURM_ACCOUNTING_POLICY",
        "the job breaks an accounting or QOS limit (submit count, size or time)",
    ),
    2051: ("ESLURM_INVALID_TIME_LIMIT", "the time limit is missing or above a limit"),
    2052: ("ESLURM_RESERVATION_ACCESS", "the user may not use that reservation"),
    2066: ("ESLURM_INVALID_QOS", "the QOS does not exist or the user may not use it"),
    2068: ("ESLURM_NODE_NOT_AVAIL", "a required node is down, drained or reserved"),
    2070: ("ESLURM_PARTITION_NOT_AVAIL", "the partition is inactive or draining"),
    2072: ("ESLURM_INVALID_GRES", "the generic resources (GPUs) asked for are not valid here"),
    2081: ("ESLURM_INVALID_ARRAY", "the job array specification is not valid"),
    2101: ("ESLURM_PARTITION_DOWN", "the partition is down"),
    2105: ("ESLURM_SUBMISSIONS_DISABLED", "the cluster accepts no submissions now"),
    2115: ("ESLURM_INVALID_TRES", "a trackable resource (TRES) asked for is not valid here"),
    2119: ("ESLURM_INVALID_GRES_TYPE", "the generic resource (GPU) type is not valid here"),
    2122: ("ESLURM_UNSUPPORTED_GRES", "the cluster's scheduler does not support that GPU request"),
    2127: ("ESLURM_ENVIRONMENT_MISSING", "the job has no environment"),
    2130: (
        "ESLURM_PARTITION_ASSOC",
        "several partitions were asked for but the association fixes one",
    ),
    5005: (
        "SLURM_PROTOCOL_SOCKET_ZERO_BYTES_SENT",
        "the controller closed the connection (how slurmctld refuses a token)",
    ),
    6000: ("ESLURM_AUTH_CRED_INVALID", "the credential (token) is not valid"),
    9000: ("ESLURM_REST_INVALID_QUERY", "slurmrestd could not read the request"),
    9001: (
        "ESLURM_REST_FAIL_PARSING",
        "slurmrestd could not turn the job description into a SLURM job: a value is one this "
        "cluster does not accept (GPUs on a cluster without a GPU resource, an unknown option)",
    ),
    9002: ("ESLURM_REST_INVALID_JOBS_DESC", "the request holds no job description"),
    9003: ("ESLURM_REST_EMPTY_RESULT", "nothing matched the request"),
}


def error_sentence(number: int | None) -> str | None:
    """'<sentence> (<SLURM name>)' for a SLURM error number, or None for one not in the table."""
    if number is None or number not in ERRORS:
        return None
    name, sentence = ERRORS[number]
    return f"{sentence} ({name})"


# Pending reasons that no amount of waiting changes: the job asks for more than a limit
# allows, or for something it may not use. Someone must change the job or the limit.
_PERMANENT = {
    "PartitionTimeLimit": "its time limit is above the partition's MaxTime",
    "PartitionNodeLimit": "its node count is outside the partition's MinNodes/MaxNodes",
    "PartitionConfig": "the partition's limits (time, nodes, CPUs) do not admit it",
    "AccountNotAllowed": "the partition does not admit the job's account",
    "QOSNotAllowed": "the partition does not admit the job's QOS",
    "InvalidAccount": "the job's account is not valid",
    "InvalidQOS": "the job's QOS is not valid",
    "BadConstraints": "no node can satisfy the job's constraints",
    "DependencyNeverSatisfied": "a job it depends on ended the wrong way",
    "ReservationDeleted": "the reservation it was bound to was deleted",
}
# Per-job (and per-node) limits of a QOS or an association: the job alone breaks them.
_PERMANENT_PATTERN = re.compile(r"^(QOS|Assoc)(Max\w+Per(Job|Node)\w*|Min\w+)$")


def permanent_reason(reason: str | None) -> str | None:
    """Why a job pending for `reason` will never start, or None when waiting may help
    (Priority, Resources, Dependency, BeginTime, held, group or per-user limits, a
    partition or node that is down)."""
    if not reason:
        return None
    if reason in _PERMANENT:
        return _PERMANENT[reason]
    if _PERMANENT_PATTERN.match(reason) and "PerUser" not in reason:
        kind = "QOS" if reason.startswith("QOS") else "association"
        return f"it is above (or below) a per-job limit of its {kind}"
    return None
