"""The bridge token reaches only the pods that submit, as a mounted file, never an env var."""

from __future__ import annotations

from typing import Any

from fedeploy.charts import render_chart
from tests.charts.conftest import CHARTS_DIR, NAMESPACE, SITES


def _pods(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    pods = {}
    for m in manifests:
        spec = m.get("spec", {})
        if m["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        if m["kind"] in ("Deployment", "StatefulSet", "CronJob", "Job"):
            pods[f"{m['kind']}/{m['metadata']['name']}"] = spec["template"]["spec"]
    return pods


def _render(**overrides: Any) -> dict[str, dict[str, Any]]:
    values = {**SITES["hpc"]["inference"], **overrides}
    return _pods(render_chart(CHARTS_DIR / "inference", values, "inference", NAMESPACE))


def _mounts_token(pod: dict[str, Any]) -> bool:
    for volume in pod.get("volumes", []):
        secret = volume.get("secret") or {}
        if any(item["key"] == "token" for item in secret.get("items", [])) or (
            secret and "items" not in secret
        ):
            return True
    return False


def _env_names(pod: dict[str, Any]) -> set[str]:
    return {e["name"] for c in pod["containers"] for e in c.get("env", [])}


def test_the_model_server_holds_no_bridge_token():
    pods = _render()
    (server,) = [p for name, p in pods.items() if name.startswith("Deployment/")]
    assert not _mounts_token(server)
    assert not {n for n in _env_names(server) if n.startswith("INFER_BRIDGE")}


def test_the_submitting_pod_reads_the_token_from_a_mounted_file():
    pods = _render()
    (retrain,) = [p for name, p in pods.items() if name.startswith("CronJob/")]
    assert _mounts_token(retrain)
    env = {e["name"]: e for c in retrain["containers"] for e in c.get("env", [])}
    assert "INFER_BRIDGE_TOKEN" not in env
    assert env["INFER_BRIDGE_TOKEN_FILE"]["value"] == "/etc/fedeploy/bridge/token"
    (mount,) = [m for m in retrain["containers"][0]["volumeMounts"] if m["name"] == "bridge"]
    assert "subPath" not in mount, "a subPath mount never sees a rotated Secret"
    assert retrain["containers"][0]["command"][:3] == ["fedeploy-infer", "submit", "train"]


def test_without_scheduled_retraining_no_pod_mounts_the_token():
    pods = _render(retrain={"enabled": False})
    assert not any(_mounts_token(p) for p in pods.values())
    assert not any("INFER_BRIDGE_TOKEN" in _env_names(p) for p in pods.values())
