"""Planned stacks kept on disk, so a plan replans only the stacks whose inputs changed.

A stack's plan (and its checks) is a function of its stack file, the outputs of the stacks it
reads, and the code that plans and checks it: this repository's program, charts, templates,
policies and image lock, and the installed packages (Pulumi's SDKs, Helm, the schemas). The
key hashes all of them, so a changed input is a different key and never an old answer. Program
errors are never kept (they are planned again); policy and chart findings are. A plan is kept
only if none of the code it hashed changed while it ran (see code_changed). Each Helm release's
checks are kept here too (fedeploy.plan.checks.release_checks_kept_in).

The cache lives in $FEDEPLOY_PLAN_CACHE (`off` turns it off), else
$XDG_CACHE_HOME/fedeploy/plan (~/.cache/fedeploy/plan). Entries are pickles, written whole or
not at all (a temporary file renamed), so plans running side by side share it safely."""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import importlib.util
import json
import os
import pickle
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fedeploy.project import project_dir

CACHE_ENV = "FEDEPLOY_PLAN_CACHE"
ROOT = Path(__file__).resolve().parents[2]
# What the program and the plan's checks read besides the stack file (paths under ROOT).
CODE_DIRS = ("fedeploy", "components", "policies", "charts", "templates")
CODE_FILES = ("images.lock.yaml", "Pulumi.yaml", "__main__.py", "pyproject.toml")
# The running code's own packages, hashed where they are installed (see fingerprint_files).
RUNTIME_PACKAGES = ("fedeploy", "components", "policies")
_SKIPPED = ("__pycache__",)
# Editor and VCS litter that no plan reads: vim's swap files and write probe, emacs' backups and
# lock links (dotfiles are skipped too: .git, .#x, .x.swp; not a chart's .helmignore, which
# decides what Helm renders).
_LITTER_SUFFIXES = ("~", ".swp", ".swx", ".pyc")
_LITTER_NAMES = ("4913",)
Snapshot = dict[str, tuple[int, int, int, int]]  # path: (mtime_ns, size, inode, mode)
# The stat snapshot of the files and folders each fingerprint was computed from (by root).
_SNAPSHOTS: dict[Path, tuple[dict[str, Path], Snapshot]] = {}
FORMAT = 1  # bump when what an entry holds changes shape
LIMIT_BYTES = 512 * 1024 * 1024  # beyond this, the entries least recently used are removed


def fingerprint_files(root: Path = ROOT) -> dict[str, Path]:
    """The files a plan's answer depends on, by the name they are hashed under: the project's
    (CODE_DIRS, CODE_FILES under `root`, the project directory: its charts, templates, program)
    and the running fedeploy's own packages wherever they are installed (`pkg:` names), since
    a wheel-installed fedeploy plans a project that is not its own source tree."""

    return {
        name: path for name, path in _walk(root).items() if not name.startswith(("dir:", "dist:"))
    }


def _litter(name: str) -> bool:
    """Whether a file or folder name is editor or VCS litter, never read by a plan."""
    return (
        (name.startswith(".") and name != ".helmignore")
        or name.endswith(_LITTER_SUFFIXES)
        or name in _LITTER_NAMES
        or name in _SKIPPED
    )


def _helmignored(chart: Path) -> Callable[[Path], bool]:
    """What `chart`'s .helmignore leaves out of the chart, as a test of a path under it (Helm's
    patterns: a name or relative path glob, a trailing / for folders, a leading / anchors; a
    path a `!` line names is never skipped); nothing where there is no .helmignore."""
    try:
        lines = (chart / ".helmignore").read_text().splitlines()
    except OSError:
        return lambda path: False
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]

    def matches(pattern: str, relative: str) -> bool:
        pattern = pattern.rstrip("/")
        parts = relative.split("/")
        if pattern.startswith("/") or "/" in pattern:
            pattern = pattern.lstrip("/")
            return any(
                fnmatch.fnmatchcase("/".join(parts[:i]), pattern) for i in range(1, 1 + len(parts))
            )
        return any(fnmatch.fnmatchcase(part, pattern) for part in parts)

    def skipped(path: Path) -> bool:
        relative = path.relative_to(chart).as_posix()
        if any(matches(p[1:], relative) for p in patterns if p.startswith("!")):
            return False
        return any(matches(p, relative) for p in patterns if not p.startswith("!"))

    return skipped


def _chart_litter(name: str, in_templates: bool) -> bool:
    """Whether Helm leaves a file or folder of a chart out: editor litter and VCS folders, and
    under templates/ every dotfile (Helm's default `templates/.?*`). Other dotfiles are part of
    the chart (`.Files.Get ".x"` reads them)."""
    if name.endswith(_LITTER_SUFFIXES) or name in _LITTER_NAMES or name in _SKIPPED:
        return True
    return name.startswith((".#", ".git")) or (in_templates and name.startswith("."))


