"""The one way a test builds a site or a stack file: from the example federation's stack files
(stacks/) or the fixtures under tests/stack_files/, changed in place and written back.

- `stack_document(stack)`: the YAML document of an example stack file (stacks/, else the valid
  fixtures), or of any stack file given its path, a fresh copy each time; `example_site(stack)`:
  its `fedeploy:site`.
- `example_stacks(folder, names)`: `folder` holding copies of those example stack files.
- `write_stack_file(path, document)`: the document as YAML (keys in their order unless
  `sort_keys`); `edit_site(path, edit)`: `edit(site)` applied to a stack file in place.
- `external_database_stack(folder, external)`: the kubernetes fixture with its catalog on an
  external database (`services.catalog.external` = `external`).
- `git(repo, *args)`: git in a test's repository, as a test identity, commits unsigned.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT, STACKS

# A real certificate (self-signed, P-256, valid to 2126): the stack file loads every PEM
# certificate it is given (fedeploy/config/pem.py), so tests' CAs and bridge certificates are one.
TEST_CA_PEM = (
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBjjCCATOgAwIBAgIUURJa/rsBB3jGqBHrQb1PenH9+QQwCgYIKoZIzj0EAwIw\n"
    "GzEZMBcGA1UEAwwQZmVkZXBsb3kgdGVzdCBDQTAgFw0yNjEyMDcxMTEzMjFaGA8y\n"
    "MTI2MTExMzExMTMyMVowGzEZMBcGA1UEAwwQZmVkZXBsb3kgdGVzdCBDQTBZMBMG\n"
    "ByqGSM49AgEGCCqGSM49AwEHA0IABGUXPNHoX1QASjK6hUROkulOVNhePhAigcd2\n"
    "lRD0QYHrCAfSALLt6LTWjvvLBZELOgATY0tMhEAjTs/xrF0gkj2jUzBRMB0GA1Ud\n"
    "DgQWBBSejVfxwo8RJ7cYswkkBafPxJ7POzAfBgNVHSMEGDAWgBSejVfxwo8RJ7cY\n"
    "swkkBafPxJ7POzAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0kAMEYCIQC6\n"
    "nUH5IGR7is+hlB5Y54sdMCA8/LjcLFXMKvZVW8rMsQIhAIyCid6rAaEjel0LqFAK\n"
    "zDI2Z/N8igkvd8BYDcgGbNhF\n"
    "-----END CERTIFICATE-----\n"
)

SITE_KEY = "fedeploy:site"
VALID_FIXTURES = ROOT / "tests" / "stack_files" / "valid"
KUBERNETES_FIXTURE = VALID_FIXTURES / "Pulumi.k8s-gra.yaml"
# A Pulumi `secure:` value the offline engine takes (it never decrypts one).
SECURE_PASSWORD = {"secure": "v1:cGc=:cGctcGFzc3dvcmQtY2lwaGVydGV4dA=="}
TEST_IDENTITY = ["-c", "user.name=fedeploy-test", "-c", "user.email=test@example.org"]


def stack_document(stack: str | Path) -> dict[str, Any]:
    """The document of stacks/Pulumi.<stack>.yaml (else of the valid fixture of that name), or
    of the stack file at a path."""
    if isinstance(stack, Path):
        path = stack
    else:
        path = STACKS / f"Pulumi.{stack}.yaml"
        if not path.exists():
            path = VALID_FIXTURES / f"Pulumi.{stack}.yaml"
    return yaml.safe_load(path.read_text())


def example_site(stack: str) -> dict[str, Any]:
    """The `fedeploy:site` of an example stack (or of a valid fixture)."""
    return stack_document(stack)["config"][SITE_KEY]


def example_stacks(folder: Path, names: Iterable[str]) -> Path:
    """`folder` (created) holding copies of the named example stack files."""
    folder.mkdir()
    for name in names:
        shutil.copy(STACKS / f"Pulumi.{name}.yaml", folder)
    return folder


def write_stack_file(path: Path, document: dict[str, Any], *, sort_keys: bool = False) -> Path:
    """Write `document` to `path` as YAML; returns `path`."""
    path.write_text(yaml.safe_dump(document, sort_keys=sort_keys))
    return path


def edit_site(
    path: Path, edit: Callable[[dict[str, Any]], Any], *, sort_keys: bool = False
) -> None:
    """Apply `edit` to the `fedeploy:site` of the stack file at `path`, in place."""
    document = stack_document(path)
    edit(document["config"][SITE_KEY])
    write_stack_file(path, document, sort_keys=sort_keys)


def external_database_stack(folder: Path, external: dict[str, Any]) -> Path:
    """The kubernetes fixture, its catalog on the external database `external`, written into
    `folder` under the fixture's name."""
    document = stack_document(KUBERNETES_FIXTURE)
    catalog = document["config"][SITE_KEY]["services"]["catalog"]
    catalog["database"] = "external"
    catalog["external"] = external
    return write_stack_file(folder / KUBERNETES_FIXTURE.name, document)


def git(repo: Path, *args: str) -> str:
    """`git ARGS` in `repo` as the test identity (commits unsigned); its output, stripped.
    A failure raises CalledProcessError."""
    done = subprocess.run(
        ["git", *TEST_IDENTITY, "-c", "commit.gpgsign=false", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()
