"""The v0.0.38 adapter: the submission body, and job records as slurmrestd 22.05 sends them."""

from __future__ import annotations

import pytest

from fedeploy.bridge.errors import BridgeProtocolError
from fedeploy.bridge.jobs import JobSpec, JobState, expand_output_path
from fedeploy.bridge.slurm_api import SlurmRestV0038, adapter_for

API = SlurmRestV0038()
# Fields of a record from a real slurmrestd 22.05.8 (GET /slurm/v0.0.38/job/N).
RECORD = {
    "job_id": 12,
    "job_state": "FAILED",
    "exit_code": 768,
    "name": "train",
    "state_reason": "NonZeroExitCode",
    "state_description": "",
    "partition": "debug",
    "user_name": "fedeploy-jobs",
    "user_id": 995,
    "nodes": "vm",
    "batch_host": "vm",
    "standard_output": "/scratch/out/%x-%j.out",
    "standard_error": "",
    "comment": "fedeploy-key:run-7",
}


def spec(**fields) -> JobSpec:  # type: ignore[no-untyped-def]
    return JobSpec(
        **{
            "name": "train",
            "script": "#!/bin/bash\ntrue\n",
            "time_limit_minutes": 30,
            "working_directory": "/scratch/run",
            **fields,
        }
    )


def test_the_submission_carries_the_key_the_limits_and_a_path():
    body = API.submission(
        spec(cpus=4, memory_mb=8000, gpus=2, idempotency_key="k1"), partition="gpu"
    )
    job = body["job"]
    assert body["script"].startswith("#!/bin/bash")
    assert job["comment"] == "fedeploy-key:k1"
    assert (job["partition"], job["time_limit"], job["cpus_per_task"]) == ("gpu", 30, 4)
    assert (job["memory_per_node"], job["gpus"]) == (8000, "2")
    assert job["environment"] == {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "SLURM_CPUS_PER_TASK": "4",
    }
    assert job["standard_output"] == "/scratch/run/train-%j.out"
    assert job["requeue"] is False


def test_no_partition_leaves_slurm_its_default_and_the_callers_path_wins():
    job = API.submission(spec(environment={"PATH": "/opt/bin"}), partition=None)["job"]
    assert "partition" not in job and job["environment"]["PATH"] == "/opt/bin"
    assert "memory_per_node" not in job and "gpus" not in job


def test_a_failed_record_gives_exit_code_reason_output_and_key():
    status = API.job(RECORD)
    assert (status.state, status.exit_code, status.signal) == (JobState.FAILED, 3, None)
    assert status.reason == "NonZeroExitCode"
    assert status.stdout == status.stderr == "/scratch/out/train-12.out"
    assert status.idempotency_key == "run-7"
    assert "exit code 3" in status.describe() and "NonZeroExitCode" in status.describe()


def test_a_signal_and_a_pending_reason_are_reported():
    killed = API.job({**RECORD, "job_state": "CANCELLED", "exit_code": 9})
    assert killed.signal == 9 and killed.exit_code == 0
    pending = API.job(
        {**RECORD, "job_state": "PENDING", "state_reason": "Resources", "exit_code": 0}
    )
    assert pending.exit_code is None and pending.reason == "Resources" and not pending.finished


def test_an_unknown_user_shows_as_its_uid():
    assert API.job({**RECORD, "user_name": "", "user_id": 99}).user == "uid 99"


def test_a_record_without_a_job_id_is_a_protocol_error():
    with pytest.raises(BridgeProtocolError, match="v0.0.38"):
        API.job({"job_state": "RUNNING"})


@pytest.mark.parametrize(
    ("raw", "state", "finished"),
    [
        ("STOPPED", JobState.STOPPED, False),
        ("REQUEUE_HOLD", JobState.REQUEUE_HOLD, False),
        ("SPECIAL_EXIT", JobState.SPECIAL_EXIT, False),
        ("STAGE_OUT", JobState.STAGE_OUT, False),
        ("SIGNALING", JobState.SIGNALING, False),
        ("RESV_DEL_HOLD", JobState.RESV_DEL_HOLD, False),
        ("REQUEUE_FED", JobState.REQUEUE_FED, False),
        ("UPDATE_DB", JobState.UPDATE_DB, False),
        ("POWER_UP_NODE", JobState.POWER_UP_NODE, False),
        ("LAUNCH_FAILED", JobState.LAUNCH_FAILED, False),
        ("RECONFIG_FAIL", JobState.RECONFIG_FAIL, False),
        ("REVOKED", JobState.REVOKED, True),
        ("PREEMPTED", JobState.PREEMPTED, True),
        ("BOOT_FAIL", JobState.BOOT_FAIL, True),
        ("OUT_OF_MEMORY", JobState.OUT_OF_MEMORY, True),
        ("CANCELLED by 0", JobState.CANCELLED, True),
        # v0.0.39 and later send a list; the flag is what holds the job back.
        (["COMPLETED", "COMPLETING"], JobState.COMPLETING, False),
        (["RUNNING", "STOPPED"], JobState.STOPPED, False),
    ],
)
def test_every_state_and_flag_slurm_reports_is_read(raw, state, finished):
    status = API.job({**RECORD, "job_state": raw})
    assert (status.state, status.finished) == (state, finished)
    assert status.state.value in status.describe()


