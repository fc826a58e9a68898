"""The key reference of docs/configuration.md, generated from the models' own descriptions."""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from fedeploy.config.site import MODELS

START, END = "<!-- reference:start -->", "<!-- reference:end -->"


def _models_in(tp: Any) -> list[type[BaseModel]]:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    return [m for arg in typing.get_args(tp) for m in _models_in(arg)]


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _type_name(typing.get_args(tp)[0])
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(tp))
    if origin in (typing.Union, __import__("types").UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        key, value = typing.get_args(tp)
        return f"map of {_type_name(key)} to {_type_name(value)}"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return f"[{tp.__name__}](#{tp.__name__.lower()})"
    name = getattr(tp, "__name__", str(tp))
    return {
        "SecretValue": "**secret**",
        "str": "string",
        "int": "integer",
        "float": "number",
        "bool": "boolean",
        "HttpUrl": "URL",
    }.get(name, name)


def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        if _models_in(field.annotation):
            return "see below"
        return "`{}`" if typing.get_origin(_unwrap(field.annotation)) is dict else "`[]`"
    value = field.default
    if value is PydanticUndefined or value is None:
        return "unset"
    return f"`{value}`".replace("|", "\\|")


def reference() -> str:
    """Markdown tables: one per model, each key with its type, default and description."""
    seen: list[type[BaseModel]] = []
    queue: list[type[BaseModel]] = list(MODELS.values())
    while queue:
        model = queue.pop(0)
        if model in seen:
            continue
        seen.append(model)
        for field in model.model_fields.values():
            queue.extend(_models_in(field.annotation))
    parts = [
        START,
        "",
        "_Generated from the site model (`fedeploy config-reference`); do not edit by hand._",
        "",
    ]
    for model in seen:
        doc = (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else ""
        parts += [
            f"### {model.__name__}",
            "",
            doc,
            "",
            "| key | type | default | description |",
            "|---|---|---|---|",
        ]
        for name, field in model.model_fields.items():
            description = (field.description or "").replace("|", "\\|").replace("\n", " ")
            parts.append(
                f"| `{field.alias or name}` | {_type_name(field.annotation)} | {_default(field)} "
                f"| {description} |"
            )
        parts.append("")
    parts.append(END)
    return "\n".join(parts)


EXAMPLE = re.compile(r"(<!-- example:(?P<name>[a-z0-9-]+) -->\n)```yaml\n.*?```", re.S)


def splice(document: str, stacks_dir: Path) -> str:
    """The document with its generated reference and its embedded example stacks made current."""
    head, _, rest = document.partition(START)
    _, _, tail = rest.partition(END)
    document = head + reference() + tail

    def example(match: re.Match[str]) -> str:
        text = (stacks_dir / f"Pulumi.{match['name']}.yaml").read_text()
        return f"{match.group(1)}```yaml\n{text}```"

    return EXAMPLE.sub(example, document)
