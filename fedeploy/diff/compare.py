"""`fedeploy diff`: what a change does to every site, from the offline plans of two revisions.

Both revisions are planned by their own program (`fedeploy plan --out`, run inside a copy of
each tree exported with git, as `fedeploy affected` does), then compared site by site:

- resources, keyed by `type::name` (the URN without its project, stack and parent chain), with
  the changed input paths and their old and new values; a secret input shows `[secret]`;
- every Helm release's rendered manifests, object by object, with a unified diff of each
  changed object's YAML (a Secret's `data` and `stringData` masked);
- the contract (stack outputs) and the stacks that read a changed output;
- the stack file's `secure:` values, compared by ciphertext digest (the offline plan never
  decrypts them, so a changed secret shows here and nowhere else);
- whether a changed resource will be replaced, only where `REPLACEMENTS` says so for certain.

Sites are grouped by wave (the head's deployment order); stacks only the base has come last."""

from __future__ import annotations

import difflib
import hashlib
import json
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fedeploy.config.loader import stacks_dir_in_repository, stacks_in_revisions
from fedeploy.errors import FedeployError
from fedeploy.gitops import git_tree
from fedeploy.gitops.planned_sites import load_manifests, read_recorded_plan, run_plan_in_tree

SECRET = "[secret]"
EXIT_UNCHANGED, EXIT_CHANGED, EXIT_INVALID = 0, 1, 2

# Resource type -> input paths whose change makes the provider replace the resource, never
# update it in place. Only what the provider documents as "forces new resource" (or what is a
# Kubernetes object's identity) is listed; a change elsewhere is reported with no replacement
# verdict at all, because the project cannot know it. `*` means any input.
REPLACEMENTS: dict[str, tuple[str, ...]] = {
    "aws:ec2/vpc:Vpc": ("cidrBlock",),
    "aws:ec2/subnet:Subnet": ("availabilityZone", "cidrBlock", "vpcId"),
    "aws:ec2/instance:Instance": ("ami", "availabilityZone", "subnetId"),
    "aws:eks/cluster:Cluster": ("name",),
    "aws:eks/nodeGroup:NodeGroup": ("clusterName", "instanceTypes", "nodeGroupName", "subnetIds"),
    "aws:iam/role:Role": ("name",),
    "aws:kms/alias:Alias": ("name",),
    "aws:rds/instance:Instance": ("identifier", "storageEncrypted"),
    "aws:s3/bucket:Bucket": ("bucket", "bucketPrefix"),
    "pulumi:pulumi:StackReference": ("name",),
    # The random provider recreates a value whenever any of its inputs changes.
    "random:index/randomPassword:RandomPassword": ("*",),
}
# Every Kubernetes object (not a Helm release, not the provider) is identified by its name
# and namespace: changing either creates a new object and deletes the old one.
KUBERNETES_IDENTITY = ("metadata.name", "metadata.namespace")


class DiffError(FedeployError):
    """The change cannot be diffed: a revision does not plan, a site is unknown."""


# ---- one planned revision ---------------------------------------------------------------------


@dataclass
class PlannedStack:
    """What the offline plan recorded of one stack."""

    # resources by `<type>::<name>`: {"type", "name", "inputs", "secret_inputs"}
    resources: dict[str, dict[str, Any]]
    outputs: dict[str, Any]
    manifests: dict[str, dict[str, dict[str, Any]]]  # release -> object key -> object


@dataclass
class RevisionPlan:
    """One revision's offline plan: stacks, deployment order, who reads what, secret digests."""

    commit: str
    stacks: dict[str, PlannedStack] = field(default_factory=dict)
    order: list[list[str]] = field(default_factory=list)
    readers: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # (stack, output)
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)  # stack -> path -> digest
    errors: list[str] = field(default_factory=list)


Planner = Callable[[Path, str, str], RevisionPlan]


def object_key(document: dict[str, Any]) -> str:
    """`apiVersion kind namespace/name` of a Kubernetes object (no namespace: `name` alone)."""
    meta = document.get("metadata") or {}
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{document.get('apiVersion', '?')} {document.get('kind', '?')} {where}{meta.get('name', '?')}"


