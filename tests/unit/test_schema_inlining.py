"""fedeploy.charts validates with schemas whose `$ref`s fedeploy.kube_schemas resolved once:
the same report, word for word, as validators that resolve them through a registry for every
document (kubernetes-validate's way, built here as charts.py built them before), and no
reference looked up while a document is validated."""

from __future__ import annotations

import copy
import functools
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest

from fedeploy import charts
from fedeploy.kube_schemas import NotInlinable, inline_refs, refs_left


@functools.cache
def _reference_validator(schema_dir: str, schema_file: str, version: str) -> Any:
    """A validator built as charts._validator built it before schemas were inlined."""
    import jsonschema
    from kubernetes_validate.utils import schema_contents
    from referencing import Registry, Resource

    try:
        schema = schema_contents(f"kubernetes-json-schema/{schema_dir}/{schema_file}", version)
    except FileNotFoundError:
        custom = charts.CRD_SCHEMAS / schema_file
        if not custom.is_file():
            return None
        return jsonschema.validators.Draft202012Validator(json.loads(custom.read_text()))
    definitions = schema_contents(f"kubernetes-json-schema/{schema_dir}/_definitions.json", version)
    registry: Any = Resource.from_contents(schema) @ Registry()
    registry = Resource.from_contents(definitions) @ registry
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def _reference_report(manifests: list[dict[str, Any]], kube_version: str) -> list[str]:
    """validate_manifests' lines (strict), from the reference validators."""
    version = "{}.{}".format(*charts._major_minor(kube_version))
    schema_dir = charts._schema_dir(version, True)
    lines = []
    for manifest in manifests:
        name = charts._describe(manifest)
        validator = _reference_validator(schema_dir, charts._schema_file(manifest), version)
        if validator is None:
            lines.append(
                f"{name}: no schema for {manifest.get('apiVersion')} {manifest.get('kind')} "
                f"in Kubernetes {version}"
            )
            continue
        error = next(iter(validator.iter_errors(manifest)), None)
        if error is not None:
            where = "/".join(str(part) for part in error.path) or "(top level)"
            lines.append(f"{name}: {where}: {error.message}")
    return lines


@pytest.fixture(scope="module")
def planned(example_report) -> list[tuple[str, list[dict[str, Any]]]]:
    """Every manifest the example federation's plan validates, by release: (its site's
    Kubernetes version, the release's manifests and operator workloads)."""
    from fedeploy.plan.monitoring import operator_workloads

    releases = []
    for name, site in sorted(example_report.sites.items()):
        cluster = getattr(example_report.federation.sites[name], "cluster", None)
        version = getattr(cluster, "version", None)
        if not version:
            continue
        for release in site.releases:
            checked = release.manifests + operator_workloads(release.operator_manifests)
            releases.append((str(version), copy.deepcopy(checked)))
    assert sum(len(m) for _, m in releases) >= 200, "the example plan validates fewer manifests"
    return releases


def _paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path into a manifest (dict keys and list indices), its root () included."""
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*path, index))


def _at(node: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


def _mutant(manifest: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A copy of `manifest` broken in one place, as a chart's template goes wrong."""
    mutant = copy.deepcopy(manifest)
    # Any place but the fields that choose the schema, and metadata itself (a report names it).
    path = rng.choice(
        [
            p
            for p in _paths(mutant)
            if p and p[0] not in ("apiVersion", "kind") and p != ("metadata",)
        ]
    )
    parent, last = _at(mutant, path[:-1]), path[-1]
    value = parent[last]
    kind = rng.choice(
        ["remove", "type", "unknown", "enum", "object-as-string", "item", "null", "nested"]
    )
    if kind == "remove" and isinstance(parent, dict):
        del parent[last]
    elif kind == "unknown":
        target = value if isinstance(value, dict) else parent
        if isinstance(target, dict):
            target[rng.choice(["extraField", "imagePullPolicyy", "zz", "aa"])] = "x"
        else:
            parent[last] = {"unexpected": True}
    elif kind == "enum" and isinstance(value, str):
        parent[last] = "NotAnAllowedValue"
    elif kind == "object-as-string" and isinstance(value, dict | list):
        parent[last] = "a string"
    elif kind == "item" and isinstance(value, list):
        value.append(rng.choice([7, "x", [1], {"unknownKey": 1}, None]))
    elif kind == "null":
        parent[last] = None
    elif kind == "nested" and isinstance(value, dict):
        value["nested"] = {"deeper": [{"name": 3}]}
    else:
        parent[last] = rng.choice([12, -1, 2.5, True, ["list"], {"a": "b"}, "text", ""])
    return mutant


def test_the_example_plans_manifests_and_their_mutants_answer_as_before(planned):
    rng = random.Random(35)
    compared = failing = 0
    messages: set[str] = set()
    for version, manifests in planned:
        assert charts.validate_manifests(manifests, version) == _reference_report(
            manifests, version
        )
        mutants = [_mutant(manifest, rng) for manifest in manifests for _ in range(3)]
        expected = _reference_report(mutants, version)
        assert charts.validate_manifests(mutants, version) == expected
        compared += len(mutants)
        failing += len(expected)
        messages.update(line.rsplit(": ", 1)[-1].split("(")[0][:25] for line in expected)
    # Hundreds of broken documents, and broken in many ways (the comparison is not vacuous).
    assert compared >= 600
    assert failing >= compared // 3
    assert len(messages) >= 30


