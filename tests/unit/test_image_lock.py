"""images.lock.yaml: what the release pipeline records, and every image of every release pinned
from it by the program and the offline plan."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from fedeploy.charts import pod_template
from fedeploy.cli import app
from fedeploy.images import lock as image_lock
from fedeploy.images.lock import ImageLockError, chart_images, load_lock, pin_images, record

ROOT = Path(__file__).resolve().parents[2]
STACKS = ROOT / "stacks"
A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64


class Unresolved:
    """Stands for a Pulumi Output in values: neither a mapping nor a string. (A real Output made
    outside a Pulumi runtime leaves work on the event loop that hangs a later plan.)"""


def _digest(ref: str) -> str:
    """A distinct, well-formed digest per reference."""
    import hashlib

    return "sha256:" + hashlib.sha256(ref.encode()).hexdigest()


def _images(manifests) -> set[str]:
    found = set()
    for manifest in manifests:
        template = pod_template(manifest)
        if template is None:
            continue
        spec = template["spec"]
        for container in [*(spec.get("initContainers") or []), *spec["containers"]]:
            found.add(container["image"])
    return found


# ---- the lock file ------------------------------------------------------------------------------


def test_no_lock_file_pins_nothing(tmp_path) -> None:
    assert load_lock(tmp_path / "images.lock.yaml") == {}


def test_the_projects_lock_file_is_valid() -> None:
    for ref, digest in load_lock().items():
        assert image_lock.IMAGE_REF.match(ref) and image_lock.DIGEST.match(digest)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("version: 2\ndigests: {}\n", "version: found 2, allowed: 1"),
        ("version: 1\ndigest: {}\n", "unknown keys digest; allowed: version, digests"),
        ("- a\n", "expected a mapping with 'version' and 'digests', found a list"),
        ("version: 1\ndigests: [a]\n", "digests: expected a mapping"),
        (f"version: 1\ndigests:\n  'ghcr.io/X/y:1': {A}\n", "key 'ghcr.io/X/y:1' is not an image"),
        (f"version: 1\ndigests:\n  'ghcr.io/x': {A}\n", "key 'ghcr.io/x' is not an image"),
        ("version: 1\ndigests:\n  ghcr.io/x:1: sha256:abc\n", "digests.ghcr.io/x:1: found"),
        ("version: 1\ndigests:\n  ghcr.io/x:1: 12\n", "found 12, allowed: sha256:"),
        (
            f"version: 1\ndigests:\n  ghcr.io/x:1: {A}\n  ghcr.io/x:1: {B}\n",
            "duplicate key 'ghcr.io/x:1' at lines 3 and 4",
        ),
        ("version: 1\ndigests: {a: [\n", "not valid YAML"),
    ],
)
def test_a_broken_lock_is_refused_naming_file_and_key(tmp_path, text, says) -> None:
    lock = tmp_path / "images.lock.yaml"
    lock.write_text(text)
    with pytest.raises(ImageLockError) as caught:
        load_lock(lock)
    assert str(lock) in str(caught.value)
    assert says in str(caught.value)


def test_record_adds_sorted_and_is_idempotent(tmp_path) -> None:
    lock = tmp_path / "images.lock.yaml"
    assert record([f"ghcr.io/z/b:1@{B}", f"ghcr.io/z/a:1@{A}"], lock) == [
        "added ghcr.io/z/a:1",
        "added ghcr.io/z/b:1",
    ]
    first = lock.read_bytes()
    assert load_lock(lock) == {"ghcr.io/z/a:1": A, "ghcr.io/z/b:1": B}
    assert record([f"ghcr.io/z/a:1@{A}"], lock) == []
    assert lock.read_bytes() == first
    # Another order of the same digests gives the same bytes.
    other = tmp_path / "other.yaml"
    record([f"ghcr.io/z/a:1@{A}", f"ghcr.io/z/b:1@{B}"], other)
    assert other.read_bytes() == first


def test_a_moved_tag_is_refused_unless_replaced(tmp_path) -> None:
    lock = tmp_path / "images.lock.yaml"
    record([f"ghcr.io/z/a:1@{A}"], lock)
    before = lock.read_bytes()
    with pytest.raises(ImageLockError, match="recorded with sha256:a+, now sha256:b+"):
        record([f"ghcr.io/z/a:1@{B}", f"ghcr.io/z/c:1@{B}"], lock)
    assert lock.read_bytes() == before  # nothing written, not even the new image
    assert record([f"ghcr.io/z/a:1@{B}"], lock, replace=True) == [
        f"replaced ghcr.io/z/a:1: {A} -> {B}"
    ]
    assert load_lock(lock)["ghcr.io/z/a:1"] == B


@pytest.mark.parametrize(
    "bad",
    [
        "ghcr.io/z/a:1",  # no digest
        f"ghcr.io/z/a@{A}",  # no tag
        "ghcr.io/z/a:1@sha256:" + "A" * 64,
        f"ghcr.io/z/a:1@{A}; rm -rf /",
        f"ghcr.io/z/a:1@{A}\nversion: 2",  # a line of YAML smuggled in
        f"ghcr.io/z/a:1@{A}\n  ghcr.io/z/b:1: {B}",
        f"ghcr.io/z/a:1 @{A}",
        f"GHCR/z/a:1@{A}x",
    ],
)
def test_record_refuses_a_malformed_reference_before_writing(tmp_path, bad) -> None:
    lock = tmp_path / "images.lock.yaml"
    with pytest.raises(ImageLockError, match="not a pinned image reference"):
        record([f"ghcr.io/z/ok:1@{A}", bad], lock)
    assert not lock.exists()


def test_record_refuses_one_tag_with_two_digests(tmp_path) -> None:
    with pytest.raises(ImageLockError, match="given twice"):
        record([f"ghcr.io/z/a:1@{A}", f"ghcr.io/z/a:1@{B}"], tmp_path / "l.yaml")


# ---- pinning -----------------------------------------------------------------------------------


def test_pin_sets_only_missing_digests_and_keeps_outputs() -> None:
    bucket = Unresolved()
    values = {"storage": {"bucket": bucket}, "gpu": {"enabled": True}}
    lock = {
        "ghcr.io/fedeploy/inference:0.1.0": A,
        "ghcr.io/fedeploy/inference:0.1.0-cuda": B,
    }
    pinned = pin_images("inference", values, lock)
    assert pinned["image"]["digest"] == A
    assert pinned["gpu"]["image"]["digest"] == B
    assert pinned["gpu"]["enabled"] is True
    assert pinned["storage"]["bucket"] is bucket
    assert "image" not in values and "image" not in values["gpu"]  # the input is not changed
    # A digest the values set wins over the lock.
    given = pin_images("inference", {"image": {"digest": B}}, lock)
    assert given["image"]["digest"] == B
    # A tag the lock does not hold stays unpinned.
    assert "digest" not in pin_images("inference", {"image": {"tag": "9.9.9"}}, lock)["image"]


def test_a_block_behind_an_output_is_left_alone() -> None:
    hidden = Unresolved()
    pinned = pin_images("ingestion", {"image": hidden}, {"ghcr.io/fedeploy/ingestion:0.1.0": A})
    assert pinned["image"] is hidden
    tag = Unresolved()
    pinned = pin_images(
        "ingestion", {"image": {"tag": tag}}, {"ghcr.io/fedeploy/ingestion:0.1.0": A}
    )
    assert pinned["image"] == {"tag": tag}


def test_every_rendered_image_is_an_image_block_the_lock_can_pin(example_report) -> None:
    """The walk finds every image each release of the example federation runs (a chart image
    without a repository/tag block would run unpinned for ever)."""
    checked = 0
    for stack, (rendered, _findings) in example_report.federation.checked.items():
        for release in rendered:
            blocks = {use.ref for use in chart_images(release.chart.split("/")[-1], release.values)}
            assert _images(release.manifests) <= blocks, (stack, release.name)
            checked += 1
    assert checked >= 10


def test_a_lock_pins_every_image_of_the_federation_and_lifts_the_advisory(
    tmp_path, monkeypatch
) -> None:
    from fedeploy.plan.run import run_plan

    refs = {
        use.ref for chart in ("catalog", "ingestion", "inference") for use in chart_images(chart)
    }
    lock = tmp_path / "images.lock.yaml"
    record([f"{ref}@{_digest(ref)}" for ref in sorted(refs)], lock)
    monkeypatch.setattr(image_lock, "LOCK_FILE", lock)
    report = run_plan(STACKS, ["aws-dublin"], jobs=1)
    assert not report.errors, report.errors
    rendered, findings = report.federation.checked["aws-dublin"]
    images = set().union(*(_images(release.manifests) for release in rendered))
    assert images and all("@sha256:" in image for image in images), images
    for image in images:
        ref, digest = image.split("@")
        assert digest == _digest(ref)
    assert not [f for f in findings if f.rule == "image-digest"]


def test_without_a_lock_a_production_site_gets_the_advisory(tmp_path, monkeypatch) -> None:
    from fedeploy.plan.run import run_plan

    monkeypatch.setattr(image_lock, "LOCK_FILE", tmp_path / "none.yaml")
    report = run_plan(STACKS, ["aws-dublin"], jobs=1)
    _rendered, findings = report.federation.checked["aws-dublin"]
    advice = [f for f in findings if f.rule == "image-digest"]
    assert advice and "images.lock.yaml" in advice[0].message


def test_a_broken_lock_stops_the_plan_with_one_error(tmp_path, monkeypatch) -> None:
    from fedeploy.plan.run import run_plan

    lock = tmp_path / "images.lock.yaml"
    lock.write_text("version: 1\ndigests:\n  ghcr.io/x:1: latest\n")
    monkeypatch.setattr(image_lock, "LOCK_FILE", lock)
    report = run_plan(STACKS, jobs=1)
    assert len(report.errors) == 1
    assert str(lock) in str(report.errors[0]) and "digests.ghcr.io/x:1" in str(report.errors[0])
    assert not report.federation.plans  # nothing planned


# ---- the command -------------------------------------------------------------------------------


def test_images_command_lists_and_records(tmp_path) -> None:
    runner = CliRunner()
    lock = tmp_path / "images.lock.yaml"
    listed = runner.invoke(app, ["images", "list", "--lock", str(lock)])
    assert listed.exit_code == 0, listed.output
    refs = listed.output.split()
    assert "ghcr.io/fedeploy/ingestion:0.1.0" in refs
    assert "ghcr.io/fedeploy/inference:0.1.0-cuda" in refs
    assert refs == sorted(set(refs))
    done = runner.invoke(
        app, ["images", "record", f"ghcr.io/fedeploy/ingestion:0.1.0@{A}", "--lock", str(lock)]
    )
    assert done.exit_code == 0 and "added ghcr.io/fedeploy/ingestion:0.1.0" in done.output
    unpinned = runner.invoke(app, ["images", "list", "--unpinned", "--lock", str(lock)])
    assert "ghcr.io/fedeploy/ingestion:0.1.0" not in unpinned.output.split()
    assert len(unpinned.output.split()) == len(refs) - 1
    rows = json.loads(runner.invoke(app, ["images", "list", "--json", "--lock", str(lock)]).output)
    pinned = next(r for r in rows if r["image"] == "ghcr.io/fedeploy/ingestion:0.1.0")
    assert pinned["digest"] == A
    assert "charts/catalog values federation.harvester" in pinned["used_by"]


def test_images_list_spells_json_as_every_command_does(tmp_path) -> None:
    """`--format json` (`-f json`), as plan, diff, affected and verify spell it; `--json` stays."""
    lock = tmp_path / "images.lock.yaml"
    runner = CliRunner()
    forms = [
        runner.invoke(app, ["images", "list", *option, "--lock", str(lock)])
        for option in (["--format", "json"], ["-f", "json"], ["--json"])
    ]
    assert all(f.exit_code == 0 for f in forms), [f.output for f in forms]
    assert forms[0].output == forms[1].output == forms[2].output
    assert json.loads(forms[0].output)[0]["image"]


def test_a_changed_lock_affects_every_site_and_says_why() -> None:
    from fedeploy.gitops.path_rules import classify

    touch = classify("images.lock.yaml", "M", frozenset())
    assert touch.scope == "every" and "image digests" in touch.why


# ---- hostile locks and lock paths (review of the lock's seams) ---------------------------------


def _bomb(levels: int = 9) -> str:
    """A billion-laughs lock: a few hundred bytes whose aliases stand for 9**levels strings."""
    lines = ["version: 1", "digests:", '  ghcr.io/x/a:0: &b0 ["lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        lines.append(
            f"  ghcr.io/x/a:{level}: &b{level} [" + ", ".join([f"*b{level - 1}"] * 9) + "]"
        )
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        # Hung `fedeploy plan` (repr of the expanded value in the error) before aliases were refused.
        (_bomb(), "line 3: YAML anchors and aliases"),
        (f"version: 1\ndigests:\n  ghcr.io/x/y:1: &d {A}\n  ghcr.io/x/z:1: *d\n", "aliases"),
        # A merge key hides a second digest for a tag from the duplicate-key check.
        (
            f"version: 1\ndigests:\n  <<: {{ghcr.io/x/y:1: {A}}}\n  ghcr.io/x/y:1: {B}\n",
            "merge keys",
        ),
        ("version: 1\ndigests: !!python/object/apply:os.system [id]\n", "YAML tags"),
        (f"version: 1\ndigests:\n  ghcr.io/x/y:1: !!binary {A}\n", "YAML tags"),
        # "$" matched before a final newline: these passed and reached the charts' values.
        (f'version: 1\ndigests:\n  ghcr.io/x/y:1: "{A}\\n"\n', "digests.ghcr.io/x/y:1: found"),
        (f'version: 1\ndigests:\n  "ghcr.io/x/y:1\\n": {A}\n', "is not an image reference"),
        # True == 1 and 1.0 == 1 in Python.
        ("version: true\ndigests: {}\n", "version: found True, allowed: 1"),
        ("version: 1.0\ndigests: {}\n", "version: found 1.0, allowed: 1"),
        ("version: 1\ndigests: {}\n" + "#" * (image_lock.MAX_LOCK_BYTES + 1), "allowed: at most"),
        (b"version: 1\ndigests: {\xff}\n", "not UTF-8"),
    ],
)
def test_a_hostile_lock_is_refused_quickly_and_briefly(tmp_path, text, says) -> None:
    lock = tmp_path / "images.lock.yaml"
    if isinstance(text, bytes):
        lock.write_bytes(text)
    else:
        lock.write_text(text)
    with pytest.raises(ImageLockError) as caught:
        load_lock(lock)
    assert str(lock) in str(caught.value) and says in str(caught.value)
    assert len(str(caught.value)) < 600


def test_a_lock_that_is_not_a_regular_file_is_refused_and_never_written(tmp_path) -> None:
    target = tmp_path / "elsewhere.yaml"
    target.write_text("version: 1\n")
    link = tmp_path / "images.lock.yaml"
    link.symlink_to(target)
    for path, says in [
        (link, r"a symbolic link \(to "),
        (tmp_path, "not a regular file"),
        (Path("/dev/null"), "not a regular file"),  # record replaced /dev/null with a file
    ]:
        with pytest.raises(ImageLockError, match=says):
            load_lock(path)
        with pytest.raises(ImageLockError, match=says):
            record([f"ghcr.io/x/y:1@{A}"], path)
    assert link.is_symlink() and target.read_text() == "version: 1\n"
    assert Path("/dev/null").is_char_device()
    with pytest.raises(ImageLockError, match="cannot be written: no directory"):
        record([f"ghcr.io/x/y:1@{A}"], tmp_path / "missing" / "images.lock.yaml")


def test_record_never_writes_through_a_planted_temporary_file(tmp_path) -> None:
    """The lock was written to `.images.lock.yaml.tmp` beside it, following a symbolic link
    planted there (by a commit, say) into whatever file it named."""
    precious = tmp_path / "precious"
    precious.write_text("keep me")
    lock = tmp_path / "images.lock.yaml"
    (tmp_path / ".images.lock.yaml.tmp").symlink_to(precious)
    assert record([f"ghcr.io/x/y:1@{A}"], lock) == ["added ghcr.io/x/y:1"]
    assert precious.read_text() == "keep me"
    assert not lock.is_symlink() and load_lock(lock) == {"ghcr.io/x/y:1": A}
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".images.lock.yaml.tmp",
        "images.lock.yaml",
        "precious",
    ]


def test_a_changed_lock_is_read_again(tmp_path) -> None:
    """The lock was cached by path: a record after another process changed the file wrote
    back the old entries."""
    lock = tmp_path / "images.lock.yaml"
    record([f"ghcr.io/x/old:1@{A}"], lock)
    assert load_lock(lock) == {"ghcr.io/x/old:1": A}
    lock.unlink()
    assert load_lock(lock) == {}
    record([f"ghcr.io/x/new:1@{B}"], lock)
    assert load_lock(lock) == {"ghcr.io/x/new:1": B}
    lock.write_text(f"version: 1\ndigests:\n  ghcr.io/x/other:1: {A}\n")
    assert load_lock(lock) == {"ghcr.io/x/other:1": A}


@pytest.mark.parametrize("ref", ["123:45", "0:0", "n:no", "a:1e3", "a:2001-01-01", "h:5000/a:1"])
def test_references_yaml_would_read_as_numbers_or_dates_round_trip(tmp_path, ref) -> None:
    lock = tmp_path / "images.lock.yaml"
    record([f"{ref}@{A}"], lock)
    assert load_lock(lock) == {ref: A}


# ---- the pipelines' recording steps, run with a stand-in registry ------------------------------

GITOPS = ROOT / "examples" / "gitops"
FAKE_DOCKER = r'''#!/usr/bin/env python3
"""docker, as far as the release jobs use it: every image is a multi-platform index with an
amd64 manifest and an attestation manifest (what buildx pushes with --sbom/--provenance)."""
import hashlib, json, os, sys
from pathlib import Path

state = Path(os.environ["FAKE_REGISTRY"])
def digest(*parts):
    return "sha256:" + hashlib.sha256("|".join(parts).encode()).hexdigest()
args = sys.argv[1:]
if args[:3] == ["buildx", "imagetools", "create"]:
    (state / digest(args[args.index("--tag") + 1])).touch()
elif args[:3] == ["buildx", "imagetools", "inspect"]:
    ref = args[3]
    if "--format" not in args:  # the "exists already?" probe
        sys.exit(0 if (state / digest(ref)).exists() else 1)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": digest(ref, "index"),
        "size": 856,
        "manifests": [
            {"digest": digest(ref, "amd64"), "platform": {"architecture": "amd64", "os": "linux"}},
            {"digest": digest(ref, "attestation"), "platform": {"architecture": "unknown", "os": "unknown"}},
        ],
    }
    fmt = args[args.index("--format") + 1]
    if fmt == "{{json .Manifest}}":
        print(json.dumps(index, separators=(",", ":")))
    elif fmt == "{{json .Manifest.Digest}}":
        print(json.dumps(index["digest"]))
    else:
        sys.exit(f"fake docker: unknown format {fmt}")
'''


def _index_digest(ref: str) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(f"{ref}|index".encode()).hexdigest()


@pytest.fixture
def release_workspace(tmp_path, monkeypatch) -> tuple[Path, dict[str, str]]:
    """A checkout of the project (charts, Pulumi.yaml), a stand-in docker and fedeploy on PATH."""
    import shutil

    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(ROOT / "charts", work / "charts")
    shutil.copy(ROOT / "Pulumi.yaml", work / "Pulumi.yaml")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    registry = tmp_path / "registry"
    registry.mkdir()
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "FAKE_REGISTRY": str(registry),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }
    return work, env


def _sh(shell: list[str], script: str, cwd: Path, env: dict[str, str]):
    import subprocess

    return subprocess.run([*shell, script], cwd=cwd, env=env, capture_output=True, text=True)


def _gitlab_job(name: str) -> dict:
    return yaml.safe_load((GITOPS / "gitlab" / ".gitlab-ci.yml").read_text())[name]


def _gitlab_record_script() -> str:
    """release:digests' recording (not its installation or git steps)."""
    script = _gitlab_job("release:digests")["script"]
    return "\n".join(s for s in script if "fedeploy images" in s and "git " not in s)


