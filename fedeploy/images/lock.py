"""The image lock: the digest of every image our charts run, as the release pipeline recorded it.

`images.lock.yaml` at the project root maps each image reference the charts run
(`repository:tag`) to the digest a registry served for it (`sha256:` and 64 hex digits):

    version: 1
    digests:
      ghcr.io/fedeploy/ingestion:0.1.0: sha256:0123...
      ghcr.io/stac-utils/stac-fastapi-pgstac:7.2.0: sha256:4567...

The release pipeline writes it (`fedeploy images record`, examples/gitops) for the images it
pushes and for the third-party images the charts name, and proposes the change as a pull
request. The Pulumi program (`pulumi up`) and the offline plan pin every image block of every
chart release whose `repository:tag` the lock holds, by setting that block's `digest` (the
pod then runs `repository:tag@sha256:...`, which a moved tag cannot change). A digest a stack's
values set already wins. A tag recorded once keeps its digest: recording another digest for it
is refused unless asked for (`--replace`), since a moved tag is what pinning guards against.

An image block is any mapping in a chart's values.yaml with the keys `repository` and `tag`; an empty `tag` means the chart's appVersion, followed by the block's `suffix` if it
has one (the inference chart's CUDA image: `<appVersion>-cuda`).
"""

from __future__ import annotations

import os
import re
import reprlib
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from fedeploy.errors import FedeployError
from fedeploy.project import ProjectError, project_dir, require_project

LOCK_FILE = project_dir() / "images.lock.yaml"
LOCK_VERSION = 1
# The lock holds a few dozen lines; anything near this is not one.
MAX_LOCK_BYTES = 1 << 20

# The distribution reference grammar (github.com/distribution/reference), with a tag required:
# an optional registry host (and port), lowercase path components, then ":" and the tag.
_HOST = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]{1,5})?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = rf"(?:{_HOST}/)?{_COMPONENT}(?:/{_COMPONENT})*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"sha256:[0-9a-f]{64}"
# \Z, not $: "$" also matches before a final newline, which would let "sha256:...\n" through.
IMAGE_REF = re.compile(rf"^(?P<repository>{_REPOSITORY}):(?P<tag>{_TAG})\Z")
DIGEST = re.compile(rf"^{_DIGEST}\Z")
PINNED_REF = re.compile(rf"^(?P<ref>{_REPOSITORY}:{_TAG})@(?P<digest>{_DIGEST})\Z")
# What a message shows of a value found in the lock: bounded, whatever its size.
_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxlist, _SHOWN.maxdict, _SHOWN.maxstring, _SHOWN.maxother = 2, 4, 4, 80, 80

_HEADER = """\
# The digest of every image the charts run, by repository:tag. Written by the release pipeline
# (`fedeploy images record`); `pulumi up` and `fedeploy plan` pin each image found here.
# A recorded tag keeps its digest: a moved tag is refused (see docs/charts.md, "Image digests").
"""


class ImageLockError(FedeployError):
    """images.lock.yaml, or an image reference given to record, is not what it must be."""


@dataclass(frozen=True)
class ImageUse:
    """One image block of a chart: where it is in the values, and the reference it runs."""

    chart: str
    path: tuple[
        str, ...
    ]  # key path of the block in the chart's values, e.g. ("migration", "image")
    ref: str  # repository:tag
    digest: str  # "" when the values pin nothing

    @property
    def where(self) -> str:
        return f"charts/{self.chart} values {'.'.join(self.path) or '(top level)'}"


def load_lock(path: Path | None = None) -> dict[str, str]:
    """The lock's digests, `repository:tag` -> `sha256:...`; {} when the file does not exist.

    Raises ImageLockError naming the file and key for anything else than a regular file of at
    most MAX_LOCK_BYTES (a symbolic link, a directory or a device is refused) holding plain YAML
    (no anchors, aliases, tags or merge keys) with version 1 and a mapping of valid references
    to valid digests (duplicate keys included). The file is read again whenever it changed.
    Without `path`, the project's lock: ImageLockError too when the project directory holds no
    fedeploy project (its lock would silently be missing, and nothing pinned)."""
    if path is None:
        _require_project()
    path = (path or LOCK_FILE).absolute()
    try:
        found = path.lstat()
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise ImageLockError(f"{path}: cannot be read: {err.strerror}") from None
    if stat.S_ISLNK(found.st_mode):
        raise ImageLockError(
            f"{path}: a symbolic link (to {os.readlink(path)}); the lock must be a regular file"
        )
    if not stat.S_ISREG(found.st_mode):
        raise ImageLockError(f"{path}: not a regular file; the lock must be one")
    if found.st_size > MAX_LOCK_BYTES:
        raise ImageLockError(
            f"{path}: {found.st_size} bytes, allowed: at most {MAX_LOCK_BYTES}; not an image lock"
        )
    return dict(_load_lock(path, found.st_ino, found.st_mtime_ns, found.st_size))


