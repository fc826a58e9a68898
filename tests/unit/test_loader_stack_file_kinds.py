"""The loader reads a stack file only if it is a regular file in its own folder (review watch27
findings 4, 6, S4): a folder, FIFO or a symlink out of the stacks folder named like a stack
file is refused with the usual error naming it, never waited on or followed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fedeploy.config.loader import read_stack_file
from fedeploy.errors import StackConfigError
from tests.conftest import STACKS

SITE = "Pulumi.cf-waw.yaml"


def _refusal(path: Path) -> str:
    with pytest.raises(StackConfigError) as raised:
        read_stack_file(path)
    text = str(raised.value)
    assert str(path) in text and "Traceback" not in text
    return text


def test_a_folder_or_fifo_named_like_a_stack_file_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "Pulumi.dir-site.yaml"
    folder.mkdir()
    assert "is a folder, not a regular file" in _refusal(folder)
    fifo = tmp_path / "Pulumi.fifo-site.yaml"
    os.mkfifo(fifo)
    assert "not a regular file" in _refusal(fifo)  # and not waited on: nothing writes it


def test_a_symlink_out_of_the_stacks_folder_is_refused_and_one_inside_is_read(
    tmp_path: Path,
) -> None:
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    outside = tmp_path / "outside-secret.yaml"
    shutil.copy(STACKS / SITE, outside)
    link = stacks / SITE
    link.symlink_to(outside)
    assert "outside the stacks folder" in _refusal(link)
    (stacks / "real.yaml").write_bytes((STACKS / SITE).read_bytes())
    link.unlink()
    link.symlink_to(stacks / "real.yaml")
    assert read_stack_file(link).stack == "cf-waw"