def read_plan_out(commit: str, report: dict[str, Any], out: Path) -> RevisionPlan:
    """A revision's plan from the JSON report of `fedeploy plan` and the files of its `--out`."""
    plan = RevisionPlan(commit=commit, order=report.get("deployment_order") or [])
    plan.errors = [str(e) for e in report.get("errors") or []]
    for ref in report.get("references") or []:
        target, _, output = str(ref["reads"]).partition(".")
        plan.readers.setdefault((target, output), [])
        if ref["stack"] not in plan.readers[(target, output)]:
            plan.readers[(target, output)].append(ref["stack"])
    for readers in plan.readers.values():
        readers.sort()
    for name in report.get("sites") or {}:
        site_out = out / name
        resources: dict[str, dict[str, Any]] = {}
        for resource in json.loads((site_out / "resources.json").read_text()):
            key = f"{resource['type']}::{resource['name']}"
            resources[key if key not in resources else f"{key}#{len(resources)}"] = resource
        manifests: dict[str, dict[str, dict[str, Any]]] = {}
        for file in sorted((site_out / "manifests").glob("*.yaml")):
            objects: dict[str, dict[str, Any]] = {}
            for document in load_manifests(file.read_text()):
                if isinstance(document, dict):
                    key = object_key(document)
                    objects[key if key not in objects else f"{key}#{len(objects)}"] = document
            manifests[file.stem] = objects
        outputs = json.loads((site_out / "outputs.json").read_text())
        plan.stacks[name] = PlannedStack(resources, outputs, manifests)
    return plan


def secret_digests(stacks_dir: Path) -> dict[str, dict[str, str]]:
    """Each stack file's `secure:` values: config path -> a digest of the ciphertext."""
    from fedeploy.offline.federation import stack_files

    digests: dict[str, dict[str, str]] = {}
    for name, path in stack_files(stacks_dir).items():
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError:
            continue  # the plan reports the file as invalid
        found: dict[str, str] = {}
        for key, value in _walk(document.get("config") or {}, ""):
            found[key] = hashlib.sha256(value.encode()).hexdigest()
        digests[name] = found
    return digests


def _walk(node: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        if set(node) == {"secure"} and isinstance(node["secure"], str):
            yield path, node["secure"]
            return
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}[{index}]")


def plan_revision(
    tree: Path, stacks_dir: str, commit: str, recorded: Path | None = None
) -> RevisionPlan:
    """Plan a tree exported from `commit` with the tree's own program; with `recorded`, read
    that recorded plan of the commit instead (untrusted data: read_recorded_plan)."""
    with tempfile.TemporaryDirectory(prefix="fedeploy-diff-out-") as tmp:
        if recorded is None:
            out = Path(tmp)
            report, failure = run_plan_in_tree(tree, stacks_dir, out)
        else:
            out = recorded
            report, failure = read_recorded_plan(recorded)
        if report is None:
            return RevisionPlan(commit=commit, errors=[failure])
        try:
            plan = read_plan_out(commit, report, out)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, yaml.YAMLError) as err:
            return RevisionPlan(commit=commit, errors=[f"the plan in {out} cannot be read: {err}"])
    plan.secrets = secret_digests(tree / stacks_dir)
    return plan


# ---- the comparison -----------------------------------------------------------------------------


MISSING: Any = object()


def flatten(value: Any, path: str = "") -> dict[str, Any]:
    """Leaf values by path (`a.b[0].c`); an empty dict or list is a leaf of its own."""
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key in sorted(value):
            flat.update(flatten(value[key], f"{path}.{key}" if path else str(key)))
        return flat
    if isinstance(value, list) and value:
        flat = {}
        for index, item in enumerate(value):
            flat.update(flatten(item, f"{path}[{index}]"))
        return flat
    return {path: value}


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith((f"{prefix}.", f"{prefix}["))


def _is_secret(path: str, secret_paths: list[str]) -> bool:
    return any(_under(path, s) for s in secret_paths)


@dataclass(frozen=True)
class InputChange:
    """One changed input path; `old`/`new` are MISSING where the path is absent on that side."""

    path: str
    old: Any
    new: Any
    secret: bool = False

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": self.path, "secret": self.secret}
        if self.old is not MISSING:
            data["old"] = self.old
        if self.new is not MISSING:
            data["new"] = self.new
        return data


def input_changes(old: dict[str, Any], new: dict[str, Any]) -> list[InputChange]:
    """The changed input paths of one resource (both given as resources.json entries)."""
    before, after = flatten(old.get("inputs") or {}), flatten(new.get("inputs") or {})
    secrets_before = list(old.get("secret_inputs") or [])
    secrets_after = list(new.get("secret_inputs") or [])
    changes = []
    for path in sorted(set(before) | set(after)):
        secret = _is_secret(path, secrets_before) or _is_secret(path, secrets_after)
        a, b = before.get(path, MISSING), after.get(path, MISSING)
        if secret:
            # Both sides read [secret]: only a secret appearing or leaving is visible.
            a = SECRET if a is not MISSING else MISSING
            b = SECRET if b is not MISSING else MISSING
            changed = (a is MISSING) != (b is MISSING) or _is_secret(
                path, secrets_before
            ) != _is_secret(path, secrets_after)
        else:
            changed = a != b
        if changed:
            changes.append(InputChange(path, a, b, secret))
    return changes


