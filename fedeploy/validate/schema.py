"""The JSON Schema of a stack file, for editors (yaml-language-server) and pipelines.

Published as schemas/stack-file.schema.json (`make schema`; a test keeps it current). Every
pattern is valid ECMA-262 with the `u` flag, the dialect of the engines editors run (ajv), and
the kinds are told apart by `if`/`then` on `kind`, so a validator reports the problems of the
kind the file names instead of a `oneOf` failure listing every kind's."""

from __future__ import annotations

from typing import Any

from fedeploy.config.loader import SITE_KEY
from fedeploy.config.site import MODELS, site_adapter
from fedeploy.config.site_base import KINDS

SCHEMA_ID = "https://fedeploy.example.eu/schemas/stack-file.json"


def _closed_maps(node: Any) -> None:
    """Maps whose keys have a pattern (bucket names, node groups, tags) admit no other keys:
    pydantic refuses them, so the schema says so too."""
    if isinstance(node, dict):
        if "patternProperties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _closed_maps(value)
    elif isinstance(node, list):
        for item in node:
            _closed_maps(item)


def site_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """The schema of the `fedeploy:site` object and the definitions it refers to."""
    generated = site_adapter.json_schema(ref_template="#/$defs/{model}")
    defs: dict[str, Any] = generated.pop("$defs", {})
    _closed_maps(defs)
    refs = {kind: f"#/$defs/{MODELS[kind].__name__}" for kind in KINDS}
    site = {
        "type": "object",
        "description": "The site: `kind` says which of the kinds below it is.",
        "required": ["kind"],
        "properties": {"kind": {"enum": list(KINDS), "description": "The kind of site."}},
        "allOf": [
            {
                "if": {
                    "type": "object",
                    "properties": {"kind": {"const": kind}},
                    "required": ["kind"],
                },
                "then": {"$ref": ref},
            }
            for kind, ref in refs.items()
        ],
    }
    return site, defs


def stack_file_schema() -> dict[str, Any]:
    """A schema for a whole `stacks/Pulumi.<site>.yaml`: its `config.fedeploy:site` object."""
    site, defs = site_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "fedeploy stack file",
        "description": "stacks/Pulumi.<site>.yaml: one site of the federation.",
        "type": "object",
        "properties": {
            "config": {
                "type": "object",
                "properties": {SITE_KEY: site},
                "required": [SITE_KEY],
                "additionalProperties": True,
            },
            "secretsprovider": {"type": "string"},
            "encryptedkey": {"type": "string"},
            "encryptionsalt": {"type": "string"},
        },
        "required": ["config"],
        "$defs": defs,
    }
