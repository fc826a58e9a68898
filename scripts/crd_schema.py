"""Make a strict JSON schema of one version of a CustomResourceDefinition, the way kubeconform's
openapi2jsonschema does: the version's openAPIV3Schema, every object that lists its
`properties` closed to others (`additionalProperties: false`, unless it keeps unknown fields),
`apiVersion` and `kind` pinned. CEL rules (`x-kubernetes-validations`) are not checked by it.

Usage: python scripts/crd_schema.py CRD.yaml VERSION > fedeploy/crd_schemas/<kind>-<group>-<version>.json
"""

from __future__ import annotations

import json
import sys
from typing import Any

import yaml


def _close(node: Any) -> Any:
    """The schema with every object that names its properties closed to unknown ones."""
    if isinstance(node, list):
        return [_close(item) for item in node]
    if not isinstance(node, dict):
        return node
    closed = {key: _close(value) for key, value in node.items()}
    if (
        "properties" in closed
        and "additionalProperties" not in closed
        and not closed.get("x-kubernetes-preserve-unknown-fields")
    ):
        closed["additionalProperties"] = False
    return closed


def crd_schema(crd: dict[str, Any], version: str) -> dict[str, Any]:
    """The strict JSON schema of `version` of `crd`; KeyError when the CRD has no such version."""
    spec = crd["spec"]
    (served,) = [v for v in spec["versions"] if v["name"] == version]
    schema = _close(served["schema"]["openAPIV3Schema"])
    schema["properties"]["apiVersion"] = {"enum": [f"{spec['group']}/{version}"]}
    schema["properties"]["kind"] = {"enum": [spec["names"]["kind"]]}
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
    bundle = crd["metadata"].get("annotations", {})
    schema["$comment"] = (
        f"{crd['metadata']['name']} {version}, Gateway API "
        f"{bundle.get('gateway.networking.k8s.io/bundle-version', '?')} "
        f"({bundle.get('gateway.networking.k8s.io/channel', '?')} channel); "
        "made by scripts/crd_schema.py"
    )
    return schema


if __name__ == "__main__":
    path, version = sys.argv[1:3]
    with open(path, encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    json.dump(crd_schema(document, version), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
