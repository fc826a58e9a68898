"""What the readers of one stack file make of its unquoted scalars and keys, in words.

fedeploy reads a stack file as YAML 1.1 (PyYAML); `pulumi up` gives the program what Pulumi
read of the same file (go-yaml: `010` is 8, as in YAML 1.1, but `09`, `1e9` and `0o17` are
numbers, which YAML 1.1 reads as text); editors, linters and YAML 1.2 libraries read it by the
YAML 1.2 core schema (`010` is 10). A plain scalar they read differently is refused, with
what each made of it and how to write it so that all read the same."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

_INT_TAG, _FLOAT_TAG = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
TYPE_WORDS = {
    "tag:yaml.org,2002:bool": "a boolean",
    _INT_TAG: "a number",
    _FLOAT_TAG: "a number",
    "tag:yaml.org,2002:null": "null",
    "tag:yaml.org,2002:timestamp": "a date",
}
# Numbers every YAML reader reads alike: no leading zero, no 0x/0o/0b, `_` or sexagesimal `:`.
PLAIN_NUMBER = re.compile(
    r"[-+]?((0|[1-9][0-9]*)(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)"
)
# A number to YAML 1.2 (core schema) and to go-yaml (Pulumi): where YAML 1.1 reads the same
# text as a string (`1e9`, `1.0e3`, `09`, `0o17`), the readers disagree.
_YAML12_NUMBER = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|0o[0-7]+")
# An integer with a leading zero that YAML 1.1 and go-yaml read as octal, YAML 1.2 as decimal.
_OCTAL_LOOKING = re.compile(r"[-+]?0[0-7]+")
_LONGEST_SHOWN = 24


def number_elsewhere(text: str) -> Decimal | None:
    """The number that Pulumi and YAML 1.2 readers make of an unquoted `text` that YAML 1.1
    read as a string (`1e9`, `09`, `0o17`); None when they read it as a string too."""
    if not _YAML12_NUMBER.fullmatch(text):
        return None
    if text.startswith("0o"):
        return Decimal(int(text[2:], 8))
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
        return None


def plain_decimal(value: Decimal) -> str:
    """`value` written as every YAML reader reads it alike: a plain decimal (1000000000,
    0.00001), or where that would be long, with a '.' and a signed exponent (1.5e+300)."""
    if value == value.to_integral_value():
        shown = str(int(value))
    else:
        shown = format(value.normalize(), "f")
    if len(shown) <= _LONGEST_SHOWN:
        return shown
    mantissa, _, exponent = f"{value.normalize():e}".partition("e")
    return f"{mantissa if '.' in mantissa else mantissa + '.0'}e{exponent}"


def disagreement(text: str, tag: str, read: Any) -> tuple[str, str] | None:
    """(what the readers make of the unquoted `text`, how to write the number meant) where
    they disagree on it; None where they agree. `tag` and `read`: YAML 1.1's tag and value."""
    if tag in (_INT_TAG, _FLOAT_TAG):
        if PLAIN_NUMBER.fullmatch(text):
            return None
        if _OCTAL_LOOKING.fullmatch(text) and int(text, 10) == read:  # 0000, 04: the same here
            return (
                f"the unquoted {text} has leading zeros, which YAML readers read apart (octal "
                "in YAML 1.1 (fedeploy) and Pulumi, decimal in YAML 1.2: here both give "
                f"{read!r}, but 010 would not)",
                "without the leading zeros",
            )
        if _OCTAL_LOOKING.fullmatch(text):
            return (
                f"the unquoted {text} is read as {read!r} by YAML 1.1 (fedeploy) and Pulumi "
                f"(octal), as {int(text, 10)} by YAML 1.2 readers (decimal)",
                "without the leading zero",
            )
        return (
            f"the unquoted {text} is read as {read!r} by YAML 1.1 (fedeploy) but not by every "
            "YAML 1.2 reader (leading zeros, 0x, 0b, _ and : differ between them)",
            "",
        )
    elsewhere = number_elsewhere(text) if isinstance(read, str) else None
    if elsewhere is None:
        return None
    shown = plain_decimal(elsewhere)
    return (
        f"the unquoted {text} is read as the text {text!r} by YAML 1.1 (fedeploy), as the "
        f"number {shown} by Pulumi and YAML 1.2 readers",
        shown,
    )


def loc_item(key: Any) -> str | int:
    """What pydantic names a mapping's key in an error's location: a string as it is, an int
    (a bool as 0 or 1) as an int, anything else by its repr (1.1 -> '1.1', None -> 'None')."""
    if isinstance(key, str):
        return key
    if isinstance(key, int):
        return int(key)
    return repr(key)


def key_record(parent: str, item: str | int) -> str:
    """The index of a mapping key YAML did not read as a string: the key path of its mapping
    as written (`site.tags`) and what pydantic names the key (loc_item)."""
    return f"{parent}\x00{item}"
