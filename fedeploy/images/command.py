"""`fedeploy images`: the images the charts run, and the digests recorded for them."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from fedeploy.images.lock import LOCK_FILE, ImageUse, chart_images, load_lock, record
from fedeploy.project import CHARTS

images_app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="The images the charts run, and their digests in images.lock.yaml.",
)

Lock = Annotated[
    Path, typer.Option("--lock", help="The image lock file (default: images.lock.yaml).")
]


class ListFormat(StrEnum):
    """The output forms, spelled as every other command spells them (`--format json`)."""

    text = "text"
    json = "json"


def _uses() -> list[ImageUse]:
    return [use for chart in CHARTS for use in chart_images(chart)]


@images_app.command("list")
def list_images(
    lock: Lock = LOCK_FILE,
    unpinned: Annotated[
        bool, typer.Option("--unpinned", help="Only the images the lock holds no digest for.")
    ] = False,
    format: Annotated[
        ListFormat,
        typer.Option(
            "--format",
            "-f",
            help="text: one repository:tag a line; json: each image with its digest and where "
            "it is set.",
        ),
    ] = ListFormat.text,
    as_json: Annotated[
        bool, typer.Option("--json", hidden=True, help="The same as --format json.")
    ] = False,
) -> None:
    """Every image the charts run by default (repository:tag), once each, sorted; with
    --format json, each with the lock's digest ("" when none) and the chart values that name it
    (`--json`, its older spelling, still works)."""
    digests = load_lock(lock)
    refs: dict[str, list[str]] = {}
    for use in _uses():
        refs.setdefault(use.ref, []).append(use.where)
    rows = [
        {"image": ref, "digest": digests.get(ref, ""), "used_by": sorted(where)}
        for ref, where in sorted(refs.items())
        if not (unpinned and ref in digests)
    ]
    if as_json or format == ListFormat.json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        for row in rows:
            typer.echo(row["image"])


@images_app.command("record")
def record_images(
    pinned: Annotated[
        list[str],
        typer.Argument(help="Images as repository:tag@sha256:<64 hex>, as a registry served them."),
    ],
    lock: Lock = LOCK_FILE,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace", help="Accept a new digest for a recorded tag (the tag was moved)."
        ),
    ] = False,
) -> None:
    """Record the digests of pushed or resolved images in the lock, sorted; nothing is written
    when one reference is malformed or (without --replace) a recorded tag has another digest.

    Exit status: 0 recorded (or nothing to change), 2 refused."""
    changes = record(pinned, lock, replace=replace)
    for line in changes or [f"{lock}: every digest was recorded already"]:
        typer.echo(line)
