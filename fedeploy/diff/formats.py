"""`fedeploy diff` printed for people (text, with colour on a terminal), for pull requests
(Markdown, one collapsible section per site, under GitHub's comment limit) and for tools (JSON)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fedeploy.diff.compare import MISSING, FederationDiff, InputChange, SiteDiff
from fedeploy.gitops.markdown import code, fenced, normalise

# GitHub refuses a comment longer than 65,536 characters; leave room for the pipeline's own lines.
COMMENT_LIMIT = 60_000
VALUE_WIDTH = 160
MARK = {"added": "+", "removed": "-", "changed": "~"}
_COLOURS = {"+": "32", "-": "31", "~": "33", "@": "36"}


def as_json(diff: FederationDiff) -> str:
    return json.dumps(diff.to_dict(), indent=2, sort_keys=True) + "\n"


def _value(value: Any, width: int | None = VALUE_WIDTH) -> str:
    if value is MISSING:
        return "(absent)"
    text = (
        value
        if isinstance(value, str) and value == "[secret]"
        else json.dumps(value, sort_keys=True)
    )
    if width is not None and len(text) > width:
        text = text[: width - 1] + "…"
    return text


def _input_line(change: InputChange, width: int | None = VALUE_WIDTH) -> str:
    if change.secret:
        return f"{change.path}: [secret] ({'added' if change.old is MISSING else 'removed' if change.new is MISSING else 'changed'})"
    return f"{change.path}: {_value(change.old, width)} → {_value(change.new, width)}"


def _site_heading(site: SiteDiff) -> str:
    if site.status == "added":
        return f"{site.name}: new stack, {site.summary}"
    if site.status == "removed":
        return f"{site.name}: stack file removed (deploying does not destroy it), {site.summary}"
    if site.status == "unchanged":
        return f"{site.name}: no change"
    return f"{site.name}: {site.summary}"


def site_lines(
    site: SiteDiff,
    *,
    diffs: bool = True,
    width: int | None = VALUE_WIDTH,
    diff_indent: str = "      ",
) -> list[str]:
    """The body of one site's diff: resources, manifests, outputs, secrets (diff-style marks);
    a changed object's unified diff follows it, indented by `diff_indent`."""
    lines: list[str] = []
    if site.status in ("added", "removed"):
        # A whole stack appearing or leaving: its resources by key, no input detail.
        lines += [f"{MARK[r.status]} {r.key}" for r in site.resources]
    else:
        for resource in site.resources:
            suffix = ""
            if resource.status == "changed" and resource.replaced_by:
                suffix = f"  (replaced: {', '.join(resource.replaced_by)} forces a new resource)"
            lines.append(f"{MARK[resource.status]} {resource.key}{suffix}")
            lines += [f"      {_input_line(c, width)}" for c in resource.inputs]
    for manifest in site.manifests:
        lines.append(f"{MARK[manifest.status]} manifest {manifest.release}: {manifest.key}")
        if diffs and manifest.diff:
            lines += [diff_indent + line for line in manifest.diff.rstrip("\n").split("\n")]
    for output in site.outputs:
        readers = f" (read by {', '.join(output.read_by)})" if output.read_by else ""
        lines.append(
            f"~ output {output.output}: {_value(output.old, width)} → {_value(output.new, width)}{readers}"
        )
    for path, status in site.secrets:
        lines.append(
            f"~ secret {path}: {status} (offline plans cannot decrypt it: the resources "
            "that read it show no change above)"
        )
    return lines


def _colour(line: str, on: bool) -> str:
    if not on:
        return line
    stripped = line.lstrip()
    code = _COLOURS.get(stripped[:1]) if stripped[:3] not in ("---", "+++") else "1"
    return f"\033[{code}m{line}\033[0m" if code else line