def _tree(folder: Path, charts: bool = False) -> tuple[list[Path], list[Path]]:
    """The files under `folder` a plan may read and the folders walked to find them (a file
    added to one changes its mtime); under charts/ (`charts`), what Helm loads: each chart's
    .helmignore applies, its dotfiles count, and symlinked folders are followed (once each)."""
    files: list[Path] = []
    folders: list[Path] = []
    ignored: dict[Path, Callable[[Path], bool]] = {}
    seen: set[Path] = set()
    for top, dirs, names in os.walk(folder, followlinks=charts):
        here = Path(top)
        real = here.resolve()
        if real in seen:  # a link back up the tree: walked once
            dirs[:] = []
            continue
        seen.add(real)
        folders.append(here)
        in_templates = charts and "templates" in here.relative_to(folder).parts
        litter = functools.partial(_chart_litter, in_templates=in_templates) if charts else _litter
        dirs[:] = sorted(d for d in dirs if not litter(d))
        skip = next((test for chart, test in ignored.items() if here.is_relative_to(chart)), None)
        if charts and here.parent == folder:
            skip = ignored[here] = _helmignored(here)
        for name in names:
            path = here / name
            if litter(name) or (skip is not None and skip(path)):
                continue
            files.append(path)
    return files, folders


def _walk(root: Path) -> dict[str, Path]:
    """fingerprint_files' files, the folders listed to find them (`dir:` names) and the
    installed distributions' metadata folders (`dist:` names)."""
    found = {name: root / name for name in CODE_FILES if (root / name).is_file()}
    homes = [(folder, root / folder, root) for folder in CODE_DIRS]
    for package in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.origin is not None:
            home = Path(spec.origin).parent
            homes.append((f"pkg:{package}", home, home))
    for label, folder, base in homes:
        files, folders = _tree(folder, charts=label == "charts")
        prefix = "" if base is root else f"{label}/"
        found.update((f"{prefix}{p.relative_to(base).as_posix()}", p) for p in files)
        found.update((f"dir:{p}", p) for p in folders)
    for folder, names in _site_entries().items():
        found[f"dir:{folder}"] = folder
        found.update((f"dist:{folder}/{name}", folder / name) for name in names)
    return found


def _stat_snapshot(paths: Mapping[str, Path]) -> Snapshot:
    """(mtime_ns, size, inode, mode) of each of `paths`, by name; a path gone is left out."""
    found: Snapshot = {}
    for name, path in paths.items():
        try:
            st = os.stat(path)
        except OSError:
            continue
        found[name] = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_mode)
    return found


def code_snapshot(root: Path = ROOT) -> Snapshot:
    """The stat snapshot of the code a plan reads now (fingerprint_files' files, the folders
    listed to find them, and the installed packages' folders): it differs from an earlier one
    when any of them was edited, added, removed, or a package was installed."""
    return _stat_snapshot(_walk(root))


def code_changed(root: Path = ROOT) -> bool:
    """Whether any file `code_fingerprint(root)` hashed (or an installed distribution) changed,
    came or went since it was computed; False before it is. Its files are stat'ed, nothing read;
    only when a folder changed is the tree listed again (editor litter coming and going in a
    folder is no change: that folder's new stat is remembered)."""
    taken = _SNAPSHOTS.get(root)
    if taken is None:
        return False
    paths, before = taken
    now = _stat_snapshot(paths)
    if now == before:
        return False
    if _hashed(now) != _hashed(before):
        return True
    walked = _walk(root)
    fresh = _stat_snapshot(walked)
    if _hashed(fresh) != _hashed(before):
        return True
    _SNAPSHOTS[root] = (walked, fresh)
    return False


def _hashed(snapshot: Snapshot) -> Snapshot:
    """The entries of a snapshot that are files or distributions, not the folders listed."""
    return {name: value for name, value in snapshot.items() if not name.startswith("dir:")}


