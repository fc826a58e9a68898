"""The inference server's torch threads follow its CPU limit: OMP_NUM_THREADS from the
container's limits.cpu through the downward API (torch otherwise starts a thread per core of the
node, and on a limited pod the extra threads wait for a core at every call: docs/model.md,
Throughput)."""

from __future__ import annotations

from fedeploy.charts import render_chart


def test_omp_threads_come_from_the_servers_cpu_limit(charts_dir, site_values) -> None:
    values = site_values("aws", "inference")
    manifests = render_chart(charts_dir / "inference", values, "inference", "fedeploy")
    server = next(m for m in manifests if m["kind"] == "Deployment")
    container = server["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["OMP_NUM_THREADS"] == {
        "name": "OMP_NUM_THREADS",
        "valueFrom": {
            "resourceFieldRef": {
                "containerName": container["name"],
                "resource": "limits.cpu",
                "divisor": "1",
            }
        },
    }
