"""The bridge token is a mounted file read at each submission: a rotated Secret reaches a
running process without a restart, and the token never sits in the environment."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fedeploy_inference.bridge_submit import Submitter, bridge_client
from fedeploy_inference.settings import InferenceSettings
from fedeploy_inference.slurm_jobs import JobResources, training_job

URL = "https://bridge.test:6820"


def _token(user: str, serial: int) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    claims = {"sun": user, "exp": int(time.time() + 3600), "iat": serial}
    return f"{part({'alg': 'HS256'})}.{part(claims)}.sig-{serial}"


class FakeBridge:
    """slurmrestd v0.0.38's submit and job answers; records the token of every request."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.next_id = 100

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.tokens.append(request.headers["X-SLURM-USER-TOKEN"])
        if request.url.path == "/openapi/v3":  # the client asks which API versions it serves
            return httpx.Response(200, json={"paths": {"/slurm/v0.0.38/ping": {}}})
        if request.method == "POST" and request.url.path.endswith("/job/submit"):
            self.next_id += 1
            return httpx.Response(200, json={"job_id": self.next_id, "errors": []})
        job_id = int(request.url.path.rsplit("/", 1)[-1])
        return httpx.Response(
            200,
            json={
                "jobs": [
                    {
                        "job_id": job_id,
                        "job_state": "PENDING",
                        "state_reason": "None",
                        "name": "fedeploy-train",
                        "user_name": "svc",
                        "comment": "",
                        "exit_code": 0,
                    }
                ],
                "errors": [],
            },
        )


def _rotate(directory: Path, token: str) -> None:
    """Swap the file the way the kubelet updates a mounted Secret: a new target, one rename."""
    fresh = directory / f"..data-{time.monotonic_ns()}"
    fresh.mkdir()
    (fresh / "token").write_text(token)
    link = directory / "..data.tmp"
    link.symlink_to(fresh.name)
    os.replace(link, directory / "..data")
    if not (directory / "token").is_symlink():
        (directory / "token").symlink_to("..data/token")


def test_a_running_submitter_picks_up_a_rotated_token(tmp_path: Path) -> None:
    secret_dir = tmp_path / "bridge"
    secret_dir.mkdir()
    first, second = _token("svc", 1), _token("svc", 2)
    _rotate(secret_dir, first)
    settings = InferenceSettings(
        bucket="site-a-data",
        bridge_url=URL,
        bridge_user="svc",
        bridge_token_file=str(secret_dir / "token"),
    )
    bridge = FakeBridge()
    submitter = Submitter(settings, transport=httpx.MockTransport(bridge))
    job = training_job(settings, JobResources())

    submitter.submit(job)
    assert set(bridge.tokens) == {first}
    _rotate(secret_dir, second)
    bridge.tokens.clear()
    submitter.submit(job)
    assert set(bridge.tokens) == {second}


def test_a_missing_token_file_names_the_file_not_a_token(tmp_path: Path) -> None:
    settings = InferenceSettings(
        bucket="site-a-data",
        bridge_url=URL,
        bridge_user="svc",
        bridge_token="env-token-should-not-be-used",
        bridge_token_file=str(tmp_path / "absent"),
    )
    with pytest.raises(ValueError, match="INFER_BRIDGE_TOKEN_FILE .*absent") as caught:
        bridge_client(settings)
    assert "env-token" not in str(caught.value)