def _plain_yaml(path: Path, text: str) -> None:
    """Refuse what a written lock never holds and a hostile one uses to hide or multiply
    entries: anchors and aliases (a few hundred bytes of aliases expand to billions of nodes),
    explicit tags, and merge keys (`<<`, which also slips past the duplicate-key check)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        while (event := loader.get_event()) is not None:
            line = event.start_mark.line + 1
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise ImageLockError(
                    f"{path}: line {line}: YAML anchors and aliases (&, *) are not allowed in the lock"
                )
            if tag := getattr(event, "tag", None):
                raise ImageLockError(
                    f"{path}: line {line}: YAML tags ({tag}) are not allowed in the lock"
                )
            if isinstance(event, yaml.ScalarEvent) and event.value == "<<" and event.implicit[0]:
                raise ImageLockError(
                    f"{path}: line {line}: YAML merge keys (<<) are not allowed in the lock"
                )
    except yaml.YAMLError as err:
        raise ImageLockError(f"{path}: not valid YAML: {err}") from None
    finally:
        loader.dispose()


@cache
def _load_lock(path: Path, _inode: int, _mtime_ns: int, _size: int) -> tuple[tuple[str, str], ...]:
    """The checked digests of the lock at `path`; the file's identity, time and size are part of
    the cache key, so a changed file is read again."""
    from fedeploy.config.loader import parse_yaml

    try:
        with path.open("rb") as lock:
            text = lock.read(MAX_LOCK_BYTES + 1).decode("utf-8")
    except UnicodeDecodeError as err:
        raise ImageLockError(f"{path}: not UTF-8 text: {err.reason} at byte {err.start}") from None
    except OSError as err:
        raise ImageLockError(f"{path}: cannot be read: {err.strerror}") from None
    _plain_yaml(path, text)
    try:
        document, duplicates, _ = parse_yaml(text)
    except yaml.YAMLError as err:
        raise ImageLockError(f"{path}: not valid YAML: {err}") from None
    if duplicates:
        raise ImageLockError(f"{path}: " + "; ".join(str(d) for d in duplicates))
    if document is None:
        return ()
    if not isinstance(document, dict):
        raise ImageLockError(
            f"{path}: expected a mapping with 'version' and 'digests', found a "
            f"{type(document).__name__}"
        )
    unknown = sorted(str(key)[:80] for key in document if key not in ("version", "digests"))
    if unknown:
        raise ImageLockError(
            f"{path}: unknown keys {', '.join(unknown)}; allowed: version, digests"
        )
    version = document.get("version")
    # type() is: True and 1.0 equal 1 in Python, but are not the lock's version.
    if type(version) is not int or version != LOCK_VERSION:
        raise ImageLockError(
            f"{path}: version: found {_SHOWN.repr(version)}, allowed: {LOCK_VERSION}"
        )
    digests = document.get("digests") or {}
    if not isinstance(digests, dict):
        raise ImageLockError(
            f"{path}: digests: expected a mapping of repository:tag to sha256:..., found a "
            f"{type(digests).__name__}"
        )
    problems = []
    for ref, digest in digests.items():
        if not isinstance(ref, str) or not IMAGE_REF.match(ref):
            problems.append(
                f"digests: key {_SHOWN.repr(ref)} is not an image reference repository:tag "
                "(e.g. ghcr.io/fedeploy/ingestion:0.1.0)"
            )
        elif not isinstance(digest, str) or not DIGEST.match(digest):
            problems.append(
                f"digests.{ref}: found {_SHOWN.repr(digest)}, allowed: sha256: and 64 "
                "lowercase hex digits"
            )
    if problems:
        raise ImageLockError(f"{path}: " + "; ".join(problems[:20]))
    return tuple(sorted(digests.items()))


def record(
    pinned_refs: Iterable[str], path: Path | None = None, *, replace: bool = False
) -> list[str]:
    """Add `repository:tag@sha256:...` references to the lock, creating it if needed.

    Returns one line per change ("added REF", "replaced REF: OLD -> NEW"); a reference already
    recorded with the same digest changes nothing. Raises ImageLockError, before writing
    anything, for a malformed reference, (without `replace`) a tag recorded with another
    digest, a lock that load_lock refuses or that cannot be written, or (without `path`) a
    project directory that is no fedeploy project. The file is written
    sorted, through a new temporary file beside it renamed over it, so two records of the same
    digests give the same bytes and a reader never sees half a lock."""
    wanted: dict[str, str] = {}
    for text in pinned_refs:
        match = PINNED_REF.match(text.strip())
        if match is None:
            raise ImageLockError(
                f"{_SHOWN.repr(text)} is not a pinned image reference; allowed: "
                "repository:tag@sha256:<64 hex> (e.g. ghcr.io/fedeploy/ingestion:0.1.0@sha256:...)"
            )
        ref, digest = match["ref"], match["digest"]
        if wanted.get(ref, digest) != digest:
            raise ImageLockError(f"{ref} is given twice with different digests")
        wanted[ref] = digest
    if path is None:
        _require_project()  # not into whatever lies beside the installed package
    path = (path or LOCK_FILE).absolute()
    current = load_lock(path)
    changes = []
    for ref, digest in sorted(wanted.items()):
        old = current.get(ref)
        if old == digest:
            continue
        if old is not None and not replace:
            raise ImageLockError(
                f"{path}: {ref} is recorded with {old}, now {digest}: the tag was moved to other "
                "content. Check why; record it anyway with --replace"
            )
        changes.append(f"added {ref}" if old is None else f"replaced {ref}: {old} -> {digest}")
        current[ref] = digest
    if changes:
        body = yaml.safe_dump(
            {"version": LOCK_VERSION, "digests": dict(sorted(current.items()))},
            sort_keys=False,
            default_flow_style=False,
            width=200,
        )
        _write(path, _HEADER + body)
    return changes


def _write(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file that did not exist before (a name that
    is taken, by a file or a symbolic link, is never opened), renamed over `path`."""
    if not path.parent.is_dir():
        raise ImageLockError(f"{path}: cannot be written: no directory {path.parent}")
    try:
        descriptor, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
        )
    except OSError as err:
        raise ImageLockError(f"{path}: cannot be written: {err.strerror}") from None
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except OSError as err:
        Path(temporary).unlink(missing_ok=True)
        raise ImageLockError(f"{path}: cannot be written: {err.strerror}") from None


