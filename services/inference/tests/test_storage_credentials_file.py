"""Static storage keys reach the service as a file (AWS_SHARED_CREDENTIALS_FILE, as the chart
mounts them), never as variables; the retrain pod's SLURM job (`submit
--pass-storage-credentials`), whose nodes cannot read the pod's files, gets an STS session of
those keys where the store issues one, and nothing (a refusal) where it does not."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fedeploy_inference import bridge_submit
from fedeploy_inference.cli import _parse, main

from fedeploy.values.storage_credentials import OTHER_CREDENTIAL_SOURCES, shared_credentials_file
from services.inference.tests.test_bridge_token_file import FakeBridge, _token

ACCESS, SECRET = "AKIAFILEONLY0001", "file/only+secret-0001"


def _environment(body: Any) -> dict[str, str]:
    """The job's environment in a slurmrestd submission body, wherever the version puts it."""
    if isinstance(body, dict):
        if isinstance(body.get("environment"), dict):
            return dict(body["environment"])
        for value in body.values():
            found = _environment(value)
            if found:
                return found
    return {}


@dataclass
class Submissions:
    """What the fake bridge received: each submission's body and the user it named."""

    bodies: list[dict[str, Any]] = field(default_factory=list)
    users: list[str] = field(default_factory=list)


@pytest.fixture
def submit_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Submissions:
    """A retrain pod's environment (no keys in it) and a bridge that records submissions."""
    for name in OTHER_CREDENTIAL_SOURCES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    token = tmp_path / "token"
    token.write_text(_token("svc", 1))
    monkeypatch.setenv("INFER_BUCKET", "site-a-models")
    monkeypatch.setenv("INFER_BRIDGE_URL", "https://bridge.test:6820")
    user = tmp_path / "user"
    user.write_text("svc\n")
    monkeypatch.setenv("INFER_BRIDGE_USER_FILE", str(user))  # as the chart mounts it
    monkeypatch.setenv("INFER_BRIDGE_TOKEN_FILE", str(token))
    recorded = Submissions()
    bridge = FakeBridge()

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            recorded.bodies.append(json.loads(request.content))
            recorded.users.append(request.headers["X-SLURM-USER-NAME"])
        return bridge(request)

    original = bridge_submit.bridge_client
    monkeypatch.setattr(
        bridge_submit,
        "bridge_client",
        lambda settings, transport=None: original(settings, httpx.MockTransport(answer)),
    )
    return recorded


