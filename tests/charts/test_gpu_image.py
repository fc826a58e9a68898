"""The inference chart runs the CUDA build of its image on GPU nodes: the CPU image's torch
cannot use a GPU, and the model server would fail to start with INFER_DEVICE=cuda."""

from __future__ import annotations

from fedeploy.charts import render_chart

DIGEST = "sha256:" + "c" * 64


def test_gpu_servers_run_the_cuda_image(charts_dir, site_values) -> None:
    values = site_values("aws", "inference")
    for gpu, suffix in ((False, ""), (True, "-cuda")):
        values["gpu"] = {**values.get("gpu", {}), "enabled": gpu}
        manifests = render_chart(charts_dir / "inference", values, "inference", "fedeploy")
        server = next(m for m in manifests if m["kind"] == "Deployment")
        image = server["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == f"ghcr.io/fedeploy/inference:0.1.0{suffix}"
        env = {
            e["name"]: e.get("value")
            for e in server["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert env["INFER_DEVICE"] == ("cuda" if gpu else "cpu")


def test_the_cuda_image_has_its_own_digest(charts_dir, site_values) -> None:
    values = site_values("aws", "inference")
    values["gpu"] = {**values.get("gpu", {}), "enabled": True, "image": {"digest": DIGEST}}
    manifests = render_chart(charts_dir / "inference", values, "inference", "fedeploy")
    server = next(m for m in manifests if m["kind"] == "Deployment")
    image = server["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"ghcr.io/fedeploy/inference:0.1.0-cuda@{DIGEST}"
    # Pinned, the workload needs no image waiver.
    assert "checkov.io/skip1" not in (server["metadata"].get("annotations") or {}) or not any(
        "CKV_K8S_43" in v for v in server["metadata"]["annotations"].values()
    )
