"""The bridge client on a controller as busy and odd as a centre's: other users' jobs in every
state SLURM 22.05 shows, parallel submitters with one key, #SBATCH lines, jobs that can never
start, a script too large for the proxy, a GPU request on a cluster without GPUs."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from fedeploy.bridge.client import BridgeClient
from fedeploy.bridge.errors import (
    JobWaitTimeout,
    JobWillNotRun,
    ProxyError,
    ScriptTooLarge,
    SubmissionRejected,
)
from fedeploy.bridge.jobs import JobSpec, JobState

pytestmark = pytest.mark.integration

FIELD_CASES = Path(__file__).parent / "field-cases"
OTHER_USER = "fedeploy-rest"  # exists on the harness's machine: the TLS proxy's user


def spec(job_dir: Path, script: str, **fields) -> JobSpec:  # type: ignore[no-untyped-def]
    return JobSpec(
        name=fields.pop("name", "busy"),
        script=script,
        time_limit_minutes=fields.pop("time_limit_minutes", 5),
        working_directory=str(job_dir),
        **fields,
    )


def run(slurm, *argv: str) -> str:  # type: ignore[no-untyped-def]
    result = subprocess.run(
        slurm.command(list(argv)), capture_output=True, text=True, env=slurm.env()
    )
    assert result.returncode == 0, f"{argv}: {result.stderr}"
    return result.stdout.strip()


def foreign_job(slurm, *options: str, command: str = "sleep 300") -> int:  # type: ignore[no-untyped-def]
    """A job of another user, submitted with sbatch as a centre's users do."""
    out = run(
        slurm,
        "runuser",
        "-u",
        OTHER_USER,
        "--",
        "sbatch",
        "--parsable",
        "-D",
        "/tmp",
        "-o",
        "/dev/null",
        "-t",
        "5",
        *options,
        "--wrap",
        command,
    )
    return int(out.split(";")[0])


def deadline_job(slurm) -> int:  # type: ignore[no-untyped-def]
    """A job whose deadline passes before it can run: SLURM ends it as DEADLINE unrun."""
    if slurm.release == "22.05":
        return foreign_job(slurm, "--deadline=now+2")
    # 24.11 refuses a deadline sooner than the time limit at submission ("Requested time limit
    # is invalid"): hold the job, move its deadline to now, release it.
    job_id = foreign_job(slurm, "--hold")
    run(slurm, "scontrol", "update", f"jobid={job_id}", "deadline=now")
    run(slurm, "scontrol", "release", str(job_id))
    return job_id