def _require_project() -> None:
    """ImageLockError unless the project directory whose charts are used is a fedeploy project."""
    from fedeploy.values.services import CHARTS_DIR

    try:
        require_project(CHARTS_DIR.parent)
    except ProjectError as err:
        raise ImageLockError(str(err)) from None


@cache
def _chart_defaults(chart: str) -> tuple[dict[str, Any], str]:
    from fedeploy.values.services import CHARTS_DIR, chart_metadata

    _require_project()  # one clear error, not a missing file's traceback
    text = (CHARTS_DIR / chart / "values.yaml").read_text()
    # libyaml's loader where PyYAML has it: the same documents, a tenth of the time.
    values = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    metadata = chart_metadata(chart)
    return values, str(metadata.get("appVersion", metadata["version"]))


def _blocks(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], dict]]:
    if isinstance(node, dict):
        if {"repository", "tag"} <= node.keys():
            yield path, node
            return
        for key, value in node.items():
            yield from _blocks(value, (*path, str(key)))


def _at(values: Any, path: tuple[str, ...]) -> Any:
    """The value at `path`; None where the path is absent; the first value on the way that is
    not a mapping (a Pulumi Output), which hides what lies below it."""
    node = values
    for key in path:
        if not isinstance(node, Mapping):
            return node
        if key not in node:
            return None
        node = node[key]
    return node


def chart_images(chart: str, values: Mapping[str, Any] | None = None) -> list[ImageUse]:
    """Every image block of one of our charts, with the reference it runs under `values`
    (a release's values over the chart's defaults). A block whose repository, tag or suffix
    `values` set to something else than a string (a Pulumi Output) is left out: its reference
    is not known before deployment."""
    defaults, app_version = _chart_defaults(chart)
    uses = []
    for path, block in _blocks(defaults):
        given = _at(values or {}, path)
        if given is not None and not isinstance(given, Mapping):
            continue
        merged = {**block, **(given or {})}
        fields = {key: merged.get(key) or "" for key in ("repository", "tag", "suffix", "digest")}
        if not all(isinstance(value, str) for value in fields.values()):
            continue
        ref = f"{fields['repository']}:{fields['tag'] or app_version}{fields['suffix']}"
        uses.append(ImageUse(chart=chart, path=path, ref=ref, digest=fields["digest"]))
    return uses


def pin_images(
    chart: str, values: Mapping[str, Any], lock: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """`values` with the lock's digest set in every image block that has none.

    Only the mappings on the way to a pinned block are copied; everything else (Pulumi Outputs
    included) is passed through as it is."""
    lock = load_lock() if lock is None else lock
    pinned: dict[str, Any] = dict(values)
    for use in chart_images(chart, values):
        digest = lock.get(use.ref)
        if use.digest or digest is None:
            continue
        node = pinned
        for key in use.path:
            child = node.get(key)
            node[key] = dict(child) if isinstance(child, Mapping) else {}
            node = node[key]
        node["digest"] = digest
    return pinned
