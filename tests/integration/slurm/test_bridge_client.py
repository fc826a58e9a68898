"""The bridge client against a real SLURM: jobs run, fail, are cancelled; every failure is clear."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from fedeploy.bridge.client import BridgeClient
from fedeploy.bridge.errors import (
    BridgeAuthError,
    BridgeUnreachable,
    ControllerUnreachable,
    JobFailed,
    JobNotFound,
    JobWaitTimeout,
    JobWillNotRun,
    UnknownPartition,
)
from fedeploy.bridge.jobs import JobSpec, JobState
from fedeploy.bridge.tokens import mint_token

pytestmark = pytest.mark.integration


def spec(job_dir, script: str, **fields) -> JobSpec:  # type: ignore[no-untyped-def]
    return JobSpec(
        name=fields.pop("name", "itest"),
        script=f"#!/bin/bash\n{script}\n",
        time_limit_minutes=fields.pop("time_limit_minutes", 5),
        working_directory=str(job_dir),
        **fields,
    )


def wait_for_state(client: BridgeClient, job_id: int, state: JobState, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while client.status(job_id).state is not state:
        assert time.monotonic() < deadline, f"job {job_id} never reached {state}"
        time.sleep(0.1)


def test_a_job_completes_and_its_output_is_read(client, job_dir):
    job_id = client.submit(
        spec(
            job_dir, 'echo "hello $GREETING from $(id -un)"', environment={"GREETING": "federation"}
        )
    )

    status = client.wait(job_id, timeout=60, poll=0.2)
    output = client.output(job_id)

    assert status.state is JobState.COMPLETED and status.exit_code == 0
    assert output.stdout == f"{job_dir}/itest-{job_id}.out"
    with open(output.stdout) as produced:
        assert produced.read() == "hello federation from fedeploy-jobs\n"


@pytest.mark.parametrize("version", ["v0.0.40", "v0.0.41", "v0.0.42"])
def test_each_version_24_11_serves_runs_a_job(slurm, job_dir, version):
    """A site declaring v0.0.40, v0.0.41 or v0.0.42: slurmrestd started from the settings its
    node gets, a client that negotiates, a job that fails with its exit code, its output."""
    if slurm.release == "22.05":
        pytest.skip("22.05 serves v0.0.38 only (the rest of this suite)")
    with (
        slurm.rest_for(version) as url,
        BridgeClient(url, slurm.user, slurm.token(), retries=1) as bridge,
    ):
        job_id = bridge.submit(
            spec(job_dir, f'echo "$GREETING {version}"; exit 4', environment={"GREETING": "hi"})
        )
        status = bridge.wait(job_id, timeout=30, poll=0.1, check=False)
        assert bridge.api_version == version
    assert (status.state, status.exit_code) == (JobState.FAILED, 4), status.describe()
    assert Path(status.stdout).read_text() == f"hi {version}\n"


def test_a_failing_job_reports_its_exit_code(client, job_dir):
    job_id = client.submit(spec(job_dir, "echo failing >&2; exit 3"))

    with pytest.raises(JobFailed) as failed:
        client.wait(job_id, timeout=60, poll=0.2)

    assert failed.value.status.state is JobState.FAILED
    assert failed.value.status.exit_code == 3
    assert "exit code 3" in str(failed.value)
    assert client.wait(job_id, timeout=5, check=False).exit_code == 3


def daemon_log_tails(slurm, lines: int = 40) -> str:  # type: ignore[no-untyped-def]
    """The last lines of slurmctld's and slurmd's logs: why a job stayed where it was."""
    tails = []
    for name in ("slurmctld.log", "slurmd.log"):
        path = slurm.root / "log" / name
        text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
        tails.append(f"--- {name}\n" + "\n".join(text))
    return "\n".join(tails)


def test_a_cancelled_job_reports_cancelled(slurm, client, job_dir):
    job_id = client.submit(spec(job_dir, "sleep 120"))
    wait_for_state(client, job_id, JobState.RUNNING)

    status = client.cancel(job_id)

    assert status.state is JobState.CANCELLED, f"{status.describe()}\n{daemon_log_tails(slurm)}"
    assert client.status(job_id).state is JobState.CANCELLED


def test_a_time_limit_above_the_partitions_fails_at_once_with_the_reason(slurm, client, job_dir):
    # Longer than the partition's MaxTime (2 days): SLURM would hold it forever. 22.05 names the
    # reason at submission; 24.11 at its scheduler's next pass, which the waiter sees.
    started = time.monotonic()
    with pytest.raises(JobWillNotRun, match="PartitionTimeLimit: its time limit is above") as stuck:
        job_id = client.submit(spec(job_dir, "true", time_limit_minutes=3 * 24 * 60))
        assert slurm.release != "22.05", "22.05 names the reason at submission"
        client.wait(job_id, timeout=30, poll=0.2)
    assert time.monotonic() - started < 10
    assert "the client cancelled it" in str(stuck.value)
    assert client.status(stuck.value.status.job_id).state is JobState.CANCELLED


def test_a_waiter_that_gives_up_cancels_the_job(client, job_dir):
    job_id = client.submit(spec(job_dir, "sleep 120"))

    with pytest.raises(JobWaitTimeout) as timed_out:
        client.wait(job_id, timeout=1, poll=0.2)

    assert timed_out.value.cancelled
    # The waiter waits 10 s for the end; on a busy machine SLURM may still be killing it.
    assert client.cancel(job_id).state is JobState.CANCELLED


def test_a_token_signed_with_another_key_is_an_authentication_error(slurm, job_dir):
    forged = mint_token("not-the-bridge-key" * 4, slurm.user, now=time.time(), lifetime_hours=2)
    with BridgeClient(
        slurm.endpoint, slurm.user, forged, ca_file=slurm.ca_file, retries=0
    ) as bridge:
        started = time.monotonic()
        with pytest.raises(BridgeAuthError, match="slurmctld refused the token"):
            bridge.status(1)
        with pytest.raises(BridgeAuthError):
            bridge.submit(spec(job_dir, "true"))
        assert time.monotonic() - started < 5


def test_a_job_for_a_user_the_cluster_does_not_know_is_refused_and_cancelled(
    slurm, job_dir, jobs_with_key
):
    # slurmctld accepts the well-signed token and queues the job as 'nobody', where it never runs.
    token = slurm.token(user="no-such-user")
    with (
        BridgeClient(slurm.endpoint, "no-such-user", token, ca_file=slurm.ca_file) as bridge,
        pytest.raises(BridgeAuthError, match="does not know the user 'no-such-user'"),
    ):
        bridge.submit(spec(job_dir, "true", idempotency_key="unknown-user-1"))

    [job_id] = jobs_with_key("unknown-user-1")
    with BridgeClient(slurm.endpoint, slurm.user, slurm.token(), ca_file=slurm.ca_file) as admin:
        assert admin.status(int(job_id)).state is JobState.CANCELLED


def test_an_expired_token_is_refused_before_it_is_sent(slurm):
    expired = mint_token(slurm.jwt_key, slurm.user, now=time.time() - 10 * 3600, lifetime_hours=2)
    with (
        BridgeClient(slurm.endpoint, slurm.user, expired, ca_file=slurm.ca_file) as bridge,
        pytest.raises(BridgeAuthError, match="expired at"),
    ):
        bridge.status(1)


def test_an_unknown_partition_is_named(slurm, client, job_dir):
    with pytest.raises(UnknownPartition, match="nope"):
        client.submit(spec(job_dir, "true", partition="nope"))
    with (
        BridgeClient(
            slurm.endpoint, slurm.user, slurm.token(), ca_file=slurm.ca_file, partitions=["debug"]
        ) as scoped,
        pytest.raises(UnknownPartition, match="allowed: debug"),
    ):
        scoped.submit(spec(job_dir, "true", partition="batch"))


def test_a_job_slurm_no_longer_knows_is_reported_as_gone(client):
    # What a job purged after MinJobAge answers: error 2017, "Invalid job id specified".
    with pytest.raises(JobNotFound, match="MinJobAge"):
        client.status(67_000_000)


def test_an_untrusted_certificate_is_named(slurm):
    with (
        BridgeClient(slurm.endpoint, slurm.user, slurm.token(), retries=3) as bridge,
        pytest.raises(BridgeUnreachable, match="not trusted"),
    ):
        bridge.status(1)


def test_a_closed_port_is_unreachable_quickly(slurm):
    with BridgeClient(
        "https://127.0.0.1:9", slurm.user, slurm.token(), retries=2, backoff=0.05
    ) as bridge:
        started = time.monotonic()
        with pytest.raises(BridgeUnreachable, match="does not answer after 3 attempts"):
            bridge.status(1)
        assert time.monotonic() - started < 2


def test_a_submit_whose_answer_is_lost_makes_one_job(slurm, losing_proxy, job_dir, jobs_with_key):
    lose_first = iter([True])
    rule = lambda method, path: method == "POST" and next(lose_first, False)  # noqa: E731
    job = spec(job_dir, "true", idempotency_key="lost-answer-1")
    with (
        losing_proxy(rule) as proxy,
        BridgeClient(proxy.url, slurm.user, slurm.token(), backoff=0.1) as bridge,
    ):
        job_id = bridge.submit(job)

    assert proxy.lost == [f"POST /slurm/{slurm.api_version}/job/submit"]
    assert jobs_with_key("lost-answer-1") == [str(job_id)]


def test_a_caller_resuming_after_its_job_ended_gets_that_job(slurm, client, job_dir, jobs_with_key):
    job = spec(job_dir, "true", idempotency_key="restart-1")
    first = client.submit(job)
    client.wait(first, timeout=30, poll=0.2)

    with BridgeClient(
        slurm.endpoint, slurm.user, slurm.token(), ca_file=slurm.ca_file
    ) as restarted:
        again = restarted.submit(job, resume=True)

    assert again == first
    assert jobs_with_key("restart-1") == [str(first)]


def test_a_caller_restarted_mid_run_gets_the_running_job(slurm, client, job_dir, jobs_with_key):
    # No resume, no listing: the controller holds the second job back behind the first (same
    # key, so same name: the singleton dependency) and the client cancels it unstarted.
    job = spec(job_dir, f"echo $SLURM_JOB_ID >> {job_dir}/ran; sleep 30", idempotency_key="mid-1")
    first = client.submit(job)
    wait_for_state(client, first, JobState.RUNNING)

    with BridgeClient(
        slurm.endpoint, slurm.user, slurm.token(), ca_file=slurm.ca_file
    ) as restarted:
        again = restarted.submit(job)

    assert again == first
    ids = sorted(int(i) for i in jobs_with_key("mid-1"))
    assert len(ids) == 2 and ids[0] == first
    assert client.status(ids[1]).state is JobState.CANCELLED
    client.cancel(first)
    assert (job_dir / "ran").read_text().split() == [str(first)]


def test_a_cancel_whose_answer_is_lost_still_reaches_slurm(slurm, client, losing_proxy, job_dir):
    job_id = client.submit(spec(job_dir, "sleep 120"))
    wait_for_state(client, job_id, JobState.RUNNING)
    lose_first = iter([True])
    rule = lambda method, path: method == "DELETE" and next(lose_first, False)  # noqa: E731

    with (
        losing_proxy(rule) as proxy,
        BridgeClient(proxy.url, slurm.user, slurm.token(), backoff=0.1) as bridge,
    ):
        status = bridge.cancel(job_id)

    assert proxy.lost == [f"DELETE /slurm/{slurm.api_version}/job/{job_id}"]
    assert status.state is JobState.CANCELLED, status.describe()


def test_output_names_the_file_the_job_wrote(client, job_dir):
    # 22.05 reports the pattern; 24.11 reports it expanded (%% already a literal %), all but %N.
    job_id = client.submit(spec(job_dir, "echo out", stdout=f"{job_dir}/o-%%j-%j-%N.txt"))
    status = client.wait(job_id, timeout=60, poll=0.2)

    written = [p.name for p in job_dir.iterdir()]
    assert written == [f"o-%j-{job_id}-{status.nodes}.txt"]
    assert client.output(job_id).stdout == f"{job_dir}/{written[0]}"


def test_a_stopped_controller_is_a_clear_error_not_a_hang(slurm, client, job_dir):
    # Last in the module: it stops slurmctld and starts it again.
    running = client.submit(spec(job_dir, "sleep 120"))
    wait_for_state(client, running, JobState.RUNNING)
    slurm.stop_controller()
    try:
        for what, call in [
            ("status", lambda: client.status(1)),
            ("submit", lambda: client.submit(spec(job_dir, "true"))),
            ("cancel", lambda: client.cancel(running)),
        ]:
            started = time.monotonic()
            with pytest.raises(ControllerUnreachable, match="cannot reach the SLURM controller"):
                call()
            elapsed = time.monotonic() - started
            # slurmrestd retries for MessageTimeout (3 s here) on each request; without the
            # probe a client would wait out its own 60 s timeout. A cancel is retried.
            limit = 5 if what != "cancel" else 5 * (client.retries + 1)
            assert elapsed < limit * slurm.message_timeout, what
    finally:
        slurm.start_controller()
    client.cancel(running)


def test_a_cancel_during_an_outage_reaches_slurm_once_the_controller_is_back(slurm, job_dir):
    # It stops slurmctld and starts it again while the client cancels.
    with BridgeClient(
        slurm.endpoint, slurm.user, slurm.token(), ca_file=slurm.ca_file, retries=6, backoff=1
    ) as bridge:
        job_id = bridge.submit(spec(job_dir, "sleep 120"))
        wait_for_state(bridge, job_id, JobState.RUNNING)
        slurm.stop_controller()
        restart = threading.Timer(4, slurm.start_controller)
        restart.start()
        try:
            status = bridge.cancel(job_id)
        finally:
            restart.join()
    assert status.state is JobState.CANCELLED, status.describe()
