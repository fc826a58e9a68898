"""Render, lint and validate fedeploy's Helm charts offline, with real Helm.

The chart tests and the offline plan go through these functions, so a chart is checked the same
way wherever it is checked. Nothing here contacts a cluster: rendering runs Helm's own engine
in-process (helm-python-sdk), validation uses the Kubernetes OpenAPI schemas shipped by
kubernetes-validate, and for the custom resources the charts render (Gateway API's HTTPRoute),
the vendored schemas of fedeploy/crd_schemas (see its README). Both libraries are imported inside the functions, so importing this module
costs nothing for code that never renders a chart.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SEVERITIES = {0: "unknown", 1: "info", 2: "warning", 3: "error"}
_KUBE_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.\d+)?$")
# Vendored schemas of custom resources, named as kubernetes-validate names its files.
CRD_SCHEMAS = Path(__file__).parent / "crd_schemas"


class ChartError(Exception):
    """A chart could not be loaded or rendered; the message names the chart and Helm's reason."""


class ChartValuesError(ChartError):
    """Values that break a chart's values.schema.json; the message lists each violation."""


@dataclass(frozen=True)
class LintFinding:
    """One finding of `helm lint`: severity (info, warning, error), the file, and the message."""

    severity: str
    path: str
    message: str


def _safe_loader() -> Any:
    import yaml

    # libyaml's safe loader parses the same documents about ten times faster.
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


_SAFE_LOADER = _safe_loader()


def _cache_schema_files() -> None:
    """kubernetes-validate re-reads its schema files (the definitions alone are megabytes of
    JSON) for every document it checks; keep each parsed file, as they never change."""
    from kubernetes_validate import utils

    if not hasattr(utils.schema_contents, "cache_info"):
        utils.schema_contents = functools.lru_cache(maxsize=256)(utils.schema_contents)


def render_chart(
    chart_dir: str | Path,
    values: Mapping[str, Any] | None = None,
    release_name: str = "release",
    namespace: str = "default",
    api_versions: Iterable[str] = (),
    only: str | tuple[str, ...] | None = None,
    schema_checked: bool = False,
) -> list[dict[str, Any]]:
    """Render a chart as `helm template` would and return its manifests, parsed.

    NOTES.txt and templates that render to nothing are left out; the manifests come in template
    path order, and in document order within a template. `api_versions` are the API groups the
    cluster serves beyond Kubernetes' own (`helm template --api-versions`, what
    `.Capabilities.APIVersions.Has` sees), e.g. "monitoring.coreos.com/v1". `only` keeps the
    manifests of one template or a few (file names, "monitoring.yaml"): only those templates
    and the chart's helpers run. With `only`, `schema_checked=True` says these values already
    passed the chart's values.schema.json (a render of the same values did): the check, most of
    a render's time, is not made again.
    Raises ChartValuesError when the values break the chart's schema and ChartError for any
    other failure to load or render.
    """
    import helm_python
    import yaml

    _check_release_name(release_name)
    kept = (only,) if isinstance(only, str) else only
    chart = (
        _load(chart_dir)
        if kept is None
        else _load_only(chart_dir, tuple(kept), with_schema=not schema_checked)
    )
    try:
        rendered = _render(chart, dict(values or {}), release_name, namespace, list(api_versions))
    except helm_python.HelmValuesError as error:
        raise ChartValuesError(
            f"chart {chart_dir}: values rejected by values.schema.json: {error}"
        ) from error
    except helm_python.HelmError as error:
        raise ChartError(f"chart {chart_dir}: rendering failed: {error}") from error
    finally:
        chart.close()

    manifests: list[dict[str, Any]] = []
    for template in sorted(rendered):
        if template.endswith("/NOTES.txt"):
            continue
        if kept is not None and template.rsplit("/templates/", 1)[-1] not in kept:
            continue
        try:
            documents = list(yaml.load_all(rendered[template], Loader=_SAFE_LOADER))
        except yaml.YAMLError as error:
            raise ChartError(f"chart {chart_dir}: {template} is not valid YAML: {error}") from error
        for document in documents:
            if document is None:
                continue
            if not isinstance(document, dict):
                raise ChartError(
                    f"chart {chart_dir}: {template} rendered a {type(document).__name__}, "
                    "expected a Kubernetes object (a mapping)"
                )
            manifests.append(document)
    return manifests