def replacement_reasons(resource_type: str, changes: list[InputChange]) -> list[str]:
    """The changed paths that certainly replace a resource of this type (empty: not known)."""
    if resource_type.startswith("kubernetes:") and resource_type not in (
        "kubernetes:helm.sh/v3:Release",
    ):
        forcing: tuple[str, ...] = KUBERNETES_IDENTITY
    else:
        forcing = REPLACEMENTS.get(resource_type, ())
    return sorted(
        {
            change.path
            for change in changes
            for prop in forcing
            if prop == "*" or _under(change.path, prop)
        }
    )


def mask_secret_data(old: Any, new: Any) -> tuple[Any, Any]:
    """Copies of two versions of a Kubernetes object with a Secret's values masked; a value
    that differs between them reads `[secret, changed]` on the new side."""

    def masked(document: Any, other: Any) -> Any:
        if not isinstance(document, dict) or document.get("kind") != "Secret":
            return document
        copy = dict(document)
        for block in ("data", "stringData"):
            values = document.get(block)
            if isinstance(values, dict):
                others = (other or {}).get(block) or {} if isinstance(other, dict) else {}
                copy[block] = {
                    key: SECRET
                    if other is None or others.get(key, values[key]) == values[key]
                    else f"{SECRET[:-1]}, changed]"
                    for key in sorted(values)
                }
        return copy

    return masked(old, None), masked(new, old)


def _yaml(document: Any) -> str:
    return yaml.safe_dump(document, sort_keys=True, default_flow_style=False)


@dataclass
class ManifestChange:
    """One object of a release: added, removed or changed (with its unified diff)."""

    release: str
    key: str
    status: str  # added | removed | changed
    diff: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "object": self.key,
            "status": self.status,
            "diff": self.diff,
        }


def manifest_changes(
    old: dict[str, dict[str, dict[str, Any]]], new: dict[str, dict[str, dict[str, Any]]]
) -> list[ManifestChange]:
    """Object-by-object changes of every release's rendered manifests."""
    changes = []
    for release in sorted(set(old) | set(new)):
        before, after = old.get(release, {}), new.get(release, {})
        for key in sorted(set(before) | set(after)):
            if key not in before:
                changes.append(ManifestChange(release, key, "added"))
            elif key not in after:
                changes.append(ManifestChange(release, key, "removed"))
            elif before[key] != after[key]:
                a, b = mask_secret_data(before[key], after[key])
                text = "".join(
                    difflib.unified_diff(
                        _yaml(a).splitlines(keepends=True),
                        _yaml(b).splitlines(keepends=True),
                        fromfile=f"base/{release}/{key}",
                        tofile=f"head/{release}/{key}",
                    )
                )
                changes.append(ManifestChange(release, key, "changed", text))
    return changes


@dataclass
class ResourceChange:
    key: str
    type: str
    name: str
    status: str  # added | removed | changed
    inputs: list[InputChange] = field(default_factory=list)
    replaced_by: list[str] = field(default_factory=list)  # the paths that force replacement

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "key": self.key,
            "type": self.type,
            "name": self.name,
            "status": self.status,
        }
        if self.status == "changed":
            data["inputs"] = [c.to_dict() for c in self.inputs]
            data["replacement"] = bool(self.replaced_by) or None
            data["replacement_because"] = self.replaced_by
        return data


@dataclass
class OutputChange:
    output: str
    old: Any
    new: Any
    read_by: list[str]

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"output": self.output, "read_by": self.read_by}
        if self.old is not MISSING:
            data["old"] = self.old
        if self.new is not MISSING:
            data["new"] = self.new
        return data