@pytest.fixture
def on_sts_store(
    submit_env: Submissions, s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Submissions:
    """`submit_env` with the mounted keys of a store that serves STS (moto, as AWS and Ceph RGW
    do), and nothing else the chain could find."""
    credentials = tmp_path / "credentials"
    credentials.write_text(shared_credentials_file(ACCESS, SECRET))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("INFER_S3_ENDPOINT_URL", s3_endpoint)
    for name in OTHER_CREDENTIAL_SOURCES:  # the s3_endpoint fixture's dummy keys: only the file
        monkeypatch.delenv(name, raising=False)
    return submit_env


def test_submit_gives_the_job_a_session_instead_of_the_mounted_keys(
    on_sts_store: Submissions, capsys
) -> None:
    submit_env = on_sts_store

    # The retrain CronJob's order: the submit options after the job, train's after `--`.
    command = ["submit", "train", "--time-limit-minutes", "5", "--pass-storage-credentials"]
    assert main([*command, "--", "--epochs", "3"]) == 0, capsys.readouterr().err
    (body,) = submit_env.bodies
    assert submit_env.users == ["svc"]  # the bridge user, read from its mounted file
    assert "-m fedeploy_inference train --epochs 3\n" in body["script"]
    assert "--time-limit-minutes" not in body["script"] and "--pass" not in body["script"]
    assert body["job"]["time_limit"] == 5
    environment = _environment(body)
    assert environment["AWS_SESSION_TOKEN"]
    assert environment["AWS_ACCESS_KEY_ID"] not in ("", ACCESS)
    assert environment["AWS_SECRET_ACCESS_KEY"] not in ("", SECRET)
    assert ACCESS not in json.dumps(body) and SECRET not in json.dumps(body)
    assert SECRET not in capsys.readouterr().out


def test_the_session_lasts_the_time_limit_and_the_queue_allowance(
    submit_env: Submissions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    from fedeploy_inference.s3 import SESSION_MAX_SECONDS, job_storage_credentials
    from fedeploy_inference.settings import InferenceSettings

    credentials = tmp_path / "credentials"
    credentials.write_text(shared_credentials_file(ACCESS, SECRET))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    asked: list[int] = []

    class Sts:
        def get_session_token(self, DurationSeconds: int) -> dict[str, Any]:  # noqa: N803
            asked.append(DurationSeconds)
            token = {"AccessKeyId": "ASIA1", "SecretAccessKey": "s", "SessionToken": "t"}
            return {"Credentials": token}

    monkeypatch.setattr(boto3, "client", lambda service, **kwargs: Sts())
    settings = InferenceSettings(bucket="site-a-models")
    job_storage_credentials(settings, (90 + 60) * 60)
    job_storage_credentials(settings, 60)
    job_storage_credentials(settings, 10**7)
    assert asked == [9000, 900, SESSION_MAX_SECONDS]


def test_a_store_without_sts_is_refused_and_the_keys_stay_here(
    submit_env: Submissions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    # SeaweedFS checks signatures and has no STS: no long-lived key goes to the job instead.
    from loopback import SeaweedS3
    from tests.conftest import start_peer

    store = start_peer(lambda: SeaweedS3(tmp_path / "seaweedfs").start())
    try:
        keys = store.endpoint
        credentials = tmp_path / "credentials"
        credentials.write_text(shared_credentials_file(keys.access_key_id, keys.secret_access_key))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
        monkeypatch.setenv("INFER_S3_ENDPOINT_URL", keys.endpoint_url)
        assert main(["submit", "train", "--pass-storage-credentials"]) == 2
    finally:
        store.stop()
    error = capsys.readouterr().err
    assert f"the store ({keys.endpoint_url}) issued no short-lived credentials" in error, error
    assert "never given the site's long-lived storage keys" in error
    assert keys.secret_access_key not in error and keys.access_key_id not in error
    assert submit_env.bodies == []


def test_submit_without_credentials_says_where_it_looked(
    submit_env: Submissions, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.delenv("AWS_SHARED_CREDENTIALS_FILE", raising=False)
    monkeypatch.setenv("HOME", "/nonexistent")
    assert main(["submit", "train", "--pass-storage-credentials"]) == 2
    error = capsys.readouterr().err
    assert "no storage credentials" in error and "AWS_SHARED_CREDENTIALS_FILE" in error
    assert submit_env.bodies == []


@pytest.mark.parametrize("name", ["absent", "storage"], ids=["missing", "a-directory"])
def test_a_credentials_file_that_cannot_be_read_is_named(
    submit_env: Submissions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, name: str
) -> None:
    # boto3 takes a missing or unreadable file for no file and reports no credentials at all;
    # the mount's folder given for the file (a subPath slip) is such a case.
    (tmp_path / "storage").mkdir()
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / name))
    assert main(["submit", "train", "--pass-storage-credentials"]) == 2
    error = capsys.readouterr().err
    assert f"AWS_SHARED_CREDENTIALS_FILE {tmp_path / name}: cannot read" in error, error
    assert submit_env.bodies == []


def test_an_unreadable_bridge_user_file_is_named(
    submit_env: Submissions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("INFER_BRIDGE_USER_FILE", str(tmp_path / "no-user"))
    assert main(["submit", "train"]) == 2
    error = capsys.readouterr().err
    assert "INFER_BRIDGE_USER_FILE" in error and "no-user" in error
    assert submit_env.bodies == []


def test_a_refused_job_environment_never_echoes_the_passed_keys(
    on_sts_store: Submissions, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    submit_env = on_sts_store
    # A variable the bridge refuses (SLURM's own) beside the keys: pydantic's message repeats
    # the whole environment it was given, the tail of the secret key included.
    monkeypatch.setenv("SLURM_ACCOUNT", "ops")
    command = ["submit", "train", "--pass-storage-credentials", "--pass-env", "SLURM_ACCOUNT"]
    assert main(command) == 2
    captured = capsys.readouterr()
    assert "SLURM_ACCOUNT" in captured.err and "SLURM's own" in captured.err
    for text in (captured.err, captured.out):
        assert not any(SECRET[i : i + 6] in text for i in range(len(SECRET) - 5)), text
        assert ACCESS[-6:] not in text
    assert submit_env.bodies == []


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        # train's options before `--` were taken for submit's own: say where they go.
        (["submit", "train", "--epochs", "3"], "train's own options go after `--`"),
        # batch takes no job arguments: they were dropped without a word.
        (
            ["submit", "batch", "--bbox", "0,0,1,1", "--start", "a", "--end", "b", "--", "x"],
            "submit batch: arguments after `--` are only for `submit train`",
        ),
        # train's arguments fail at submission, not in the SLURM job hours later.
        (["submit", "train", "--", "--epochs", "three"], "invalid int value: 'three'"),
        (["submit", "train", "--", "--start", "2026-01-01"], "a time with a UTC offset"),
        (["submit", "train", "--", "--log-level", "DEBUG"], "unrecognized arguments"),
        (["submit", "train", "--", "--epochs", "3", "--", "x"], "a second `--`"),
    ],
)
def test_submit_refuses_job_arguments_the_job_would_refuse(
    submit_env: Submissions, command: list[str], expected: str, capsys
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(command)
    assert exited.value.code == 2
    assert expected in capsys.readouterr().err
    assert submit_env.bodies == []


@pytest.mark.parametrize(
    ("command", "job", "arguments"),
    [
        # The forms services/inference/README.md shows.
        (["submit", "train"], "train", []),
        (["submit", "--gpus", "2", "train", "--", "--epochs", "3"], "train", ["--epochs", "3"]),
        (
            ["--log-level", "DEBUG", "submit", "train", "--pass-storage-credentials", "--"],
            "train",
            [],
        ),
        (["submit", "train", "--", "--note", "a -- b"], "train", ["--note", "a -- b"]),
        (
            ["submit", "batch", "--bbox", "0,0,1,1", "--start", "2026-01-01T00:00Z"]
            + ["--end", "2026-01-02T00:00Z", "--pass-env", "AWS_ACCESS_KEY_ID"],
            "batch",
            [],
        ),
    ],
)
def test_submit_accepts_the_documented_forms(
    command: list[str], job: str, arguments: list[str]
) -> None:
    args = _parse(command)
    assert (args.command, args.job, args.arguments) == ("submit", job, arguments)


def test_a_debug_submission_logs_no_key(
    on_sts_store: Submissions,
    monkeypatch: pytest.MonkeyPatch,
    capsys,
    caplog: pytest.LogCaptureFixture,
) -> None:
    submit_env = on_sts_store
    caplog.set_level(logging.DEBUG)
    # Other tests in the same process quiet loggers: the ingestion service's logging setup sets
    # botocore, httpx and urllib3 to WARNING, a dictConfig disables the loggers that existed
    # then. This test needs every one of them to speak at DEBUG.
    for logger in list(logging.root.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            monkeypatch.setattr(logger, "disabled", False)
            monkeypatch.setattr(logger, "propagate", True)
            monkeypatch.setattr(logger, "level", logging.NOTSET)
    command = ["--log-level", "DEBUG", "submit", "train", "--pass-storage-credentials"]
    assert main([*command, "--wait-minutes", "0"]) == 0
    environment = _environment(submit_env.bodies[0])
    session = (environment["AWS_SECRET_ACCESS_KEY"], environment["AWS_SESSION_TOKEN"])
    captured = capsys.readouterr()
    assert caplog.records  # botocore and the bridge client did log
    for text in (caplog.text, captured.out, captured.err):
        assert SECRET not in text
        assert not [part for part in session if part in text]