def until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.mark.slow  # about 30 s: TIMEOUT waits for slurmctld's periodic time-limit check
def test_other_users_jobs_in_every_state_never_break_the_client(slurm, client, job_dir):
    seen: Callable[[int], JobState] = lambda job_id: client.status(job_id).state  # noqa: E731
    running = {name: foreign_job(slurm) for name in ("timeout", "stopped", "suspended", "special")}
    running["requeued"] = foreign_job(slurm)
    jobs = {
        "held": foreign_job(slurm, "--hold"),
        "failed": foreign_job(slurm, command="exit 3"),
        "completed": foreign_job(slurm, command="true"),
        "deadline": deadline_job(slurm),
        "cancelled": foreign_job(slurm, "--hold"),
    }
    for name, job_id in running.items():
        until(lambda job_id=job_id: seen(job_id) is JobState.RUNNING, f"{name} to run")
    # The time limit check runs about every 30 s; an end time in the past makes it TIMEOUT then.
    run(slurm, "scontrol", "update", f"jobid={running['timeout']}", "EndTime=now")
    run(slurm, "scancel", "--signal=STOP", str(running["stopped"]))
    run(slurm, "scontrol", "suspend", str(running["suspended"]))
    run(slurm, "scontrol", "requeuehold", "state=SpecialExit", str(running["special"]))
    run(slurm, "scontrol", "requeue", str(running["requeued"]))
    run(slurm, "scancel", str(jobs["cancelled"]))
    jobs.update(running)
    expected = {
        "stopped": {JobState.STOPPED},
        "suspended": {JobState.SUSPENDED},
        "special": {JobState.SPECIAL_EXIT},
        "requeued": {JobState.COMPLETING, JobState.REQUEUED, JobState.PENDING},
        "held": {JobState.PENDING},
        "cancelled": {JobState.CANCELLED},
        "failed": {JobState.FAILED},
        "completed": {JobState.COMPLETED},
        "deadline": {JobState.DEADLINE},
    }
    for name, states in expected.items():
        until(lambda name=name, states=states: seen(jobs[name]) in states, f"{name}: {states}")

    # Our own job, paused by an administrator the same way: reported, waited on, cancelled.
    ours = client.submit(spec(job_dir, "#!/bin/bash\nsleep 60\n"))
    until(lambda: seen(ours) is JobState.RUNNING, "our job to run")

    def stopped() -> bool:
        # A signal sent while the job's step is still starting is lost: send it until it lands.
        if seen(ours) is JobState.STOPPED:
            return True
        run(slurm, "scancel", "--signal=STOP", str(ours))
        return False

    until(stopped, "our job to be STOPPED")
    assert f"job {ours} (busy) is STOPPED" in client.status(ours).describe()
    with pytest.raises(JobWaitTimeout, match="is STOPPED"):
        client.wait(ours, timeout=0.5, poll=0.1, cancel_on_timeout=False)
    assert client.cancel(ours).state is JobState.CANCELLED

    # The field case: a trivial job submits and completes, also through the listing path.
    trivial = (FIELD_CASES / "slurm-trivial.sh").read_text()
    done = client.wait(client.submit(spec(job_dir, trivial)), timeout=30, poll=0.1)
    assert done.state is JobState.COMPLETED
    resumed = spec(job_dir, trivial, idempotency_key="busy-resume")
    first = client.submit(resumed, resume=True)
    assert client.submit(resumed, resume=True) == first
    assert client.find("busy-resume").job_id == first  # type: ignore[union-attr]

    until(lambda: seen(jobs["timeout"]) is JobState.TIMEOUT, "TIMEOUT", timeout=60)
    # Last: the node fails under a running job (then comes back for the other tests).
    node_fail = foreign_job(slurm, "--no-requeue")
    until(lambda: seen(node_fail) is JobState.RUNNING, "the node_fail job to run")
    run(slurm, "scontrol", "update", f"nodename={slurm.host}", "state=down", "reason=itest")
    try:
        until(lambda: seen(node_fail) is JobState.NODE_FAIL, "NODE_FAIL")
    finally:
        subprocess.run(
            slurm.command(["scontrol", "update", f"nodename={slurm.host}", "state=resume"]),
            capture_output=True,
            env=slurm.env(),
        )
        slurm.wait_idle()
    run(slurm, "scancel", "-u", OTHER_USER)