@dataclass
class SiteDiff:
    """What the change does to one stack."""

    name: str
    status: str  # added | removed | changed | unchanged
    wave: int | None  # 1-based wave of the head's deployment order; None: only in the base
    resources: list[ResourceChange] = field(default_factory=list)
    manifests: list[ManifestChange] = field(default_factory=list)
    outputs: list[OutputChange] = field(default_factory=list)
    secrets: list[tuple[str, str]] = field(default_factory=list)  # (config path, added|...)

    def count(self, status: str) -> int:
        return sum(1 for r in self.resources if r.status == status)

    @property
    def summary(self) -> str:
        """`+3 ~2 -1 resources, 4 manifests changed` (outputs and secrets when any changed)."""
        text = (
            f"+{self.count('added')} ~{self.count('changed')} -{self.count('removed')} resources, "
            f"{len(self.manifests)} manifest{'s' if len(self.manifests) != 1 else ''} changed"
        )
        if self.outputs:
            text += f", {len(self.outputs)} output{'s' if len(self.outputs) != 1 else ''} changed"
        if self.secrets:
            text += f", {len(self.secrets)} secret{'s' if len(self.secrets) != 1 else ''} changed"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "wave": self.wave,
            "summary": self.summary,
            "resources": [r.to_dict() for r in self.resources],
            "manifests": [m.to_dict() for m in self.manifests],
            "outputs": [o.to_dict() for o in self.outputs],
            "secrets": [{"path": p, "status": s} for p, s in self.secrets],
        }


def resource_changes(
    old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]
) -> list[ResourceChange]:
    changes = []
    for key in sorted(set(old) | set(new)):
        resource = new.get(key) or old[key]
        typ, name = str(resource["type"]), str(resource["name"])
        if key not in old:
            changes.append(ResourceChange(key, typ, name, "added"))
        elif key not in new:
            changes.append(ResourceChange(key, typ, name, "removed"))
        else:
            inputs = input_changes(old[key], new[key])
            if inputs:
                changes.append(
                    ResourceChange(
                        key, typ, name, "changed", inputs, replacement_reasons(typ, inputs)
                    )
                )
    return changes


def output_changes(
    stack: str,
    old: dict[str, Any],
    new: dict[str, Any],
    readers: dict[tuple[str, str], list[str]],
) -> list[OutputChange]:
    changes = []
    for output in sorted(set(old) | set(new)):
        a, b = old.get(output, MISSING), new.get(output, MISSING)
        if a != b:
            changes.append(
                # A secret output is `[secret]` in the plan already (never its value).
                OutputChange(output, a, b, readers.get((stack, output), []))
            )
    return changes


def secret_changes(old: dict[str, str], new: dict[str, str]) -> list[tuple[str, str]]:
    changes = []
    for path in sorted(set(old) | set(new)):
        if path not in old:
            changes.append((path, "added"))
        elif path not in new:
            changes.append((path, "removed"))
        elif old[path] != new[path]:
            changes.append((path, "changed"))
    return changes


def diff_stack(name: str, wave: int | None, base: RevisionPlan, head: RevisionPlan) -> SiteDiff:
    """Compare one stack between two planned revisions."""
    empty = PlannedStack({}, {}, {})
    old, new = base.stacks.get(name), head.stacks.get(name)
    site = SiteDiff(name=name, status="unchanged", wave=wave)
    site.resources = resource_changes((old or empty).resources, (new or empty).resources)
    site.manifests = manifest_changes((old or empty).manifests, (new or empty).manifests)
    readers = head.readers if new is not None else base.readers
    site.outputs = output_changes(name, (old or empty).outputs, (new or empty).outputs, readers)
    site.secrets = secret_changes(base.secrets.get(name, {}), head.secrets.get(name, {}))
    if old is None:
        site.status = "added"
    elif new is None:
        site.status = "removed"
    elif site.resources or site.manifests or site.outputs or site.secrets:
        site.status = "changed"
    return site


@dataclass
class FederationDiff:
    """Every site's diff, in waves; what the two revisions were."""

    base: str
    head: str
    waves: list[list[str]]
    sites: dict[str, SiteDiff]
    removed: list[str] = field(default_factory=list)  # stacks only the base has
    errors: list[str] = field(default_factory=list)
    # What the diff leaves out: stack files the working tree holds differently from --head.
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(s.status != "unchanged" for s in self.sites.values())

    @property
    def exit_code(self) -> int:
        if self.errors:
            return EXIT_INVALID
        return EXIT_CHANGED if self.changed else EXIT_UNCHANGED

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "head": self.head,
            "waves": self.waves,
            "removed": self.removed,
            "errors": self.errors,
            "notes": self.notes,
            "sites": {name: self.sites[name].to_dict() for name in self.ordered()},
            "summary": {
                "sites_changed": sum(s.status != "unchanged" for s in self.sites.values()),
                "sites": len(self.sites),
                "exit_code": self.exit_code,
            },
        }

    def ordered(self) -> list[str]:
        """Sites in deployment order, then the removed ones."""
        return [s for wave in self.waves for s in wave if s in self.sites] + [
            s for s in self.removed if s in self.sites
        ]