def _crd(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"kind": "Widget", "plural": "widgets"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def test_a_recursive_schema_answers_as_before():
    """A CustomResourceDefinition's openAPIV3Schema is a JSONSchemaProps, which refers to itself
    (properties, items, additionalProperties, ... and a property named "$ref")."""
    deep = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "$ref": "#/definitions/x",
                "properties": {
                    "items": {
                        "type": "array",
                        "items": {"type": "object", "x-kubernetes-int-or-string": True},
                    },
                    "map": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            }
        },
    }
    documents = [_crd(deep)]
    broken = [
        ("properties", "spec", "properties", "items", "items", "type"),
        ("properties", "spec", "properties", "map", "additionalProperties"),
        ("properties", "spec", "$ref"),
        ("properties", "spec", "properties", "items"),
        ("properties", "spec", "properties", "items", "items", "x-kubernetes-int-or-string"),
        ("properties", "spec", "properties", "map", "type"),
        ("properties", "spec", "properties", "map", "required"),
        ("properties", "spec", "properties", "map", "unknownKeyword"),
        ("properties", "spec", "properties", "map", "additionalProperties", "minLength"),
    ]
    for path in broken:
        for wrong in (3, ["a"], {"unknownKeyword": 1}, None):
            document = _crd(copy.deepcopy(deep))
            _at(document, ("spec", "versions", 0, "schema", "openAPIV3Schema", *path[:-1]))[
                path[-1]
            ] = wrong
            documents.append(document)
    for version in ("1.29", "1.33"):
        expected = _reference_report(documents, version)
        assert charts.validate_manifests(documents, version) == expected
        assert len(expected) >= 15


def _validators_of(planned: list[tuple[str, list[dict[str, Any]]]]) -> list[Any]:
    """charts._validator's validators of the plan's Kubernetes objects (not custom resources)."""
    keys = set()
    for kube_version, manifests in planned:
        version = "{}.{}".format(*charts._major_minor(kube_version))
        for manifest in manifests:
            keys.add((charts._schema_dir(version, True), charts._schema_file(manifest), version))
    built = [charts._validator(*key) for key in sorted(keys)]
    return [v for v in built if v is not None and "$id" in v.schema]


def test_no_reference_is_looked_up_while_validating(planned, monkeypatch):
    """Every Kubernetes schema the plan uses is inlined whole: validating resolves nothing."""
    from referencing._core import Resolver

    charts._validator.cache_clear()
    crd = ("1.33", [_crd({"type": "object", "properties": {"a": {"items": {"type": 1}}}})])
    cases = [*planned, crd]
    validators = [*_validators_of(cases)]  # built before counting
    assert len(validators) >= 10
    for validator in validators:
        assert refs_left(validator.schema) == []
    lookups: list[str] = []
    original = Resolver.lookup

    def counted(self: Any, ref: str) -> Any:
        lookups.append(ref)
        return original(self, ref)

    monkeypatch.setattr(Resolver, "lookup", counted)
    reports = []
    for version, manifests in cases:
        broken = copy.deepcopy(manifests)
        for manifest in broken:
            manifest.setdefault("spec", {})["unknownField"] = 1
        reports += charts.validate_manifests(manifests + broken, version)
    assert lookups == []
    assert len(reports) >= len(validators)


_DEFINITIONS = {
    "$id": "https://example.com/defs.json",
    "$defs": {
        "Name": {"type": "string", "pattern": "^[a-z]+$"},
        "Node": {
            "type": "object",
            "properties": {
                "$ref": {"type": "string"},
                "name": {"$ref": "#/$defs/Name", "description": "only annotations beside"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
            },
            "additionalProperties": False,
        },
    },
}


def _registry(schema: dict[str, Any]) -> Any:
    from referencing import Registry
    from referencing.jsonschema import DRAFT202012

    registry = DRAFT202012.create_resource(schema) @ Registry()
    return DRAFT202012.create_resource(_DEFINITIONS) @ registry


def test_a_ref_becomes_an_all_of_in_its_place_or_its_target_where_only_annotations_are_beside():
    schema = {
        "$id": "https://example.com/root.json",
        "type": "object",
        "properties": {
            "name": {"$ref": "defs.json#/$defs/Name", "description": "d"},
            "tree": {"minProperties": 1, "$ref": "defs.json#/$defs/Node", "maxProperties": 3},
        },
    }
    before = copy.deepcopy(schema)
    inlined = inline_refs(schema, _registry(schema))
    assert schema == before
    name, tree = inlined["properties"]["name"], inlined["properties"]["tree"]
    assert name == _DEFINITIONS["$defs"]["Name"]
    assert list(tree) == ["minProperties", "allOf", "maxProperties"]
    node = tree["allOf"][0]
    # The recursive definition is one shared object: a cycle, not an endless copy.
    assert node["properties"]["children"]["items"] is node
    assert node["properties"]["$ref"] == {"type": "string"}  # a property, not a reference
    assert refs_left(inlined) == []
    assert sorted(refs_left(schema)) == ["defs.json#/$defs/Name", "defs.json#/$defs/Node"]


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        ({"$ref": "#/$defs/missing"}, "resolves nowhere"),
        ({"allOf": [{}], "$ref": "defs.json#/$defs/Name"}, "beside an allOf"),
        ({"$dynamicRef": "#node"}, "$dynamicRef"),
        ({"properties": {"a": {"unevaluatedProperties": False}}}, "unevaluatedProperties"),
        ({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}}, "cycle"),
    ],
)
def test_what_is_not_inlined_is_named(schema, reason):
    schema = {"$id": "https://example.com/root.json", **schema}
    with pytest.raises(NotInlinable, match=reason.replace("$", r"\$")):
        inline_refs(schema, _registry(schema))
