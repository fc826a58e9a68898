"""JSON Schema (Draft 2020-12) with its `$ref`s resolved once, for charts.py's validators.

jsonschema resolves a `$ref` through its `referencing` registry each time a document reaches
it (a URI join, a registry lookup and a JSON pointer walk per reference, per document);
kubernetes-validate's schemas are mostly references into their version's `_definitions.json`.
`inline_refs` resolves each one once, when the validator is built: a subschema
`{"$ref": R, ...siblings}` becomes the same keywords with `$ref` replaced in place by
`"allOf": [R resolved]`, which jsonschema applies as it applies `$ref` (same instance path,
same message, same order), or by R resolved itself where every sibling is an annotation
(`description`, `x-kubernetes-*`: keywords that validate nothing). Each target is resolved
once and shared, so recursive definitions become a cyclic object graph, which jsonschema
walks by instance. jsonschema is imported inside, as charts.py imports it.
"""

from __future__ import annotations

from typing import Any

# Draft 2020-12's keywords whose values are subschemas: one, a list of them, a mapping to them
# (referencing.jsonschema's DRAFT202012 subresources).
_ONE = frozenset(
    {
        "additionalProperties",
        "contains",
        "contentSchema",
        "else",
        "if",
        "items",
        "not",
        "propertyNames",
        "then",
    }
)
_LIST = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_NAMED = frozenset({"$defs", "definitions", "dependentSchemas", "patternProperties", "properties"})
# Keywords whose meaning a resolved copy would not keep: dynamic scopes, and the annotations
# that jsonschema collects differently through `$ref` and `allOf`.
_UNSUPPORTED = frozenset(
    {"$dynamicRef", "$recursiveRef", "unevaluatedItems", "unevaluatedProperties"}
)


class NotInlinable(Exception):
    """The schema has what `inline_refs` does not resolve (a keyword of _UNSUPPORTED, a `$ref`
    beside an `allOf`, a reference that resolves nowhere, a `$ref` cycle with nothing between);
    the message says which. Validate it through a registry instead."""


def inline_refs(schema: Any, registry: Any) -> Any:
    """`schema` (a dict or bool, Draft 2020-12) with every `$ref` applied by a subschema
    keyword resolved, against `registry` (a `referencing.Registry` holding what it refers to,
    `schema` itself included where it refers to itself). Returns a copy of every subschema
    reached (one per original, so each target is shared); never changes its inputs. Raises
    NotInlinable."""
    from referencing.jsonschema import DRAFT202012

    root = registry.resolver_with_root(DRAFT202012.create_resource(schema))
    return _Inliner().inline(schema, root)


class _Inliner:
    def __init__(self) -> None:
        from jsonschema import Draft202012Validator

        self._validators = frozenset(Draft202012Validator.VALIDATORS)
        # id of an original subschema -> (the original, kept alive so ids stay unique; its copy)
        self._done: dict[int, tuple[Any, Any]] = {}
        self._aliasing: set[int] = set()

    def inline(self, schema: Any, resolver: Any) -> Any:
        """`schema` resolved, reached with `resolver` (its base URI): its copy, shared."""
        from referencing.exceptions import Unresolvable
        from referencing.jsonschema import DRAFT202012

        if not isinstance(schema, dict):
            return schema
        done = self._done.get(id(schema))
        if done is not None:
            return done[1]
        # As jsonschema descends: a subschema's own $id, if any, is the base of its references.
        here = resolver.in_subresource(DRAFT202012.create_resource(schema))
        unsupported = _UNSUPPORTED.intersection(schema)
        if unsupported:
            raise NotInlinable(f"keyword {sorted(unsupported)[0]} is not inlined")
        if "$ref" in schema:
            ref = schema["$ref"]
            try:
                resolved = here.lookup(ref)
            except Unresolvable as error:
                raise NotInlinable(f"$ref {ref!r} resolves nowhere: {error}") from error
            if self._validators.isdisjoint(set(schema) - {"$ref"}):
                # Only annotations beside the reference: the subschema validates as its target.
                if id(schema) in self._aliasing:
                    raise NotInlinable(f"$ref {ref!r} is in a cycle of references alone")
                self._aliasing.add(id(schema))
                target = self.inline(resolved.contents, resolved.resolver)
                self._aliasing.discard(id(schema))
                self._done[id(schema)] = (schema, target)
                return target
            if "allOf" in schema:
                raise NotInlinable(f"$ref {ref!r} beside an allOf")
        copy: dict[str, Any] = {}
        self._done[id(schema)] = (schema, copy)
        for keyword, value in schema.items():
            if keyword == "$ref":
                copy["allOf"] = [self.inline(resolved.contents, resolved.resolver)]
            elif keyword in _ONE:
                copy[keyword] = self.inline(value, here)
            elif keyword in _LIST and isinstance(value, list):
                copy[keyword] = [self.inline(item, here) for item in value]
            elif keyword in _NAMED and isinstance(value, dict):
                copy[keyword] = {name: self.inline(item, here) for name, item in value.items()}
            else:
                copy[keyword] = value
        return copy


def refs_left(schema: Any) -> list[str]:
    """The `$ref`s (and `$dynamicRef`s) that a validator of `schema` would still resolve, each
    once: empty for what inline_refs returns. Follows subschema keywords only (a property
    named "$ref" is no reference); cycles are fine."""
    seen: set[int] = set()
    left: list[str] = []
    pending = [schema]
    while pending:
        node = pending.pop()
        if not isinstance(node, dict) or id(node) in seen:
            continue
        seen.add(id(node))
        left.extend(str(node[k]) for k in ("$ref", "$dynamicRef") if k in node)
        for keyword, value in node.items():
            if keyword in _ONE:
                pending.append(value)
            elif keyword in _LIST and isinstance(value, list):
                pending.extend(value)
            elif keyword in _NAMED and isinstance(value, dict):
                pending.extend(value.values())
    return left
