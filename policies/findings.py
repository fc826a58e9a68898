"""What the rules look at, what they report and what a rule is, independent of who runs them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

Enforcement = Literal["mandatory", "advisory"]


@dataclass(frozen=True)
class Subject:
    """A resource as a rule sees it: type, logical name, input properties (camelCase, as the
    engine names them), the paths of inputs that are secret, and its provider's properties."""

    type: str
    name: str
    props: dict[str, Any]
    secret_paths: tuple[str, ...] = ()
    provider_props: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, order=True)
class Finding:
    """A rule broken by a resource or a rendered manifest."""

    rule: str
    resource: str
    message: str
    enforcement: Enforcement = "mandatory"


@dataclass(frozen=True)
class Rule:
    """A named check over all resources of a stack."""

    name: str
    description: str
    enforcement: Enforcement
    check: Callable[[list[Subject]], Iterable[Finding]]
