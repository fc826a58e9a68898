"""Static storage keys reach our pods as a file, never as environment variables.

Over every release `fedeploy plan` renders for the example federation: no container has
AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY in its environment; on a site with static keys
(the `fedeploy-storage` Secret, or per-workload `fedeploy-storage-<workload>` Secrets), every
container of ours that uses a bucket (a bucket setting, or the restore drill's --backup-url)
mounts one of those Secrets' `credentials` key read-only under /etc/fedeploy/storage (a whole
Secret volume, no subPath) and names it in AWS_SHARED_CREDENTIALS_FILE; and no workload carries checkov's CKV_K8S_35 waiver
(secrets as environment variables) any more."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from fedeploy.charts import ChartError, pod_template, render_chart
from fedeploy.values.storage_credentials import FILE, MOUNT_DIR, SECRET_KEY

STORAGE_SECRET = "fedeploy-storage"
KEY_VARIABLES = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
# The setting through which each of our services names its bucket(s): the containers that use
# the object store.
# The catalog database's backup sidecar (BACKUP_URL, s3://bucket/prefix) is a store user too.
BUCKET_SETTINGS = {"INGEST_BUCKET", "INFER_BUCKET", "ASSETS_BUCKETS", "BACKUP_URL"}


def _workloads(example_report: Any) -> list[tuple[str, str, dict[str, Any], frozenset[str]]]:
    """(site, release, workload manifest, the site's static-key Secrets) for every workload: the
    site's `fedeploy-storage` and the per-workload `fedeploy-storage-<workload>` Secrets (empty
    where the site has no static keys)."""
    found = []
    for name, site in example_report.sites.items():
        plan = example_report.federation.plans[name]
        static = frozenset(
            s.inputs["metadata"]["name"]
            for s in plan.by_type("kubernetes:core/v1:Secret")
            if s.inputs["metadata"]["name"] == STORAGE_SECRET
            or s.inputs["metadata"]["name"].startswith(STORAGE_SECRET + "-")
        )
        for release in site.releases:
            for manifest in release.manifests:
                if pod_template(manifest) is not None:
                    found.append((name, release.name, manifest, static))
    return found


def _pod(manifest: dict[str, Any]) -> dict[str, Any]:
    template = pod_template(manifest)
    assert template is not None, manifest["metadata"]["name"]
    return dict(template["spec"])


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def _assert_mounts_the_file(
    pod: dict[str, Any],
    container: dict[str, Any],
    where: str,
    secrets: frozenset[str] = frozenset({STORAGE_SECRET}),
) -> None:
    env = {e["name"]: e for e in container.get("env", [])}
    assert env["AWS_SHARED_CREDENTIALS_FILE"] == {
        "name": "AWS_SHARED_CREDENTIALS_FILE",
        "value": FILE,
    }, where
    (mount,) = [m for m in container.get("volumeMounts", []) if m["mountPath"] == MOUNT_DIR]
    # The whole volume, read-only: a subPath mount would never see rotated keys.
    assert mount.get("readOnly") is True and "subPath" not in mount, where
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] in secrets, where
    assert volume["secret"]["items"] == [{"key": SECRET_KEY, "path": "credentials"}], where
    assert volume["secret"]["defaultMode"] & 0o007 == 0, where  # not world-readable


def test_no_workload_has_storage_keys_in_its_environment(example_report) -> None:
    workloads = _workloads(example_report)
    assert len(workloads) > 20
    for site, release, manifest, _ in workloads:
        for container in _containers(_pod(manifest)):
            where = f"{site}/{release} {manifest['kind']}/{manifest['metadata']['name']} {container['name']}"
            names = {e["name"] for e in container.get("env", [])}
            assert not names & KEY_VARIABLES, where
            for source in container.get("envFrom", []):
                assert "secretRef" not in source, where


def test_every_store_user_on_a_static_keys_site_mounts_the_credentials_file(
    example_report,
) -> None:
    mounted: Counter[str] = Counter()
    for site, release, manifest, static in _workloads(example_report):
        pod = _pod(manifest)
        for container in _containers(pod):
            where = f"{site}/{release} {manifest['kind']}/{manifest['metadata']['name']} {container['name']}"
            names = {e["name"] for e in container.get("env", [])}
            # The restore drill takes its store as an argument, not a setting.
            uses_store = names & BUCKET_SETTINGS or any(
                str(arg).startswith("--backup-url=") for arg in container.get("args", [])
            )
            if static and uses_store:
                _assert_mounts_the_file(pod, container, where, static)
                mounted[f"{release} {manifest['kind']}"] += 1
            elif "AWS_SHARED_CREDENTIALS_FILE" in names:
                raise AssertionError(f"{where}: names a credentials file it has no use for")
    # Each kind of store user of the example federation is covered: the stream and the WIS2
    # consumers, the Sentinel workers, the model server, the asset endpoint (no example site
    # with static keys retrains: test_retraining_passes_the_keys_of_the_file covers it).
    assert mounted["ingestion StatefulSet"] >= 2, mounted
    assert mounted["ingestion CronJob"] >= 1, mounted
    assert mounted["inference Deployment"] >= 1, mounted
    assert mounted["catalog Deployment"] >= 1, mounted


def test_a_secrets_as_environment_waiver_only_where_an_upstream_image_needs_one(
    example_report,
) -> None:
    waived = 0
    for site, release, manifest, _ in _workloads(example_report):
        annotations = manifest["metadata"].get("annotations") or {}
        waivers = [
            v
            for k, v in annotations.items()
            if k.startswith("checkov.io/skip") and v.startswith("CKV_K8S_35")
        ]
        pod = _pod(manifest)
        from_secrets = [
            e["name"]
            for c in _containers(pod)
            for e in c.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})
        ]
        where = (site, release, manifest["metadata"]["name"], waivers, from_secrets)
        # A waiver stands only where a variable really comes from a Secret, never for our own
        # services' storage keys.
        assert bool(waivers) == bool(from_secrets), where
        assert not any("boto3" in w or "storage" in w for w in waivers), where
        waived += bool(waivers)
    assert waived, "the upstream catalog images keep their waiver (PGPASSWORD)"


def test_retraining_passes_the_keys_of_the_file(rendered) -> None:
    cronjob = next(
        m
        for m in rendered("inference", "hpc")
        if m["kind"] == "CronJob" and m["metadata"]["name"].endswith("-retrain")
    )
    pod = _pod(cronjob)
    (container,) = pod["containers"]
    where = "inference hpc retrain"
    assert not {e["name"] for e in container["env"]} & KEY_VARIABLES, where
    _assert_mounts_the_file(pod, container, where, frozenset({"s3-credentials"}))
    # The SLURM job gets the keys the submitting process reads from the file (the cluster's
    # nodes cannot read the pod's files); submit options come before train's own, after `--`.
    # No variable from a Secret (the bridge token and its user are files too), so no waiver.
    assert not [e["name"] for e in container["env"] if "valueFrom" in e]
    annotations = cronjob["metadata"].get("annotations") or {}
    assert not [v for v in annotations.values() if v.startswith("CKV_K8S_35")], annotations
    command = container["command"]
    assert "--pass-storage-credentials" in command[: command.index("--")]
    assert "--pass-env" not in command


@pytest.mark.parametrize(
    ("chart", "site"), [("inference", "hpc"), ("ingestion", "hpc"), ("catalog", "published")]
)
def test_a_pod_mounting_a_secret_file_needs_the_fs_group_that_can_read_it(
    charts_dir: Path, site_values: Any, merge: Any, chart: str, site: str
) -> None:
    # The kubelet gives a Secret volume's files (mode 0440) to root and the pod's fsGroup; the
    # container runs as a non-root user, who reads them only through that group. Without it
    # boto3 skips the unreadable credentials file as if absent ("Unable to locate
    # credentials"), so the chart refuses to render instead.
    values = site_values(site, chart)
    assert render_chart(charts_dir / chart, values, chart, "fedeploy")
    without = merge(values, {"podSecurityContext": {"fsGroup": None}})
    with pytest.raises(ChartError, match=r"podSecurityContext\.fsGroup is required"):
        render_chart(charts_dir / chart, without, chart, "fedeploy")


def test_a_pod_without_secret_files_needs_no_fs_group(
    charts_dir: Path, site_values: Any, merge: Any
) -> None:
    values = merge(site_values("aws", "inference"), {"podSecurityContext": {"fsGroup": None}})
    manifests = render_chart(charts_dir / "inference", values, "inference", "fedeploy")
    pods = [_pod(m) for m in manifests if pod_template(m) is not None]
    assert pods and all("fsGroup" not in p["securityContext"] for p in pods)


def test_the_retrain_command_parses_with_the_cli_it_runs(
    charts_dir: Path, site_values: Any, merge: Any
) -> None:
    from fedeploy_inference.cli import _parse

    arguments = ["--epochs", "7", "--note", "nightly -- 100% [default]"]
    retrain = {"arguments": arguments, "gpus": 2, "timeLimitMinutes": 90}
    values = merge(site_values("hpc", "inference"), {"retrain": retrain})
    (cronjob,) = [
        m
        for m in render_chart(charts_dir / "inference", values, "inference", "fedeploy")
        if m["kind"] == "CronJob"
    ]
    (container,) = _pod(cronjob)["containers"]
    assert container["command"][0] == "fedeploy-infer"
    args = _parse(container["command"][1:])
    assert (args.command, args.job, args.arguments) == ("submit", "train", arguments)
    assert args.pass_storage_credentials
    assert (args.gpus, args.time_limit_minutes) == (2, 90)
