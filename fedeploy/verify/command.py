"""The `fedeploy verify` command (the checks live in `fedeploy.verify.checks`)."""

from __future__ import annotations

import ssl
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from fedeploy.cli_options import StacksDir, stacks_dir_or_exit

# Longest a wait may be asked for (a day): a typo such as `inf` must not hang a pipeline job.
MAX_WAIT_S = 86400.0


def checked_url(value: str | None, option: str) -> str | None:
    """`value` when it is an http(s) URL with a host and no credentials; a usage error (exit 2)
    naming `option` otherwise (a credential would be printed in every check's evidence)."""
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise typer.BadParameter(
            f"{value!r} is not an http(s) URL with a host (e.g. https://catalog.example.eu)",
            param_hint=option,
        )
    if parts.username is not None or parts.password is not None:
        raise typer.BadParameter(
            "the URL holds a user name or password; give the address only (it is printed in "
            "the report)",
            param_hint=option,
        )
    return value


class VerifyFormat(StrEnum):
    text = "text"
    json = "json"


def verify_command(
    site: Annotated[str, typer.Argument(help="The stack whose live site to check.")],
    stacks_dir: StacksDir = None,
    catalog_url: Annotated[
        str | None,
        typer.Option(
            "--catalog-url",
            help="Check the catalog at this URL instead of services.catalog.url (a tunnel, a "
            "test peer).",
        ),
    ] = None,
    bridge_url: Annotated[
        str | None,
        typer.Option(
            "--bridge-url", help="Reach the bridge at this URL (where the runner can reach it)."
        ),
    ] = None,
    max_harvest_age: Annotated[
        float,
        typer.Option(
            "--max-harvest-age",
            min=1,
            help="Hub: the oldest a member's last successful harvest may be, in seconds.",
        ),
    ] = 3600.0,
    bake: Annotated[
        float,
        typer.Option(
            "--bake",
            min=0,
            max=MAX_WAIT_S,
            help="Seconds to wait before the first check (let the site settle).",
        ),
    ] = 0.0,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds one HTTP request may take.")
    ] = 10.0,
    deadline: Annotated[
        float,
        typer.Option(
            "--deadline",
            min=0,
            max=MAX_WAIT_S,
            help="Seconds each check keeps retrying (with backoff) before it fails.",
        ),
    ] = 120.0,
    ca_bundle: Annotated[
        Path | None,
        typer.Option(
            "--ca-bundle",
            exists=True,
            dir_okay=False,
            help="Trust this CA bundle (PEM) instead of the system's.",
        ),
    ] = None,
    format: Annotated[
        VerifyFormat, typer.Option("--format", "-f", help="Report format.")
    ] = VerifyFormat.text,
) -> None:
    """Check a deployed site from the outside: catalog, conformance, collections, anonymous
    writes refused, the hub's harvest of every member, the bridge; on a storage-only site, that
    each bucket exists and refuses anonymous listing.

    Exit status: 0 every check passed (or does not apply), 1 a check failed, 2 the site cannot
    be verified (unknown stack, invalid stack file, no public URL)."""
    from fedeploy.verify.checks import (
        EXIT_UNVERIFIABLE,
        Settings,
        VerifyError,
        as_json,
        as_text,
        verify_site,
    )

    stacks_dir = stacks_dir_or_exit(stacks_dir)
    catalog_url = checked_url(catalog_url, "--catalog-url")
    bridge_url = checked_url(bridge_url, "--bridge-url")
    trust: bool | ssl.SSLContext = True
    if ca_bundle is not None:
        try:
            trust = ssl.create_default_context(cafile=str(ca_bundle))
        except ssl.SSLError as err:
            raise typer.BadParameter(
                f"{ca_bundle} holds no PEM certificate ({err})", param_hint="--ca-bundle"
            ) from None
    settings = Settings(
        timeout_s=timeout,
        deadline_s=deadline,
        max_harvest_age_s=max_harvest_age,
        verify_tls=trust,
        progress=lambda line: typer.echo(f"verify {site}: {line}", err=True),
    )
    if bake > 0:
        typer.echo(f"baking {bake:.0f} s before verifying {site}", err=True)
        time.sleep(bake)
    try:
        report = verify_site(site, stacks_dir, settings, catalog_url, bridge_url)
    except VerifyError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(EXIT_UNVERIFIABLE) from None
    sys.stdout.write(as_json(report) if format == VerifyFormat.json else as_text(report))
    raise typer.Exit(report.exit_code)
