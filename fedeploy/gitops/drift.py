"""The resources a drift check found, read from `pulumi preview --refresh --json`.

`python -m fedeploy.gitops.drift SITE preview.json` prints the body of the site's drift issue
and exits 0 when nothing drifted (printing nothing), 1 when something did, 2 when the file is
not a preview (the preview itself failed). Only operations and URNs are printed: never values,
which may be sensitive and would end up in an issue."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# Steps that change nothing: the resource matches, is only read, or is only refreshed.
UNCHANGED_OPS = frozenset({"same", "read", "refresh"})


def drifted_resources(digest: Any) -> list[tuple[str, str]]:
    """(operation, URN) of every step of a preview digest that would change something."""
    if not isinstance(digest, dict) or not isinstance(digest.get("steps", []), list):
        raise ValueError("not the JSON of `pulumi preview --json` (no list of steps)")
    found = []
    for step in digest.get("steps", []):
        op, urn = step.get("op"), step.get("urn")
        if isinstance(op, str) and isinstance(urn, str) and op not in UNCHANGED_OPS:
            found.append((op, urn))
    return sorted(found, key=lambda item: (item[1], item[0]))


def issue_body(site: str, resources: list[tuple[str, str]]) -> str:
    """Markdown naming the site and each resource that differs, for the site's drift issue."""
    lines = [
        f"The scheduled drift check of stack `{site}` found {len(resources)} resource(s) that differ "
        "from the program on the default branch: changed outside Pulumi, or not deployed yet.",
        "",
        "| operation the program would apply | resource |",
        "|---|---|",
    ]
    lines += [f"| {op} | `{urn}` |" for op, urn in resources]
    lines += [
        "",
        f"Accept the change into the state with `pulumi refresh --stack {site}`, or restore the program's "
        f"version with `pulumi up --stack {site}`; the next clean check closes this issue.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m fedeploy.gitops.drift SITE PREVIEW_JSON", file=sys.stderr)
        return 2
    site, path = argv
    try:
        resources = drifted_resources(json.loads(Path(path).read_text()))
    except (OSError, ValueError) as err:  # json.JSONDecodeError is a ValueError
        print(f"{path}: {err}", file=sys.stderr)
        return 2
    if not resources:
        return 0
    sys.stdout.write(issue_body(site, resources))
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
