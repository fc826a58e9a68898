"""A job as the federation describes it: refused early when SLURM would misread it."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from fedeploy.bridge.jobs import JobSpec

BASE = {
    "name": "train",
    "script": "#!/bin/bash\ntrue\n",
    "time_limit_minutes": 10,
    "working_directory": "/scratch",
}


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"script": "echo hi"}, "interpreter line"),
        ({"environment": {"SLURM_JOB_ID": "1"}}, "'SLURM_JOB_ID' is SLURM's own"),
        ({"environment": {"1BAD": "x"}}, "'1BAD' is not a variable name"),
        ({"stderr": "/scratch/e"}, "stderr is set but stdout is not"),
        ({"working_directory": "scratch"}, "working_directory"),
        ({"idempotency_key": "has space"}, "idempotency_key"),
        ({"time_limit_minutes": 0}, "time_limit_minutes"),
        ({"name": "a/b"}, "name"),
        ({"gpu": 1}, "Extra inputs are not permitted"),
        (
            {"script": "#!/bin/bash\n#SBATCH --mem=99999999999999999999T\ntrue\n"},
            "memory_mb",
        ),
    ],
)
def test_a_bad_job_is_refused_with_the_field_named(fields, words):
    with pytest.raises(ValidationError, match=words):
        JobSpec(**{**BASE, **fields})


def test_every_job_has_an_idempotency_key_and_its_comment():
    first, second = JobSpec(**BASE), JobSpec(**BASE)
    assert first.idempotency_key != second.idempotency_key
    assert (
        JobSpec(**BASE, idempotency_key="train-2026-11-24").comment
        == "fedeploy-key:train-2026-11-24"
    )


def script(*lines: str) -> str:
    return "\n".join(["#!/bin/bash", *lines, "srun work"]) + "\n"


def test_sbatch_directives_fill_the_job_spec():
    job = JobSpec(
        script=script(
            "# a comment, then directives in every form sbatch takes",
            "#SBATCH --job-name=train -t 1-02:03:04",
            "#SBATCH -c2 --mem 16G   # 16 GiB",
            "#SBATCH -o logs/%x-%j.out --error=/abs/%j.err",
            "#SBATCH -p gpu -G 2 -A proj-7 --qos=normal -n 1 --nodes=1",
            "#SBATCH -D /scratch/run",
        ),
    )
    assert (job.name, job.time_limit_minutes, job.cpus, job.memory_mb) == (
        "train",
        (24 + 2) * 60 + 3 + 1,
        2,
        16 * 1024,
    )
    assert (job.partition, job.gpus, job.account, job.qos) == ("gpu", 2, "proj-7", "normal")
    assert job.working_directory == "/scratch/run"
    assert (job.stdout, job.stderr) == ("/scratch/run/logs/%x-%j.out", "/abs/%j.err")


@pytest.mark.parametrize(
    ("value", "minutes"),
    [("90", 90), ("1:30", 2), ("2:00:00", 120), ("1-0", 1440), ("0-1:5", 65), ("0:0:1", 1)],
)
def test_slurm_time_formats_become_whole_minutes(value, minutes):
    from fedeploy.bridge.directives import slurm_minutes

    assert slurm_minutes(value) == minutes


def test_directives_after_the_first_command_are_not_directives():
    job = JobSpec(**{**BASE, "script": "#!/bin/bash\necho hi\n#SBATCH --array=1-3\n"})
    assert job.cpus == 1


@pytest.mark.parametrize(
    ("lines", "words"),
    [
        (
            ["#SBATCH --array=1-3"],
            "line 2 ('#SBATCH --array=1-3'): the bridge does not translate --array: job arrays",
        ),
        (
            ["", "#SBATCH -a 1-3"],
            "line 3 ('#SBATCH -a 1-3'): the bridge does not translate -a: job arrays",
        ),
        (["#SBATCH --dependency=afterok:1"], "uses the job's dependency itself"),
        (["#SBATCH --exclusive"], "does not translate --exclusive; it translates --job-name"),
        (["#SBATCH --ntasks=4"], "line 2 ('#SBATCH --ntasks=4'): the bridge runs one task"),
        (["#SBATCH --time=forever"], "line 2 ('#SBATCH --time=forever'): not a SLURM time"),
        (["#SBATCH --mem=0"], "0 is refused"),
        (["#SBATCH --gpus=a100:2"], "GPU types"),
        (["#SBATCH -c 2", "#SBATCH -c 3"], "line 3 ('#SBATCH -c 3') contradicts script line 2"),
        (["#SBATCH --cpus-per-task=2"], "sets cpus=2 but the job spec gives cpus=4"),
        (["#SBATCH --output='unclosed"], "line 2"),
    ],
)
def test_a_directive_the_bridge_cannot_honour_is_refused_by_line(lines, words):
    with pytest.raises(ValidationError, match=re.escape(words)):
        JobSpec(**{**BASE, "cpus": 4, "script": script(*lines)})


def test_the_field_case_is_refused_on_its_array_line():
    from pathlib import Path

    field_case = (
        Path(__file__).parents[1] / "integration/slurm/field-cases/slurm-sbatch-directives.sh"
    )
    with pytest.raises(ValidationError, match=re.escape("script line 2 ('#SBATCH --array=1-3')")):
        JobSpec(**{**BASE, "script": field_case.read_text()})
    # Without the array line, the rest is honoured: two CPUs, its name, its output pattern.
    honoured = JobSpec(
        script=field_case.read_text()
        .replace("#SBATCH --array=1-3\n", "")
        .replace("_%a", "")
        .replace("%A", "%j"),
        time_limit_minutes=5,
        working_directory="/scratch",
    )
    assert (honoured.cpus, honoured.name) == (2, "from-directive")
    assert honoured.stdout == "/scratch/%x-directive-%j.out"
