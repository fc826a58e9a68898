"""What an image of scripts/build-images.sh is built from, as one digest: its Dockerfile, its
.dockerignore and every file of the build context that .dockerignore lets through (what the
Dockerfile can COPY: the code, the lock it installs). The image tests label each image they build
with it and rebuild an image whose label differs (tests/images/conftest.py, `built_image`)."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

# The label an image test's image carries: the digest of the inputs it was built from.
INPUTS_LABEL = "org.fedeploy.build-inputs"


def _pattern(line: str) -> re.Pattern[str]:
    """A .dockerignore pattern as Docker matches it: from the context root, `*` and `?` within
    one path element, `**` across any number of them."""
    text, out = line.strip("/"), ""
    i = 0
    while i < len(text):
        if text.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif text.startswith("**", i):
            out, i = out + ".*", i + 2
        elif text[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif text[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(text[i]), i + 1
    return re.compile(out)


def _ignored(rules: list[tuple[bool, re.Pattern[str]]], relative: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its folders decides."""
    parts = relative.split("/")
    ignored = False
    for exclude, pattern in rules:
        if any(pattern.fullmatch("/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            ignored = exclude
    return ignored


def context_files(root: Path, dockerignore: Path) -> list[str]:
    """The context's files (paths relative to `root`, sorted) that `dockerignore` lets through.
    ValueError: a .dockerignore that does not start with `*` (these list what they let in)."""
    lines = [
        line.strip()
        for line in dockerignore.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines or lines[0] != "*":
        raise ValueError(f"{dockerignore}: expected `*` first, then the `!` paths let in")
    rules = [(not line.startswith("!"), _pattern(line.lstrip("!"))) for line in lines]
    found: set[str] = set()
    for line in lines[1:]:
        if not line.startswith("!"):
            continue
        # Walk only what a `!` pattern can let in: its folders before any wildcard.
        text = line[1:].strip("/")
        wild = re.search(r"[*?\[]", text)
        start = root / (text[: text.rfind("/", 0, wild.start()) + 1] if wild else text)
        if start.is_file():
            paths = [start]
        else:
            paths = [Path(top) / name for top, _, names in os.walk(start) for name in names]
        for path in paths:
            relative = path.relative_to(root).as_posix()
            if path.is_file() and not _ignored(rules, relative):
                found.add(relative)
    return sorted(found)


def inputs_digest(
    root: Path, dockerfile: Path, dockerignore: Path, more: tuple[Path, ...] = ()
) -> str:
    """SHA-256 (hex) of each input's path and bytes: the Dockerfile, the .dockerignore, the
    context files it lets through, and `more` (what the build script makes context files from)."""
    digest = hashlib.sha256()
    named = [path.relative_to(root).as_posix() for path in (dockerfile, dockerignore, *more)]
    for relative in [*named, *context_files(root, dockerignore)]:
        data = (root / relative).read_bytes()
        digest.update(f"{relative}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()
