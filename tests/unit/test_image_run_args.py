"""The translation of a rendered chart's container into `podman run` options, which the image
tests (tests/images) use to run each image exactly as its chart does."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.images.chart_run import (
    STORAGE_VOLUME,
    UnsupportedSetting,
    chart_command,
    container_of,
    podman_run_args,
    referenced_env,
    storage_secret,
)

POD: dict[str, Any] = {
    "securityContext": {
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "runAsNonRoot": True,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    },
    "containers": [
        {
            "name": "stream",
            "command": ["fedeploy-ingest", "stream"],
            "env": [
                {"name": "INGEST_MQTT_HOST", "value": "10.1.2.3"},
                {"name": "INGEST_SITE", "value": "hpc-centre"},
                {"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {"name": "s"}}},
            ],
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
                "readOnlyRootFilesystem": True,
            },
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        }
    ],
    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}],
}


def _manifests(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"kind": "Service", "metadata": {"name": "stream"}, "spec": {}},
        {
            "kind": "StatefulSet",
            "metadata": {"name": "stream"},
            "spec": {"template": {"spec": pod}},
        },
    ]


def test_the_charts_security_settings_become_podman_options() -> None:
    chart = container_of(_manifests(POD), "StatefulSet", "stream")
    args = podman_run_args(chart, {"AWS_ACCESS_KEY_ID": "k", "INGEST_MQTT_HOST": "127.0.0.1"})
    joined = " ".join(args)
    assert "--user 10001:10001 --passwd=false" in joined
    # Only the chart's mounts are writable: podman's own tmpfs on /tmp and /run are turned off.
    assert "--read-only --read-only-tmpfs=false" in joined
    assert "--cap-drop ALL" in joined and "--security-opt no-new-privileges" in joined
    assert "--mount type=tmpfs,destination=/tmp,tmpfs-mode=1777" in joined
    assert "--network host" in joined
    assert "--env INGEST_MQTT_HOST=127.0.0.1" in joined  # the override wins
    assert "--env INGEST_SITE=hpc-centre" in joined  # the chart's own value stays
    assert referenced_env(chart) == ["AWS_ACCESS_KEY_ID"]
    assert chart_command(chart, "img:1") == [
        "--entrypoint",
        '["fedeploy-ingest"]',
        "img:1",
        "stream",
    ]


def test_a_writable_root_is_not_made_read_only() -> None:
    pod = copy.deepcopy(POD)
    pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False
    args = podman_run_args(
        container_of(_manifests(pod), "StatefulSet", "stream"), {"AWS_ACCESS_KEY_ID": "k"}
    )
    assert "--read-only" not in args


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda p: p["volumes"].__setitem__(0, {"name": "tmp", "hostPath": {"path": "/"}}), "tmp"),
        (lambda p: p["securityContext"].pop("runAsNonRoot"), "runAsNonRoot"),
        (
            lambda p: p["containers"][0]["securityContext"].__setitem__("privileged", True),
            "privileged",
        ),
        (
            lambda p: p["securityContext"].__setitem__("seccompProfile", {"type": "Unconfined"}),
            "seccomp",
        ),
    ],
)
def test_a_setting_podman_would_not_reproduce_is_refused(change, named) -> None:
    pod = copy.deepcopy(POD)
    change(pod)
    with pytest.raises(UnsupportedSetting, match=named):
        podman_run_args(
            container_of(_manifests(pod), "StatefulSet", "stream"), {"AWS_ACCESS_KEY_ID": "k"}
        )


def test_a_secret_reference_without_a_value_is_refused() -> None:
    with pytest.raises(UnsupportedSetting, match="AWS_ACCESS_KEY_ID"):
        podman_run_args(container_of(_manifests(POD), "StatefulSet", "stream"), {})


def test_a_missing_workload_is_named() -> None:
    with pytest.raises(LookupError, match="Deployment/stream"):
        container_of(_manifests(POD), "Deployment", "stream")


def test_storage_keys_go_in_as_the_charts_file_never_as_variables() -> None:
    pod = copy.deepcopy(POD)
    container = pod["containers"][0]
    container["env"] = [
        {"name": "AWS_SHARED_CREDENTIALS_FILE", "value": "/etc/fedeploy/storage/credentials"}
    ]
    container["volumeMounts"].append(
        {"name": STORAGE_VOLUME, "mountPath": "/etc/fedeploy/storage", "readOnly": True}
    )
    pod["volumes"].append({"name": STORAGE_VOLUME, "secret": {"secretName": "fedeploy-storage"}})
    chart = container_of(_manifests(pod), "StatefulSet", "stream")
    # A test handing the keys over as variables would not run the image as the chart does.
    with pytest.raises(UnsupportedSetting, match="AWS_ACCESS_KEY_ID"):
        podman_run_args(chart, {"AWS_ACCESS_KEY_ID": "k"})
    with storage_secret("AKIDTEST", "secret/test") as secrets:
        joined = " ".join(podman_run_args(chart, {}, secrets))
        folder = secrets[STORAGE_VOLUME]
        assert f"--volume {folder}:/etc/fedeploy/storage:ro" in joined
        assert "aws_secret_access_key = secret/test" in (folder / "credentials").read_text()
        assert "secret/test" not in joined
    assert not folder.exists()
