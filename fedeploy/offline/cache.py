"""Planned stacks kept on disk, so a plan replans only the stacks whose inputs changed.

A stack's plan (and its checks) is a function of its stack file, the outputs of the stacks it
reads, and the code that plans and checks it: this repository's program, charts, templates,
policies and image lock, and the installed packages (Pulumi's SDKs, Helm, the schemas). The
key hashes all of them, so a changed input is a different key and never an old answer. Only
successful plans are kept; a failure is always planned again.

The cache lives in $FEDEPLOY_PLAN_CACHE (`off` turns it off), else
$XDG_CACHE_HOME/fedeploy/plan (~/.cache/fedeploy/plan). Entries are pickles, written whole or
not at all (a temporary file renamed), so plans running side by side share it safely."""

from __future__ import annotations

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
FORMAT = 1  # bump when what an entry holds changes shape
LIMIT_BYTES = 512 * 1024 * 1024  # beyond this, the entries least recently used are removed


def fingerprint_files(root: Path = ROOT) -> dict[str, Path]:
    """The files a plan's answer depends on, by the name they are hashed under: the project's
    (CODE_DIRS, CODE_FILES under `root`, the project directory: its charts, templates, program)
    and the running fedeploy's own packages wherever they are installed (`pkg:` names), since
    a wheel-installed fedeploy plans a project that is not its own source tree."""

    def tree(folder: Path) -> list[Path]:
        return [
            p
            for p in folder.rglob("*")
            if p.is_file() and not any(part in _SKIPPED for part in p.parts) and p.suffix != ".pyc"
        ]

    files = {name: root / name for name in CODE_FILES if (root / name).is_file()}
    for folder in CODE_DIRS:
        files.update((p.relative_to(root).as_posix(), p) for p in tree(root / folder))
    for package in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            continue
        home = Path(spec.origin).parent
        files.update((f"pkg:{package}/{p.relative_to(home).as_posix()}", p) for p in tree(home))
    return files


@functools.lru_cache(maxsize=4)
def code_fingerprint(root: Path = ROOT) -> str:
    """A hash of every file `fingerprint_files(root)` names (names and contents), of the
    installed distributions (names and versions) and of the interpreter's version: it changes
    whenever fedeploy, the project's charts or program, or the dependencies do."""
    digest = hashlib.sha256(f"format {FORMAT}\n{sys.version}\n".encode())
    for name, path in sorted(fingerprint_files(root).items()):
        digest.update(f"{name}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    digest.update("\n".join(_distributions()).encode())
    return digest.hexdigest()


def _distributions() -> list[str]:
    """The installed distributions as their metadata folders name them (name-version.dist-info)
    on every sys.path entry: listed, not parsed, so it costs a directory listing per entry."""
    found: list[str] = []
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        found += (f"{entry}/{name}" for name in names if name.endswith((".dist-info", ".egg-info")))
    return sorted(found)


class PlanCache:
    """Planned stacks by key, in `directory`; `get` misses (None) on any unreadable entry."""

    def __init__(self, directory: Path, root: Path = ROOT, limit: int = LIMIT_BYTES) -> None:
        self.directory = directory
        self.root = root
        self.limit = limit
        self.written = 0
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
        """Keep `value` under `key`; where the cache cannot be written, it is not kept."""
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