def _render(
    chart: Any, values: dict[str, Any], name: str, namespace: str, api_versions: list[str]
) -> dict[str, str]:
    if not api_versions:
        return dict(chart.render(values, name=name, namespace=namespace))
    import json

    from helm_python import _native

    # helm-python-sdk 0.2.2's Chart.render has no parameter for them; its native render takes
    # Helm's install option `api_versions` in the same options object (checked: Has answers true).
    options = {"name": name, "namespace": namespace, "api_versions": api_versions}
    answer = _native.call_string(
        "helm_render", chart._raw(), json.dumps(values), json.dumps(options)
    )
    return dict(json.loads(answer))


def lint_chart(
    chart_dir: str | Path,
    values: Mapping[str, Any] | None = None,
    *,
    strict: bool = True,
    kube_version: str | None = None,
    namespace: str | None = None,
    schema_checked: bool = False,
) -> list[LintFinding]:
    """Run `helm lint` on a chart with the given values and return every finding, info included.

    A chart is clean when no finding has severity "warning" or "error". `kube_version` takes
    "1.29", "v1.29" or "1.29.3". `schema_checked=True` says these values already passed the
    chart's values.schema.json (`render_chart` checks them, and refuses values that break it):
    lint then skips its own copies of that check (Helm's `--skip-schema-validation`: lint checks
    the same merged values once in its values rule and again before rendering the templates,
    about a quarter of its time) and runs every other rule as before.
    """
    import helm_python

    version = None if kube_version is None else "v{}.{}.0".format(*_major_minor(kube_version))
    try:
        report = helm_python.lint(
            str(chart_dir),
            dict(values or {}),
            strict=strict,
            kube_version=version,
            namespace=namespace,
            skip_schema_validation=True if schema_checked else None,
        )
    except helm_python.HelmError as error:
        raise ChartError(f"chart {chart_dir}: helm lint could not run: {error}") from error

    findings = [
        LintFinding(
            severity=_SEVERITIES.get(message.get("severity", 0), "unknown"),
            path=str(message.get("path", "")),
            message=str(message.get("error", "")),
        )
        for message in report.get("messages", [])
    ]
    findings.extend(
        LintFinding(severity="error", path=str(chart_dir), message=str(error))
        for error in report.get("errors", [])
    )
    return findings


def validate_manifests(
    manifests: Iterable[Mapping[str, Any]], kube_version: str, *, strict: bool = True
) -> list[str]:
    """Validate manifests against the Kubernetes OpenAPI schema of one version.

    Returns one line per invalid manifest ("Kind/name: path: reason"); empty when all are valid.
    Strict mode also rejects fields the schema does not know, the usual sign of a typo or of a
    field that the target version does not have yet. An object without a schema (a custom
    resource) is reported, not skipped. A manifest without `apiVersion` or `kind` raises KeyError.

    The schemas and the rules are kubernetes-validate's (`kubernetes_validate.validate`: the
    schema file of the kind and API group, the first violation jsonschema finds); the validator
    of each schema is built once per process instead of once per document.
    """
    version = "{}.{}".format(*_major_minor(kube_version))
    schema_dir = _schema_dir(version, strict)
    errors: list[str] = []
    for manifest in manifests:
        name = _describe(manifest)
        validator = _validator(schema_dir, _schema_file(manifest), version)
        if validator is None:
            errors.append(
                f"{name}: no schema for {manifest.get('apiVersion')} {manifest.get('kind')} "
                f"in Kubernetes {version}"
            )
            continue
        error = next(iter(validator.iter_errors(dict(manifest))), None)
        if error is not None:
            where = "/".join(str(part) for part in error.path) or "(top level)"
            errors.append(f"{name}: {where}: {error.message}")
    return errors


