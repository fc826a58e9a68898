"""How a chart runs its container, read from the rendered manifests, as a `podman run` line.

`container_of(manifests, kind, name)` picks a container of a rendered workload;
`podman_run_args(pod, container, env)` turns its pod and container security settings, writable
mounts and command into podman options, so the image tests run each image exactly as the chart
does (and fail when the chart asks for something this translation does not know).
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedeploy.charts import pod_template
from fedeploy.values.storage_credentials import SECRET_KEY, shared_credentials_file

# The storage Secret's volume in our charts, and the variables it replaces.
STORAGE_VOLUME = "storage-credentials"
STORAGE_KEY_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")

# Settings podman applies by default, which the chart only states.
_DEFAULT_SECCOMP = {"type": "RuntimeDefault"}


class UnsupportedSetting(ValueError):
    """A chart setting this translation cannot reproduce with podman."""


@dataclass(frozen=True)
class ChartContainer:
    """One container of a rendered workload, with its pod's spec."""

    workload: str
    pod: dict[str, Any]
    container: dict[str, Any]


def container_of(
    manifests: list[dict[str, Any]], kind: str, name: str, container: str | None = None
) -> ChartContainer:
    """The container (the first, or the one named `container`) of workload `kind`/`name`."""
    for doc in manifests:
        if doc.get("kind") != kind or doc["metadata"]["name"] != name:
            continue
        template = pod_template(doc)
        if template is None:
            raise LookupError(f"{kind}/{name} is not a workload")
        pod = template["spec"]
        for entry in pod["containers"]:
            if container is None or entry["name"] == container:
                return ChartContainer(f"{kind}/{name}", pod, entry)
    raise LookupError(f"no {kind}/{name} (container {container}) in the rendered manifests")


def podman_run_args(
    chart: ChartContainer,
    env: dict[str, str],
    secrets: dict[str, Path] | None = None,
    config_maps: dict[str, Path] | None = None,
) -> list[str]:
    """`podman run` options (entry point, image and command excluded: `chart_command`).

    `env` supplies every variable the chart takes from a Secret or the downward API, and
    overrides the plain values that name cluster addresses (loopback peers here).
    `secrets` maps the name of each Secret volume to a host folder holding its files (mounted
    read-only, as the kubelet mounts a Secret); `config_maps` the name of each ConfigMap volume
    to a folder holding its keys as files (`config_map_files`), mounted read-only, a `subPath`
    as the one file.
    Raises UnsupportedSetting for a security setting podman would not reproduce, and when `env`
    hands over storage keys the chart takes as its mounted file (`storage_secret`).
    """
    pod, container = chart.pod, chart.container
    declared = {variable["name"] for variable in container.get("env", [])}
    smuggled = [name for name in STORAGE_KEY_VARIABLES if name in env and name not in declared]
    if smuggled:
        raise UnsupportedSetting(
            f"{chart.workload}: the chart takes no {', '.join(smuggled)} from the environment; "
            f"supply the storage keys as its {STORAGE_VOLUME} volume (storage_secret)"
        )
    pod_security = pod.get("securityContext", {})
    security = {**pod_security, **container.get("securityContext", {})}
    args: list[str] = ["--network", "host"]
    user = security.get("runAsUser")
    if user is None or not security.get("runAsNonRoot"):
        raise UnsupportedSetting(f"{chart.workload}: runAsUser/runAsNonRoot not set")
    # --passwd=false: as in a pod, no /etc/passwd entry is made up for the user.
    args += ["--user", f"{user}:{security.get('runAsGroup', user)}", "--passwd=false"]
    if security.get("readOnlyRootFilesystem"):
        args.append("--read-only")
        args.append("--read-only-tmpfs=false")
    if security.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    if security.get("privileged"):
        raise UnsupportedSetting(f"{chart.workload}: privileged")
    capabilities = security.get("capabilities", {})
    for dropped in capabilities.get("drop", []):
        args += ["--cap-drop", dropped]
    for added in capabilities.get("add", []):
        args += ["--cap-add", added]
    if security.get("seccompProfile", _DEFAULT_SECCOMP) != _DEFAULT_SECCOMP:
        raise UnsupportedSetting(f"{chart.workload}: seccompProfile {security['seccompProfile']}")
    if "fsGroup" in pod_security:
        args += ["--group-add", str(pod_security["fsGroup"])]
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "emptyDir" in volume and not mount.get("readOnly"):
            # An emptyDir is writable by the pod's fsGroup: a tmpfs the container's user owns.
            args += ["--mount", f"type=tmpfs,destination={mount['mountPath']},tmpfs-mode=1777"]
        elif "configMap" in volume and mount["name"] in (config_maps or {}):
            source = (config_maps or {})[mount["name"]] / mount.get("subPath", "")
            args += ["--volume", f"{source}:{mount['mountPath']}:ro"]
        elif "secret" in volume and mount["name"] in (secrets or {}):
            source = (secrets or {})[mount["name"]]
            _as_the_kubelet_mounts(source, volume["secret"], pod_security.get("fsGroup"))
            args += ["--volume", f"{source}:{mount['mountPath']}:ro"]
        else:
            raise UnsupportedSetting(
                f"{chart.workload}: volume {mount['name']} ({sorted(volume)}) is neither an "
                "emptyDir nor a Secret or ConfigMap the test supplies"
            )
    values: dict[str, str] = {}
    for variable in container.get("env", []):
        name = variable["name"]
        if name in env:
            values[name] = env[name]
        elif "value" in variable:
            values[name] = variable["value"]
        elif "resourceFieldRef" in variable.get("valueFrom", {}):
            values[name] = _resource_field(chart.workload, name, container, variable)
        else:
            raise UnsupportedSetting(f"{chart.workload}: env {name} comes from a reference")
    for name, value in env.items():
        values.setdefault(name, value)
    for name, value in values.items():
        args += ["--env", f"{name}={value}"]
    return args


