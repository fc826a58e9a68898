"""Wall time of `fedeploy diff` for a one-chart change on the example federation, beside one
`fedeploy plan` of the same stacks. Target: the diff under 2.5x the plan.

The project (program, charts, the example stack files) is committed to a temporary git
repository; the head commit changes one value of the catalog chart. Both commands run as the
CLI does, in fresh processes; each figure is the median of three runs."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = (
    "Pulumi.yaml",
    "__main__.py",
    "fedeploy",
    "components",
    "policies",
    "charts",
    "templates",
)
TARGET_RATIO = 2.5
RUNS = 3


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.org", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def copy_project(path: Path, stacks: list[str] | None = None) -> Path:
    """The project's program, charts and stack files (all, or the named ones) copied to `path`."""
    path.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in PROGRAM:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, path / name, ignore=ignore)
        else:
            shutil.copy(source, path / name)
    (path / "stacks").mkdir()
    for stack in stacks or [p.name.split(".")[1] for p in (ROOT / "stacks").glob("Pulumi.*.yaml")]:
        shutil.copy(ROOT / "stacks" / f"Pulumi.{stack}.yaml", path / "stacks")
    return path


def make_repo(path: Path) -> Path:
    """The project at `base`, and `head` with the catalog chart's replicaCount raised."""
    copy_project(path)
    _git(path, "init", "-q", "-b", "main")
    _git(path, "add", "-A")
    _git(path, "commit", "-qm", "base")
    _git(path, "tag", "base")
    values = path / "charts/catalog/values.yaml"
    values.write_text(values.read_text().replace("replicaCount: 2", "replicaCount: 3", 1))
    _git(path, "commit", "-qam", "one chart value")
    return path


def timed(command: list[str], cwd: Path, ok: tuple[int, ...]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode not in ok:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    cli = [sys.executable, "-m", "fedeploy.cli"]
    with tempfile.TemporaryDirectory(prefix="fedeploy-bench-diff-") as tmp:
        repo = make_repo(Path(tmp) / "repo")
        plan = [timed([*cli, "plan", "--format", "json"], repo, (0, 1)) for _ in range(RUNS)]
        diff = [
            timed([*cli, "diff", "--base", "base", "--format", "json"], repo, (1,))
            for _ in range(RUNS)
        ]
    plan_s, diff_s = statistics.median(plan), statistics.median(diff)
    ratio = diff_s / plan_s
    print(f"{'case':<42} {'seconds':>8}  target")
    print(f"{'fedeploy plan (example federation)':<42} {plan_s:8.2f}  -")
    print(f"{'fedeploy diff (one catalog chart value)':<42} {diff_s:8.2f}  -")
    verdict = "ok" if ratio < TARGET_RATIO else "OVER"
    print(f"{'diff / plan':<42} {ratio:8.2f}  < {TARGET_RATIO} ({verdict})")


if __name__ == "__main__":
    main()