@pytest.mark.parametrize("raw", ["DREAMING", "", None, 7, ["SOMETHING_NEW"], {"x": 1}])
def test_an_unknown_state_of_our_own_job_is_reported_not_raised(raw):
    status = API.job({**RECORD, "job_state": raw})
    assert status.state is JobState.UNKNOWN and not status.finished
    assert status.exit_code is None
    assert "is unknown (" in status.describe()
    if raw == "DREAMING":
        assert "is unknown (DREAMING)" in status.describe()


def test_a_listing_full_of_foreign_oddities_yields_only_our_keyed_jobs():
    body = {
        "jobs": [
            {**RECORD, "job_id": 1, "job_state": "STOPPED", "comment": "", "user_name": "alice"},
            {"job_state": "DREAMING", "comment": None},  # no id at all
            "not even a record",
            {**RECORD, "job_id": 2, "job_state": ["PENDING", "REQUEUE_HOLD"], "exit_code": {}},
            {**RECORD, "job_id": 3, "user_name": "mallory"},  # someone else's copy of the key
            {**RECORD, "job_id": 4, "comment": "fedeploy-key:run-8"},
            {"job_id": "x", "comment": "fedeploy-key:run-7", "user_name": "fedeploy-jobs"},
        ]
    }
    found = API.jobs_with_key(body, "run-7", "fedeploy-jobs")
    assert [(j.job_id, j.state) for j in found] == [(2, JobState.REQUEUE_HOLD)]


def test_the_submission_names_the_job_by_its_key_and_asks_for_a_singleton():
    job = spec(idempotency_key="k1").model_copy()
    body = API.submission(job, partition=None)["job"]
    assert body["name"] == job.slurm_name and body["name"].startswith("train.k")
    assert body["dependency"] == "singleton"
    other = API.submission(spec(idempotency_key="k2"), partition=None)["job"]
    assert other["name"] != body["name"]
    # The submitter's name comes back without the digest.
    assert API.job({**RECORD, "name": body["name"], "comment": "fedeploy-key:k1"}).name == "train"


def test_a_slurm_error_number_comes_with_a_sentence_and_its_name():
    [error] = API.errors({"errors": [{"error_code": 9001, "error": "Failure during parsing"}]})
    assert "ESLURM_REST_FAIL_PARSING" in str(error) and "SLURM error 9001" in str(error)
    assert "GPU" in str(error)
    [other] = API.errors({"errors": [{"error_code": 4242, "error": "Something new"}]})
    assert str(other) == "Something new (SLURM error 4242)"


def test_errors_are_read_whatever_the_endpoint_calls_their_number():
    body = {
        "errors": [
            {"error_number": 2017, "description": "Unable to find JobId=9"},
            {"error_code": 5005, "error": "Zero Bytes were transmitted or received"},
            {"errno": -1, "error": "Unspecified error"},
        ]
    }
    assert [(e.number, e.message) for e in API.errors(body)] == [
        (2017, "Unable to find JobId=9"),
        (5005, "Zero Bytes were transmitted or received"),
        (-1, "Unspecified error"),
    ]
    assert API.errors(None) == [] and API.errors({"errors": None}) == []


def test_only_known_versions_have_an_adapter():
    assert adapter_for("v0.0.38").submit_path == "/slurm/v0.0.38/job/submit"
    for unknown in ("v0.0.37", "v0.0.39", "v0.0.46"):
        with pytest.raises(BridgeProtocolError, match=f"does not speak slurmrestd '{unknown}'"):
            adapter_for(unknown)


def test_output_patterns_expand_as_sbatch_would():
    assert (
        expand_output_path("/o/%x_%j_%u_%N_%%.log", job_id=5, name="n", user="u", node="c1")
        == "/o/n_5_u_c1_%.log"
    )
    assert expand_output_path("", job_id=5, name="n", user=None, node=None) is None


def test_percent_x_in_an_output_path_is_the_submitters_name_not_slurms():
    job = API.submission(
        spec(stdout="/o/%x-%j.out", stderr="/o/%%x-%x.err", idempotency_key="k1"), partition=None
    )["job"]
    assert job["standard_output"] == "/o/train-%j.out"
    assert job["standard_error"] == "/o/%%x-train.err"