def _assert_records_every_index_digest(
    shell: list[str], script: str, work: Path, env: dict[str, str]
) -> None:
    """The recording script passes and leaves every image the charts run in the lock, each at
    the digest of its index."""
    done = _sh(shell, script, work, env)
    assert done.returncode == 0, done.stdout + done.stderr
    lock = load_lock(work / "images.lock.yaml")
    charts = ("catalog", "ingestion", "inference")
    assert set(lock) == {use.ref for chart in charts for use in chart_images(chart)}
    assert all(digest == _index_digest(ref) for ref, digest in lock.items())


def _github_record_step() -> str:
    release = yaml.safe_load((GITOPS / "github" / "workflows" / "release.yml").read_text())
    steps = release["jobs"]["digests"]["steps"]
    return next(
        s["run"] for s in steps if s.get("name") == "Record every digest in images.lock.yaml"
    )


def test_gitlab_records_each_images_index_digest_not_a_platform_or_attestation_manifest(
    release_workspace,
) -> None:
    """The pipeline took the last "digest" of `{{json .Manifest}}`'s one line: the attestation
    manifest of a pushed image, the last platform of a third-party one. A pod pinned to it does
    not run."""
    work, env = release_workspace
    for entry in _gitlab_job("release:images")["parallel"]["matrix"]:
        script = "\n".join(_gitlab_job("release:images")["script"][1:])  # after docker login
        job_env = {**env, **entry, "REGISTRY": "ghcr.io/fedeploy", "CI_PIPELINE_ID": "7"}
        done = _sh(["sh", "-e", "-c"], script, work, job_env)
        assert done.returncode == 0, done.stdout + done.stderr
    pushed = sorted((work / "digests").iterdir())
    assert [p.name for p in pushed] == [
        "inference-cuda.txt",
        "inference.txt",
        "ingestion.txt",
        "restore-drill-pg17.txt",
    ]
    for path in pushed:
        ref, digest = path.read_text().strip().split("@")
        assert digest == _index_digest(ref), path.name
    _assert_records_every_index_digest(["sh", "-e", "-c"], _gitlab_record_script(), work, env)


