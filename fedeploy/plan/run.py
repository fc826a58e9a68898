"""`fedeploy plan`: the federation planned offline, each stack checked, one report."""

from __future__ import annotations

import errno
import fcntl
import json
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from fedeploy.offline.cache import PlanCache, default_cache
from fedeploy.offline.engine import StackPlan
from fedeploy.offline.federation import FederationPlan, plan_federation
from fedeploy.plan.checks import RenderedRelease, check_stack, release_checks_kept_in
from fedeploy.plan.monitoring import operator_workloads, uninstalled_alert_findings
from fedeploy.values.exposure import exposure_summary
from fedeploy.values.services import CHARTS_DIR
from policies.findings import Finding

EXIT_CLEAN, EXIT_VIOLATIONS, EXIT_INVALID = 0, 1, 2


@dataclass
class SiteReport:
    """One stack's part of the report."""

    name: str
    kind: str
    environment: str
    resources: dict[str, int]
    services: dict[str, dict[str, Any]]
    outputs: dict[str, Any]
    findings: list[Finding]
    releases: list[RenderedRelease] = field(default_factory=list)


@dataclass
class PlanReport:
    """The whole federation's plan: sites, references, order, problems."""

    federation: FederationPlan
    sites: dict[str, SiteReport]

    @property
    def errors(self) -> list[str]:
        return [str(e) for e in self.federation.errors]

    @property
    def violations(self) -> list[tuple[str, Finding]]:
        return [
            (s, f)
            for s, r in sorted(self.sites.items())
            for f in r.findings
            if f.enforcement == "mandatory"
        ]

    @property
    def advisories(self) -> list[tuple[str, Finding]]:
        return [
            (s, f)
            for s, r in sorted(self.sites.items())
            for f in r.findings
            if f.enforcement == "advisory"
        ]

    @property
    def exit_code(self) -> int:
        if self.errors:
            return EXIT_INVALID
        return EXIT_VIOLATIONS if self.violations else EXIT_CLEAN

    def to_dict(self) -> dict[str, Any]:
        fed = self.federation
        return {
            "stacks_dir": str(fed.stacks_dir),
            "deployment_order": fed.order,
            "errors": self.errors,
            "references": [
                {"stack": r.stack, "reads": f"{r.target}.{r.output}", "because": r.because}
                for r in sorted(set(fed.references))
            ],
            "sites": {
                name: {
                    "kind": site.kind,
                    "environment": site.environment,
                    "resource_count": sum(site.resources.values()),
                    "resources": dict(sorted(site.resources.items())),
                    "services": site.services,
                    "outputs": site.outputs,
                    "findings": [
                        {
                            "rule": f.rule,
                            "resource": f.resource,
                            "message": f.message,
                            "enforcement": f.enforcement,
                        }
                        for f in site.findings
                    ],
                }
                for name, site in sorted(self.sites.items())
            },
            "summary": {
                "sites": len(self.sites),
                "resources": sum(sum(s.resources.values()) for s in self.sites.values()),
                "violations": len(self.violations),
                "advisories": len(self.advisories),
                "exit_code": self.exit_code,
            },
        }


def _wiring(release: RenderedRelease) -> dict[str, Any]:
    values = release.values
    storage = values.get("storage") or {}
    account = (values.get("serviceAccount") or {}).get("annotations") or {}
    wiring: dict[str, Any] = {"chart": release.chart, "namespace": release.namespace}
    if storage:
        wiring["bucket"] = storage.get("bucket")
        wiring["storage_endpoint"] = storage.get("endpoint") or "AWS regional S3"
    if "eks.amazonaws.com/role-arn" in account:
        wiring["identity"] = f"IAM role {account['eks.amazonaws.com/role-arn']}"
    elif storage.get("existingSecret"):
        wiring["identity"] = f"static keys from Secret {storage['existingSecret']}"
    if (values.get("catalog") or {}).get("url"):
        wiring["catalog"] = values["catalog"]["url"]
    database = values.get("database") or {}
    if database:
        wiring["database"] = database.get("host") or database.get("mode")
    bridge = values.get("bridge") or {}
    if bridge.get("enabled"):
        wiring["bridge"] = bridge.get("endpoint")
    if (values.get("gpu") or {}).get("enabled"):
        wiring["gpu"] = True
    exposure = exposure_summary(values)
    if exposure is not None:
        wiring["exposure"] = exposure
    wis2 = (values.get("stream") or {}).get("wis2") or {}
    if wis2.get("enabled"):
        wiring["wis2"] = {
            "broker": f"{wis2.get('host')}:{wis2.get('port')}",
            "topics": list(wis2.get("topics") or []),
        }
    federation = values.get("federation") or {}
    if federation.get("enabled"):
        wiring["harvests"] = [s["name"] for s in federation.get("sites") or []]
    if release.monitoring:
        wiring["monitoring"] = release.monitoring
    # What the release runs, with what only a cluster serving the operator's API gets beside
    # the monitors (the bridge probe's Deployment, ServiceAccount and NetworkPolicy).
    runs = release.manifests + operator_workloads(release.operator_manifests)
    wiring["manifests"] = dict(sorted(Counter(m.get("kind", "?") for m in runs).items()))
    return wiring