_API_GROUP = re.compile(r"^([^./]*)(?:\.[^/]*)?/")


def _schema_file(manifest: Mapping[str, Any]) -> str:
    """kubernetes-validate's file name for a manifest's schema: "deployment-apps-v1.json" (the
    API group's domain dropped: rbac.authorization.k8s.io/v1 -> rbac-v1)."""
    api_version = _API_GROUP.sub(r"\1-", manifest["apiVersion"])
    return f"{manifest['kind'].lower()}-{api_version}.json"


def warm_chart_checks() -> None:
    """Import the schema checks' libraries and list the schemas' versions, for a process that
    forks planners (fedeploy plan --watch). Never Helm: importing helm_python starts Go's
    runtime, and a process that did cannot fork (offline/federation.py's fork_is_safe)."""
    import jsonschema  # noqa: F401
    import referencing  # noqa: F401

    _cache_schema_files()
    _schema_versions()


def _schema_dir(version: str, strict: bool) -> str:
    """The folder of kubernetes-validate's schemas for a supported "major.minor" version."""
    release = next(v for v in _schema_versions() if v.startswith(f"{version}."))
    return f"v{release}-local" + ("-strict" if strict else "")


@functools.lru_cache(maxsize=1)
def _schema_versions() -> tuple[str, ...]:
    """Every Kubernetes version kubernetes-validate ships schemas for ("1.29.0", ...)."""
    from kubernetes_validate.utils import all_versions

    return tuple(all_versions())


@functools.lru_cache(maxsize=512)
def _validator(schema_dir: str, schema_file: str, version: str) -> Any:
    """A validator of one kubernetes-validate schema, answering as `kubernetes_validate.validate`
    does (Draft 2020-12, the schema and the version's definitions in one registry), over the
    schema with its `$ref`s resolved once (kube_schemas.inline_refs; through the registry for
    each document only where it cannot); a custom resource's comes from CRD_SCHEMAS (its own,
    whatever the version); None when neither has it."""
    import jsonschema
    from kubernetes_validate.utils import schema_contents
    from referencing import Registry, Resource

    from fedeploy.kube_schemas import NotInlinable, inline_refs

    _cache_schema_files()
    try:
        schema = schema_contents(f"kubernetes-json-schema/{schema_dir}/{schema_file}", version)
    except FileNotFoundError:
        custom = CRD_SCHEMAS / schema_file
        if not custom.is_file():
            return None
        schema = json.loads(custom.read_text(encoding="utf-8"))
        return jsonschema.validators.Draft202012Validator(schema)
    definitions = schema_contents(f"kubernetes-json-schema/{schema_dir}/_definitions.json", version)
    registry: Any = Resource.from_contents(schema) @ Registry()
    registry = Resource.from_contents(definitions) @ registry
    try:
        # The same validation without a reference lookup per $ref per document.
        return jsonschema.validators.Draft202012Validator(inline_refs(schema, registry))
    except NotInlinable:
        return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def _load(chart_dir: str | Path) -> Any:
    import helm_python

    try:
        return helm_python.Chart.load(str(chart_dir))
    except helm_python.HelmError as error:
        raise ChartError(f"chart {chart_dir}: cannot be loaded: {error}") from error


def _load_only(chart_dir: str | Path, kept: tuple[str, ...], with_schema: bool) -> Any:
    """The chart with only the templates `kept` (file names) and its helpers: the templates
    whose names start with "_" and any that defines a named template. Rendering it gives those
    templates' output exactly as the whole chart does, without running the others. Without
    `with_schema`, its values.schema.json files are left out too (values are not checked)."""
    import helm_python

    directory = str(Path(chart_dir).resolve())
    try:
        return helm_python.Chart.load_archive(_archive_only(directory, kept, with_schema))
    except helm_python.HelmError as error:
        raise ChartError(f"chart {chart_dir}: cannot be loaded: {error}") from error