def test_github_records_each_images_index_digest(release_workspace) -> None:
    work, env = release_workspace
    (work / "digests").mkdir()
    for name, ref in [
        ("ingestion", "ghcr.io/fedeploy/ingestion:0.1.0"),
        ("inference", "ghcr.io/fedeploy/inference:0.1.0"),
        ("inference-cuda", "ghcr.io/fedeploy/inference:0.1.0-cuda"),
    ]:
        (work / "digests" / f"{name}.txt").write_text(f"{ref}@{_index_digest(ref)}\n")
    # bash -e: GitHub's shell for a step that names none.
    _assert_records_every_index_digest(["bash", "-e", "-c"], _github_record_step(), work, env)
    assert "ghcr.io/stac-utils/pgstac:v0.10.0@" in Path(env["GITHUB_STEP_SUMMARY"]).read_text()


@pytest.mark.parametrize("pipeline", ["github", "gitlab"])
def test_a_failing_images_list_fails_the_recording(release_workspace, pipeline) -> None:
    """`for ref in $(fedeploy images list)` and `test -z "$(fedeploy images list --unpinned)"`
    ignored the command's failure: the job passed with nothing resolved and nothing checked."""
    work, env = release_workspace
    (work / "digests").mkdir()
    ref = "ghcr.io/fedeploy/ingestion:0.1.0"
    (work / "digests" / "ingestion.txt").write_text(f"{ref}@{_index_digest(ref)}\n")
    # fedeploy whose `images list` fails (charts it cannot read, say); `record` still works.
    wrapper = Path(env["PATH"].split(os.pathsep)[0]) / "fedeploy"
    wrapper.write_text(
        "#!/bin/sh\n"
        'if [ "$1 $2" = "images list" ]; then echo "charts/catalog: unreadable" >&2; exit 2; fi\n'
        f'exec {Path(sys.executable).parent / "fedeploy"} "$@"\n'
    )
    wrapper.chmod(0o755)
    if pipeline == "github":
        done = _sh(["bash", "-e", "-c"], _github_record_step(), work, env)
    else:
        done = _sh(["sh", "-e", "-c"], _gitlab_record_script(), work, env)
    assert done.returncode != 0, done.stdout + done.stderr


