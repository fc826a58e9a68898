"""The JSON Schema of a stack file, for editors (yaml-language-server) and pipelines."""

from __future__ import annotations

from typing import Any

from fedeploy.config.loader import SITE_KEY
from fedeploy.config.site import site_adapter


def stack_file_schema() -> dict[str, Any]:
    """A schema for a whole `stacks/Pulumi.<site>.yaml`: its `config.fedeploy:site` object."""
    site = site_adapter.json_schema(ref_template="#/$defs/{model}")
    defs = site.pop("$defs", {})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://fedeploy.example.eu/schemas/stack-file.json",
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