def _as_the_kubelet_mounts(folder: Path, secret: dict[str, Any], fs_group: int | None) -> None:
    """Give a Secret's files the owner and mode the kubelet gives them: the volume's
    defaultMode (0644 when unset), owned by root, group fsGroup (which also gets read access)
    when the pod sets one. A pod whose user cannot read the file fails here as in a cluster."""
    import os

    mode = secret.get("defaultMode", 0o644)
    if fs_group is not None:
        mode |= 0o040
    for path in folder.iterdir():
        if path.is_file():
            os.chown(path, 0, fs_group if fs_group is not None else 0)
            path.chmod(mode)


def config_map_files(manifests: list[dict[str, Any]], name: str, folder: Path) -> Path:
    """ConfigMap `name`'s keys written as files into `folder` (readable by any user, as the
    kubelet's 0644), for `podman_run_args(config_maps=...)`; returns `folder`."""
    (config,) = [m for m in manifests if m["kind"] == "ConfigMap" and m["metadata"]["name"] == name]
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    for key, text in config["data"].items():
        (folder / key).write_text(text)
        (folder / key).chmod(0o644)
    return folder


def referenced_env(chart: ChartContainer) -> list[str]:
    """Names of the variables the chart takes from a Secret, ConfigMap or the downward API."""
    return [v["name"] for v in chart.container.get("env", []) if "value" not in v]


def chart_command(chart: ChartContainer, image: str) -> list[str]:
    """The end of the `podman run` line: the chart's entry point, the image, its arguments.

    The chart's `command` replaces the image's ENTRYPOINT (and `args` its CMD), as in a pod.
    """
    command = chart.container.get("command", [])
    entrypoint = ["--entrypoint", json.dumps(command[:1])] if command else []
    return [*entrypoint, image, *command[1:], *chart.container.get("args", [])]


@contextmanager
def storage_secret(access_key_id: str, secret_access_key: str) -> Iterator[dict[str, Path]]:
    """The storage Secret as the kubelet mounts it, for `podman_run_args(secrets=...)`: a
    folder holding `credentials`, the shared credentials file fedeploy puts in the Secret
    (readable by the pod's user as its mode allows), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="fedeploy-image-storage-"))
    try:
        folder.chmod(0o755)
        (folder / SECRET_KEY).write_text(shared_credentials_file(access_key_id, secret_access_key))
        (folder / SECRET_KEY).chmod(0o444)
        yield {STORAGE_VOLUME: folder}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _resource_field(workload: str, name: str, container: dict, variable: dict) -> str:
    """A `resourceFieldRef` as the kubelet resolves it: the container's CPU limit or request
    in units of the divisor, rounded up (OMP_NUM_THREADS from limits.cpu)."""
    ref = variable["valueFrom"]["resourceFieldRef"]
    kind, _, resource = ref["resource"].partition(".")
    quantity = container.get("resources", {}).get(kind, {}).get(resource)
    if resource != "cpu" or quantity is None:
        raise UnsupportedSetting(f"{workload}: env {name} reads {ref['resource']}")

    def cores(text: str) -> float:
        text = str(text)
        return int(text[:-1]) / 1000 if text.endswith("m") else float(text)

    return str(math.ceil(cores(quantity) / cores(ref.get("divisor", "1"))))