def as_text(diff: FederationDiff, colour: bool = False) -> str:
    lines = [
        f"fedeploy diff {diff.base[:12]}..{diff.head[:12]} (offline plans of both revisions)",
        "",
    ]
    for error in diff.errors:
        lines.append(f"error: {error}")
    groups = [(f"wave {n}", wave) for n, wave in enumerate(diff.waves, 1)]
    if diff.removed:
        groups.append(("removed stacks", diff.removed))
    for title, stacks in groups:
        lines.append(f"\033[1m{title}\033[0m" if colour else title)
        for name in stacks:
            site = diff.sites[name]
            lines.append(f"  {_site_heading(site)}")
            lines += [_colour("    " + line, colour) for line in site_lines(site)]
        lines.append("")
    lines.append(verdict(diff))
    return "\n".join(lines) + "\n"


def verdict(diff: FederationDiff) -> str:
    if diff.errors:
        return f"INVALID: {len(diff.errors)} error(s)"
    changed = [s for s in diff.sites.values() if s.status != "unchanged"]
    if not changed:
        return f"no change on any of {len(diff.sites)} site(s)"
    return f"{len(changed)} of {len(diff.sites)} site(s) change"


# ---- Markdown ------------------------------------------------------------------------------------


def _md_site(site: SiteDiff, level: int) -> list[str]:
    """One site's collapsible section at a level of detail: 0 full, 1 without manifest diffs
    and with short values, 2 resource and object keys only."""
    # Unindented unified diffs, so that GitHub colours their lines in a `diff` block.
    lines = site_lines(site, diffs=level == 0, width=None if level == 0 else 80, diff_indent="")
    if level >= 2:
        lines = [line for line in lines if not line.startswith(" ")]
    # A recorded plan's names and values: no line of theirs closes the fence (markdown.fenced).
    body = fenced(lines, "diff")
    return [
        f"<details><summary><code>{_escape(site.name)}</code>: {_escape(_site_heading(site).split(': ', 1)[1])}</summary>",
        "",
        *body,
        "",
        "</details>",
        "",
    ]


def _escape(text: str) -> str:
    """`text` on one line of an HTML block (`<summary>`), as literal text."""
    one_line = " ".join(normalise(text).split("\n"))
    return one_line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def as_markdown(
    diff: FederationDiff, limit: int | None = COMMENT_LIMIT, full_url: str | None = None
) -> str:
    """The diff for a pull-request comment; over `limit` characters, details are dropped step
    by step (manifest diffs, then input values, then every site's body) and the comment points
    at the full artifact (`full_url`, or the `diff.md` of the job's artifacts)."""
    where = (
        f"[the full diff]({full_url})"
        if full_url
        else "the full diff (`diff.md` and `diff.json` in this job's artifacts)"
    )
    if limit is None:
        return _markdown(diff, 0, where)
    for level in range(4):
        text = _markdown(diff, level, where)
        if len(text) <= limit:
            return text
    return text[: limit - 200] + f"\n\n…cut at {limit} characters; see {where}.\n"


def _markdown(diff: FederationDiff, level: int, where: str) -> str:
    out = [
        "## fedeploy diff",
        "",
        f"`{diff.base[:12]}` → `{diff.head[:12]}`: **{verdict(diff)}**",
        "",
    ]
    out += [f"> {note}\n" for note in diff.notes]
    if diff.errors:
        # A recorded plan's errors are its code's words: each in a fence nothing inside closes.
        out += ["### Errors", ""]
        for error in diff.errors:
            out += [*fenced([error]), ""]
    if level:
        out += [f"> Shortened to fit a comment: see {where}.", ""]
    if diff.sites:
        out += ["| wave | site | change |", "|---|---|---|"]
        for name in diff.ordered():
            site = diff.sites[name]
            wave = site.wave if site.wave is not None else "removed"
            change = _site_heading(site).split(": ", 1)[1]
            out.append(f"| {wave} | {code(name, table=True)} | {_escape(change)} |")
        out.append("")
    if level < 3:
        for name in diff.ordered():
            site = diff.sites[name]
            if site.status != "unchanged":
                out += _md_site(site, level)
    return "\n".join(out)


FORMATS: dict[str, Callable[[FederationDiff], str]] = {
    "text": as_text,
    "json": as_json,
    "markdown": as_markdown,
}