# ---- the project directory ---------------------------------------------------------------------


def _fake_project(path: Path, charts: tuple[str, ...] = ("catalog", "ingestion", "inference")):
    path.mkdir(parents=True, exist_ok=True)
    (path / "Pulumi.yaml").write_text("name: other\nruntime: python\n")
    (path / "charts").mkdir(exist_ok=True)
    for chart in charts:
        (path / "charts" / chart).mkdir()
        (path / "charts" / chart / "Chart.yaml").write_text(f"name: {chart}\nversion: 6.6.6\n")
    return path


def test_the_project_is_the_directory_holding_our_charts(tmp_path, monkeypatch) -> None:
    """A Pulumi project with a charts/ folder of its own (many have one) was taken for ours: its
    missing charts failed as an internal error (FileNotFoundError)."""
    from fedeploy import project

    monkeypatch.delenv("FEDEPLOY_PROJECT_DIR", raising=False)
    other = _fake_project(tmp_path / "other", charts=("nginx",))
    monkeypatch.chdir(other)
    assert project.project_dir() == ROOT
    ours = _fake_project(tmp_path / "ours")
    monkeypatch.chdir(ours)
    assert project.project_dir() == ours
    # Directories above are never searched (one planted in a shared parent would choose).
    (ours / "sub").mkdir()
    monkeypatch.chdir(ours / "sub")
    assert project.project_dir() == ROOT
    # A relative FEDEPLOY_PROJECT_DIR is relative to the current directory; empty is unset.
    monkeypatch.setenv("FEDEPLOY_PROJECT_DIR", "..")
    assert project.project_dir() == ours
    monkeypatch.setenv("FEDEPLOY_PROJECT_DIR", "")
    assert project.project_dir() == ROOT