def compare(
    base: RevisionPlan, head: RevisionPlan, only: list[str] | None = None
) -> FederationDiff:
    """The diff of two planned revisions, restricted to the stacks in `only` if given."""
    errors = [f"head {head.commit[:12]}: {e}" for e in head.errors]
    errors += [f"base {base.commit[:12]}: {e}" for e in base.errors]
    known = set(head.stacks) | set(base.stacks)
    wanted = set(only or known)
    if errors:
        return FederationDiff(base.commit, head.commit, [], {}, errors=errors)
    unknown = sorted(wanted - known)
    if unknown:
        return FederationDiff(
            base.commit,
            head.commit,
            [],
            {},
            errors=[
                f"no stack {name!r} at either revision (stacks: {', '.join(sorted(known))})"
                for name in unknown
            ],
        )
    waves = [[s for s in wave if s in wanted] for wave in head.order]
    waves = [wave for wave in waves if wave]
    removed = sorted(s for s in base.stacks if s not in head.stacks and s in wanted)
    sites = {}
    for number, wave in enumerate(waves, 1):
        for name in wave:
            sites[name] = diff_stack(name, number, base, head)
    for name in removed:
        sites[name] = diff_stack(name, None, base, head)
    return FederationDiff(base.commit, head.commit, waves, sites, removed)


# ---- from a repository ---------------------------------------------------------------------------


def tree_id(repo: Path, commit: str) -> str:
    """The id of a commit's tree: two commits with equal trees plan the same."""
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", f"{commit}^{{tree}}"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError) as err:
        raise DiffError(f"cannot read the tree of {commit[:12]} in {repo}: {err}") from None
    return done.stdout.strip()


def _export(repo: Path, commit: str, tmp: str, label: str) -> Path:
    tree = Path(tmp) / label
    tree.mkdir()
    return git_tree.export_tree(repo, commit, tree)


def diff_revisions(
    repo: Path,
    base: str,
    head: str = "HEAD",
    *,
    stacks_dir: str = "stacks",
    sites: list[str] | None = None,
    planner: Planner | None = None,
    head_recorded: Path | None = None,
) -> FederationDiff:
    """Plan `base` and `head` of `repo` (side by side, each by its own program) and compare.

    `planner(tree, stacks_dir, commit)` plans one exported tree (default: `plan_revision`);
    `head_recorded`: the head's recorded plan (read_recorded_plan), read instead of running it.
    `stacks_dir` is from the repository's top; raises FederationError when it is outside the
    repository or holds stack files at neither revision (no change on 0 sites would be wrong)."""
    default = planner or plan_revision

    def run(tree: Path, stacks: str, commit: str) -> RevisionPlan:
        if head_recorded is not None and commit == head_sha:
            return plan_revision(tree, stacks, commit, recorded=head_recorded)
        return default(tree, stacks, commit)

    stacks_dir = stacks_dir_in_repository(repo, stacks_dir)  # before any git call
    head_sha = git_tree.resolve(repo, head, "--head")
    base_sha = git_tree.resolve(repo, base, "--base")
    same = tree_id(repo, base_sha) == tree_id(repo, head_sha)
    with tempfile.TemporaryDirectory(prefix="fedeploy-diff-") as tmp:
        trees = [(f"--head {head} (commit {head_sha[:12]})", _export(repo, head_sha, tmp, "head"))]
        if not same:
            trees.append(
                (f"--base {base} (commit {base_sha[:12]})", _export(repo, base_sha, tmp, "base"))
            )
        # Refused when neither revision holds stack files there: a misspelt directory.
        has_stacks = stacks_in_revisions(stacks_dir, trees)

        def plan(commit: str, at: int) -> RevisionPlan:
            if not has_stacks[at]:
                return RevisionPlan(
                    commit=commit
                )  # no stacks (yet, or any more): all new, all gone
            return run(trees[at][1], stacks_dir, commit)

        if same:
            head_plan = plan(head_sha, 0)
            base_plan = RevisionPlan(
                commit=base_sha,
                stacks=head_plan.stacks,
                order=head_plan.order,
                readers=head_plan.readers,
                secrets=head_plan.secrets,
            )
        else:
            with ThreadPoolExecutor(max_workers=2) as pool:
                base_done = pool.submit(plan, base_sha, 1)
                head_plan = plan(head_sha, 0)
                base_plan = base_done.result()
    return compare(base_plan, head_plan, sites)
