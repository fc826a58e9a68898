"""What can go wrong between a service and SLURM, each as an error a user can act on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedeploy.errors import FedeployError

if TYPE_CHECKING:
    from fedeploy.bridge.jobs import JobStatus


class BridgeError(FedeployError):
    """Base of the bridge client's errors; the message says where and what to do."""

    exit_code = 3


class BridgeAuthError(BridgeError):
    """The token was refused: expired, signed with another key, or for an unknown user."""

    exit_code = 4


class BridgeUnreachable(BridgeError):
    """The bridge's listener (slurmrestd or its TLS proxy) does not answer."""

    exit_code = 5


class ControllerUnreachable(BridgeError):
    """slurmrestd answers but cannot reach the centre's slurmctld."""

    exit_code = 5


class UnknownPartition(BridgeError):
    """The partition is not one the bridge allows or SLURM knows."""


class SubmissionRejected(BridgeError):
    """SLURM refused the job; the message carries SLURM's own words."""


class ScriptTooLarge(SubmissionRejected):
    """The bridge's TLS proxy refused the request body (HTTP 413): the script is too large."""


class ProxyError(BridgeError):
    """The TLS proxy in front of slurmrestd answered with an error of its own (not SLURM's)."""


class BridgeProtocolError(BridgeError):
    """slurmrestd answered something the client's API adapter does not understand."""


class JobNotFound(BridgeError):
    """SLURM no longer knows the job: finished jobs are forgotten after MinJobAge."""

    def __init__(self, job_id: int, message: str):
        self.job_id = job_id
        super().__init__(message)


class JobFailed(BridgeError):
    """The job ended in a state other than COMPLETED; `status` has SLURM's exit code and reason."""

    exit_code = 6

    def __init__(self, status: JobStatus):
        self.status = status
        super().__init__(status.describe())


class JobWaitTimeout(BridgeError):
    """The job did not finish in time; `cancelled` says whether the client cancelled it."""

    exit_code = 7

    def __init__(self, status: JobStatus, timeout: float, cancelled: bool):
        self.status = status
        self.cancelled = cancelled
        what = "cancelled it" if cancelled else "left it running"
        super().__init__(
            f"job {status.job_id} did not finish within {timeout:g}s ({status.describe()}); "
            f"the client {what}"
        )


class JobWillNotRun(JobFailed):
    """The job waits for a reason no waiting changes (PartitionTimeLimit, AccountNotAllowed,
    a per-job QOS limit...); the client cancelled it. `why` says what the reason means."""

    def __init__(self, status: JobStatus, why: str):
        self.status = status
        self.why = why
        BridgeError.__init__(
            self,
            f"job {status.job_id} ({status.name}) can never start: SLURM's reason "
            f"{status.reason_code}: {why}; the client cancelled it (change the job or ask the "
            "centre to change the limit)",
        )