def test_a_project_dir_without_our_charts_is_one_clear_error(tmp_path, monkeypatch) -> None:
    """FEDEPLOY_PROJECT_DIR naming no project failed as an internal error (FileNotFoundError)
    in `fedeploy images list`, and as "the program failed" in the plan."""
    from fedeploy.plan.run import run_plan
    from fedeploy.values import services as service_values

    nowhere = tmp_path / "nowhere"
    monkeypatch.setenv("FEDEPLOY_PROJECT_DIR", str(nowhere))
    monkeypatch.setattr(service_values, "CHARTS_DIR", nowhere / "charts")
    image_lock._chart_defaults.cache_clear()
    monkeypatch.setattr(image_lock, "LOCK_FILE", nowhere / "images.lock.yaml")
    for call in (lambda: chart_images("catalog"), load_lock):
        with pytest.raises(ImageLockError) as caught:
            call()
        said = str(caught.value)
        assert f"{nowhere}: not a fedeploy project directory" in said
        assert f"FEDEPLOY_PROJECT_DIR={nowhere}" in said and "no Pulumi.yaml, charts/" in said
    report = run_plan(STACKS, ["aws-dublin"], jobs=1)
    assert len(report.errors) == 1 and "not a fedeploy project directory" in str(report.errors[0])
    # record wrote the lock beside the installed package (site-packages/images.lock.yaml).
    with pytest.raises(ImageLockError, match="not a fedeploy project directory"):
        record([f"ghcr.io/x/y:1@{A}"])
    assert not nowhere.exists()