def test_parallel_submitters_with_one_key_make_one_job(slurm, job_dir, jobs_with_key):
    script = f"#!/bin/bash\necho $SLURM_JOB_ID >> {job_dir}/ran\nsleep 2\n"
    job = spec(job_dir, script, idempotency_key="parallel-1")
    count = 6
    barrier = threading.Barrier(count)
    results: list[int | BaseException] = []

    def submitter() -> None:
        with BridgeClient(
            slurm.endpoint, slurm.user, slurm.token(), ca_file=slurm.ca_file
        ) as bridge:
            barrier.wait()
            try:
                results.append(bridge.submit(job))
            except BaseException as err:  # reported below
                results.append(err)

    threads = [threading.Thread(target=submitter) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(set(results)) == 1, results
    [kept] = set(results)
    assert isinstance(kept, int)
    ids = [int(i) for i in jobs_with_key("parallel-1")]
    assert kept == min(ids)
    with BridgeClient(slurm.endpoint, slurm.user, slurm.token(), ca_file=slurm.ca_file) as bridge:
        assert bridge.wait(kept, timeout=30, poll=0.1).state is JobState.COMPLETED
        others = {bridge.status(i).state for i in ids if i != kept}
    assert others <= {JobState.CANCELLED}
    # Only the kept job ever ran: the younger ones waited behind it until cancelled.
    assert (job_dir / "ran").read_text().split() == [str(kept)]


def test_sbatch_directives_reach_slurm_or_are_refused_by_line(client, job_dir):
    field_case = (FIELD_CASES / "slurm-sbatch-directives.sh").read_text()
    with pytest.raises(ValidationError, match=r"script line 2 \('#SBATCH --array=1-3'\)"):
        spec(job_dir, field_case)

    honoured = field_case.replace("#SBATCH --array=1-3\n", "").replace("%A_%a", "%j")
    job = JobSpec(script=honoured, time_limit_minutes=5, working_directory=str(job_dir))
    status = client.wait(client.submit(job), timeout=30, poll=0.1)

    assert status.name == "from-directive"
    assert status.stdout == f"{job_dir}/from-directive-directive-{status.job_id}.out"
    assert Path(status.stdout).read_text() == "task none cpus 2\n"


def test_jobs_that_can_never_start_fail_fast_and_transient_reasons_wait(slurm, client, job_dir):
    # More CPUs than any node of the partition has: 22.05 queues the job (the client cancels
    # it at once, naming the reason), 24.11 refuses it at submission (the client names why).
    too_big = spec(job_dir, "#!/bin/bash\ntrue\n", cpus=64)
    if slurm.release == "22.05":
        with pytest.raises(JobWillNotRun, match="can never start: SLURM's reason Partition"):
            client.submit(too_big)
    else:
        with pytest.raises(SubmissionRejected, match="no node of the partition has the CPUs"):
            client.submit(too_big)

    run(slurm, "scontrol", "update", "PartitionName=batch", "State=DOWN")
    try:
        job_id = client.submit(spec(job_dir, "#!/bin/bash\ntrue\n", partition="batch"))
        with pytest.raises(JobWaitTimeout, match="PartitionDown") as waited:
            client.wait(job_id, timeout=2, poll=0.2)
        assert waited.value.cancelled
    finally:
        run(slurm, "scontrol", "update", "PartitionName=batch", "State=UP")


def test_a_script_too_large_for_the_bridge_is_named_with_its_limit(client, job_dir):
    big = "#!/bin/bash\n" + ("#" * 99 + "\n") * 54_000  # 5.2 MB, as in the report
    with pytest.raises(ScriptTooLarge, match="script too large: the bridge accepts at most 4 MiB"):
        client.submit(spec(job_dir, big))


def test_gpus_on_a_cluster_without_gpus_are_explained(slurm, client, job_dir):
    with pytest.raises(SubmissionRejected) as refused:
        client.submit(spec(job_dir, "#!/bin/bash\ntrue\n", gpus=1))
    # 22.05 fails to parse the request; 24.11 parses tres_per_job and refuses the GRES.
    number = "(ESLURM_REST_FAIL_PARSING), SLURM error 9001"
    if slurm.release != "22.05":
        number = "(ESLURM_INVALID_GRES), SLURM error 2072"
    assert number in str(refused.value)
    assert "asks for 1 GPU(s)" in str(refused.value)


def test_an_error_of_the_proxy_is_reported_as_the_proxys(slurm):
    plain = slurm.endpoint.replace("https://", "http://")
    with (
        BridgeClient(plain, slurm.user, slurm.token(), retries=0) as bridge,
        pytest.raises(ProxyError, match="answered HTTP 400 .*an error of the proxy, not of SLURM"),
    ):
        bridge.status(1)