def check_planned(plan: StackPlan, site: Any) -> tuple[list[RenderedRelease], list[Finding]]:
    """The checks of one planned stack (run in the worker that planned it)."""
    cluster = getattr(site, "cluster", None)
    # Releases name their charts relative to the Pulumi project: this repository.
    rendered, findings = check_stack(plan, CHARTS_DIR.parent, getattr(cluster, "version", None))
    # The stack file's alert settings for alerts no release here installs.
    unused = uninstalled_alert_findings(site, {r.name: r.monitoring for r in rendered})
    return rendered, sorted(set(findings + unused))


def run_plan(
    stacks_dir: Path,
    names: list[str] | None = None,
    jobs: int | None = None,
    cache: PlanCache | Literal["default"] | None = "default",
) -> PlanReport:
    """Plan the named stacks (all in `stacks_dir` by default) and check each; stacks whose
    inputs are unchanged come from `cache` ("default": the user's, see offline/cache.py;
    None plans every stack)."""
    chosen = default_cache() if cache == "default" else cache
    # The releases' checks in the same directory, counted apart from the stacks' hits and misses.
    releases = None if chosen is None else PlanCache(chosen.directory, chosen.root, chosen.limit)
    with release_checks_kept_in(releases):
        federation = plan_federation(
            stacks_dir, names, jobs=jobs, check=check_planned, cache=chosen
        )
    return build_report(federation)


def build_report(federation: FederationPlan) -> PlanReport:
    """Check every planned stack of a federation plan and gather the report."""
    sites: dict[str, SiteReport] = {}
    for name, plan in sorted(federation.plans.items()):
        site = federation.sites[name]
        checked = federation.checked.get(name)
        rendered, findings = checked if checked is not None else check_planned(plan, site)
        findings = [*findings, *_stack_file_notes(name, federation.notes.get(name, []))]
        sites[name] = SiteReport(
            name=name,
            kind=site.kind,
            environment=site.environment,
            resources=dict(Counter(r.type for r in plan.resources if r.custom)),
            services={r.name: _wiring(r) for r in rendered},
            outputs=plan.outputs,
            findings=findings,
            releases=rendered,
        )
    return PlanReport(federation, sites)


def _stack_file_notes(name: str, notes: list[Any]) -> list[Finding]:
    """The advisories on a stack file (config/loader.py's site_notes) as advisory findings."""
    return [
        Finding(
            rule="stack-file",
            resource=f"Pulumi.{name}.yaml {note.path}",
            message=note.message.removeprefix("advisory: "),
            enforcement="advisory",
        )
        for note in notes
    ]


OUT_MARK = ".fedeploy-plan"  # in an --out directory: fedeploy plan wrote it, and which sites
OUT_LOCK = ".fedeploy-plan.lock"  # held while a plan replaces the directory's contents


def out_problem(out: Path) -> str | None:
    """Why `out` cannot take a plan's files, or None: it must be new, empty or a plan's own
    (its contents are replaced whole, so a scan of it never sees an earlier run's sites)."""
    if not out.exists():
        return None
    if not out.is_dir():
        return "is not a directory"
    entries = sorted(p.name for p in out.iterdir() if p.name != OUT_LOCK)
    if entries and OUT_MARK not in entries:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        return (
            f"holds files fedeploy plan did not write ({shown}); a plan replaces its --out "
            "directory whole: give a new or empty directory"
        )
    return None


def write_out(report: PlanReport, out: Path) -> None:
    """Each site's recorded resources and rendered manifests, for other scanners to read.

    Replaces what an earlier plan wrote there (a plan's directory only: out_problem), under a
    lock, so two plans into one folder leave one plan's files, never a mix. Raises OSError."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / OUT_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        problem = out_problem(out)
        if problem:
            raise OSError(errno.EEXIST, problem)
        for entry in out.iterdir():
            if entry.name == OUT_LOCK:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        _write_sites(report, out)
        (out / OUT_MARK).write_text(json.dumps({"sites": sorted(report.sites)}) + "\n")


def _write_sites(report: PlanReport, out: Path) -> None:
    for name, site in report.sites.items():
        base = out / name
        (base / "manifests").mkdir(parents=True, exist_ok=True)
        plan = report.federation.plans[name]
        resources = [
            {"type": r.type, "name": r.name, "inputs": r.inputs, "secret_inputs": r.secret_paths}
            for r in sorted(plan.resources, key=lambda r: (r.type, r.name))
        ]
        (base / "resources.json").write_text(json.dumps(resources, indent=2, sort_keys=True) + "\n")
        (base / "outputs.json").write_text(
            json.dumps(plan.outputs, indent=2, sort_keys=True) + "\n"
        )
        for release in site.releases:
            text = yaml.safe_dump_all(release.manifests, sort_keys=True)
            (base / "manifests" / f"{release.name}.yaml").write_text(text)
            if release.operator_manifests:
                # Where the cluster serves monitoring.coreos.com/v1 (monitoring.enabled auto).
                (base / "monitoring").mkdir(exist_ok=True)
                text = yaml.safe_dump_all(release.operator_manifests, sort_keys=True)
                (base / "monitoring" / f"{release.name}.yaml").write_text(text)