@functools.lru_cache(maxsize=4)
def code_fingerprint(root: Path = ROOT) -> str:
    """A hash of every file `fingerprint_files(root)` names (names and contents), of the
    installed distributions (names and versions) and of the interpreter's version: it changes
    whenever fedeploy, the project's charts or program, or the dependencies do. What it was
    computed from is stat'ed first (see code_changed)."""
    walked = _walk(root)
    _SNAPSHOTS[root] = (walked, _stat_snapshot(walked))
    digest = hashlib.sha256(f"format {FORMAT}\n{sys.version}\n".encode())
    for name, path in sorted(walked.items()):
        if name.startswith(("dir:", "dist:")):
            continue
        digest.update(f"{name}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    digest.update("\n".join(_distributions()).encode())
    digest.update(_helm_library().encode())
    return digest.hexdigest()


def _helm_library() -> str:
    """The Helm library HELM_C_LIB chooses instead of the installed one (it renders and lints
    every chart): its path, size and modification time; empty when unset."""
    chosen = os.environ.get("HELM_C_LIB", "")
    if not chosen:
        return ""
    try:
        st = os.stat(chosen)
    except OSError:
        return f"HELM_C_LIB={chosen} (missing)"
    return f"HELM_C_LIB={chosen} {st.st_size} {st.st_mtime_ns}"


def _site_entries() -> dict[Path, list[str]]:
    """The sys.path folders that hold installed distributions, with the metadata folders each
    holds (name-version.dist-info or .egg-info; listed, not parsed). sys.path[0], the running
    script's folder (or the working directory for -m and -c), is not an installation: a script
    run from /tmp and `fedeploy` key the same plan alike."""
    found: dict[Path, list[str]] = {}
    for entry in sys.path[1:]:
        try:
            folder = Path(entry or ".").resolve()
            names = os.listdir(folder)
        except OSError:
            continue
        metadata = [name for name in names if name.endswith((".dist-info", ".egg-info"))]
        if metadata and folder not in found:
            found[folder] = metadata
    return found


def _distributions() -> list[str]:
    """The installed distributions, as `folder/name-version.dist-info` (see _site_entries)."""
    return sorted(f"{folder}/{name}" for folder, names in _site_entries().items() for name in names)


class PlanCache:
    """Planned stacks by key, in `directory`; `get` misses (None) on any unreadable entry."""

    def __init__(self, directory: Path, root: Path = ROOT, limit: int = LIMIT_BYTES) -> None:
        # The fingerprint is taken once per process: a cache opened after the code changed
        # (a long-lived caller planning again after a chart was edited) takes it again.
        if code_changed(root):
            code_fingerprint.cache_clear()
        self.directory = directory
        self.root = root
        self.limit = limit
        self.written = 0
        self.refused = 0  # puts refused: the code changed since the key (see put)
        self.hits = 0
        self.misses = 0  # keys looked up and not found, each counted once
        self._missed: set[str] = set()

    def key(
        self,
        stack_file: Path,
        references: Mapping[str, Mapping[str, Any]],
        check: Callable[..., Any] | None,
    ) -> str:
        """The key of one stack's plan: its stack file (path and content), the outputs of the
        stacks it reads, the check run after it, and the code's fingerprint."""
        check_name = "" if check is None else f"{check.__module__}.{check.__qualname__}"
        document = json.dumps(
            {
                "code": code_fingerprint(self.root),
                "stack_file": str(stack_file.resolve()),
                "content": hashlib.sha256(stack_file.read_bytes()).hexdigest(),
                "references": references,
                "check": check_name,
            },
            sort_keys=True,
            default=repr,
        )
        return hashlib.sha256(document.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.pickle"

    def get(self, key: str) -> Any | None:
        """The result kept under `key`, or None (never kept, or unreadable)."""
        if key in self._missed:
            return None
        path = self._path(key)
        try:
            with open(path, "rb") as handle:
                value = pickle.load(handle)
            os.utime(path)  # used now: the last to go when the cache is pruned
        except Exception:  # a missing, truncated or stale entry is a miss, never an error
            self.misses += 1
            self._missed.add(key)
            return None
        self.hits += 1
        return value

    def put(self, key: str, value: Any) -> None:
        """Keep `value` under `key`; where the cache cannot be written, it is not kept. Nor is
        it once the code hashed into the key changed on disk (a chart saved or a `git checkout`
        during the plan): the plan may have read the new code (said once on stderr)."""
        if code_changed(self.root):
            if not self.refused:
                sys.stderr.write(
                    "fedeploy: the project's code changed during the plan: "
                    "its results are not kept in the plan cache\n"
                )
            self.refused += 1
            return
        path = self._path(key)
        try:
            data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as handle:
                handle.write(data)
            os.replace(handle.name, path)
            self._missed.discard(key)
            self.written += 1
        except OSError:
            return
        except pickle.PicklingError:
            return

    def prune(self) -> None:
        """Remove the entries least recently used until the cache holds at most `limit` bytes
        (a plan of temporary copies, as `fedeploy diff` makes, leaves entries never read)."""
        entries = []
        for path in self.directory.glob("*/*.pickle"):
            try:
                stat = path.stat()
            except OSError:
                continue
            entries.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.limit:
                return
            path.unlink(missing_ok=True)
            total -= size


def default_cache() -> PlanCache | None:
    """The cache of $FEDEPLOY_PLAN_CACHE (None for `off`), else the user's cache directory."""
    configured = os.environ.get(CACHE_ENV, "")
    if configured.lower() == "off":
        return None
    # The project planned (its charts, templates and program) may not be the running code's
    # source tree (a wheel-installed fedeploy): its files are hashed as well as fedeploy's own.
    root = project_dir()
    if configured:
        return PlanCache(Path(configured), root=root)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return PlanCache(Path(base) / "fedeploy" / "plan", root=root)