def _archive_only(chart_dir: str, kept: tuple[str, ...], with_schema: bool) -> bytes:
    """The chart packaged (as `helm package` would: .helmignore applied) less its templates
    other than `kept` and the helpers; kept per process, keyed on the chart's files."""
    signature = tuple(
        (str(path), stat.st_mtime_ns, stat.st_size)
        for path in sorted(Path(chart_dir).rglob("*"))
        if (stat := path.stat()).st_mode & 0o100000
    )
    key = (chart_dir, kept, with_schema)
    cached = _ARCHIVES.get(key)
    if cached is not None and cached[0] == signature:
        return cached[1]
    archive = _reduced_archive(chart_dir, kept, with_schema)
    _ARCHIVES[key] = (signature, archive)
    return archive


_ARCHIVES: dict[
    tuple[str, tuple[str, ...], bool], tuple[tuple[tuple[str, int, int], ...], bytes]
] = {}


def _reduced_archive(chart_dir: str, kept: tuple[str, ...], with_schema: bool) -> bytes:
    import io
    import tarfile
    import tempfile

    chart = _load(chart_dir)
    with tempfile.TemporaryDirectory(prefix="fedeploy-chart-") as folder:
        try:
            packaged = chart.save(folder)
        finally:
            chart.close()
        reduced = io.BytesIO()
        with (
            tarfile.open(packaged, "r:gz") as source,
            tarfile.open(fileobj=reduced, mode="w:gz") as target,
        ):
            for member in source.getmembers():
                data = source.extractfile(member) if member.isfile() else None
                content = data.read() if data is not None else b""
                parts = member.name.split("/")
                if not with_schema and parts[-1] == "values.schema.json":
                    continue
                # <chart>/templates/<file>: this chart's own templates (a subchart's are
                # <chart>/charts/..., packaged whole, and its templates are helpers).
                if (
                    len(parts) >= 3
                    and parts[1] == "templates"
                    and "/".join(parts[2:]) not in kept
                    and not parts[-1].startswith("_")
                    and b"define" not in content
                ):
                    continue
                target.addfile(member, io.BytesIO(content) if data is not None else None)
    return reduced.getvalue()


def _check_release_name(release_name: str) -> None:
    import helm_python

    try:
        helm_python.validate_release_name(release_name)
    except helm_python.HelmError as error:
        raise ChartError(f"release name {release_name!r} is not allowed: {error}") from error


def _major_minor(kube_version: str) -> tuple[int, int]:
    """Parse "1.29", "v1.29" or "1.29.3"; the version must be one kubernetes-validate knows."""
    match = _KUBE_VERSION.match(kube_version.strip())
    known = sorted({tuple(int(p) for p in v.split(".")[:2]) for v in _schema_versions()})
    if match is None or (int(match[1]), int(match[2])) not in known:
        allowed = ", ".join(f"{major}.{minor}" for major, minor in known)
        raise ValueError(
            f"Kubernetes version {kube_version!r} is not supported; allowed: {allowed}"
        )
    return int(match[1]), int(match[2])


def _describe(manifest: Mapping[str, Any]) -> str:
    """ "Kind/name" of a manifest ("?" for either that is missing, or metadata that is no mapping:
    the schema check then says what it is)."""
    metadata = manifest.get("metadata")
    name = metadata.get("name", "?") if isinstance(metadata, Mapping) else "?"
    return f"{manifest.get('kind', '?')}/{name}"


_POD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


def pod_template(manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """The pod template (metadata and spec) a workload manifest runs, or None for other kinds.

    A bare Pod is its own template. Lets policy checks treat every workload kind alike.
    """
    kind = manifest.get("kind")
    if kind == "Pod":
        return {"metadata": manifest.get("metadata", {}), "spec": manifest.get("spec", {})}
    path = _POD_TEMPLATE_PATHS.get(str(kind))
    if path is None:
        return None
    node: Any = manifest
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node if isinstance(node, dict) else None
