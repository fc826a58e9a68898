"""A job as the federation describes it: refused early when SLURM would misread it."""

from __future__ import annotations

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
