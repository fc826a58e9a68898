"""The commands the docs show are true for the sites they name."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from fedeploy.config.base import SecretValue
from fedeploy.config.loader import SITE_KEY
from fedeploy.config.site import MODELS
from tests.builders import example_site
from tests.conftest import ROOT

DOCS = [ROOT / "README.md", ROOT / "docs" / "configuration.md", ROOT / "docs" / "operations.md"]
SELECT = re.compile(r"pulumi stack select --create (?P<stack>[a-z0-9-]+)")
SET_SECRET = re.compile(r"pulumi config set --secret --path '(?P<path>[^']+)'")


def _field_type(model: type[BaseModel], parts: list[str]) -> typing.Any:
    current: typing.Any = model
    for part in parts:
        while True:  # unwrap Annotated and Optional down to the model
            origin = typing.get_origin(current)
            if origin is typing.Annotated:
                current = typing.get_args(current)[0]
            elif origin in (typing.Union, __import__("types").UnionType):
                current = next(a for a in typing.get_args(current) if a is not type(None))
            else:
                break
        assert isinstance(current, type) and issubclass(current, BaseModel), parts
        assert part in current.model_fields, f"{current.__name__} has no key {part!r}"
        current = current.model_fields[part].annotation
    return current


def _is_secret(tp: typing.Any) -> bool:
    return SecretValue in {a for a in typing.get_args(tp)} | {tp} or any(
        _is_secret(a) for a in typing.get_args(tp)
    )


def _examples(path: Path) -> list[tuple[str | None, str]]:
    """(stack selected before it or None, key path) of every `config set --secret` shown."""
    found: list[tuple[str | None, str]] = []
    for block in re.findall(r"```sh\n(.*?)```", path.read_text(), re.S):
        stack = None
        for line in block.splitlines():
            if match := SELECT.search(line):
                stack = match["stack"]
            if match := SET_SECRET.search(line):
                found.append((stack, match["path"]))
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_secret_the_docs_set_is_a_secret_of_the_site_they_select(doc):
    for stack, path in _examples(doc):
        assert path.startswith(f"{SITE_KEY}."), path
        parts = path.removeprefix(f"{SITE_KEY}.").split(".")
        kinds = list(MODELS)
        if stack is not None:
            kinds = [example_site(stack)["kind"]]
        secret_somewhere = False
        for kind in kinds:
            try:
                secret_somewhere |= _is_secret(_field_type(MODELS[kind], parts))
            except AssertionError:
                if stack is not None:
                    raise
        assert secret_somewhere, f"{doc.name}: {path} is not a secret of {stack or 'any kind'}"


def test_the_readme_shows_a_kubeconfig_only_for_a_site_that_has_one():
    examples = _examples(ROOT / "README.md")
    assert ("hpc-kajaani", f"{SITE_KEY}.cluster.kubeconfig") in examples
    assert all(stack != "aws-dublin" for stack, _ in examples)
