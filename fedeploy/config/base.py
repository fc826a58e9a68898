"""Building blocks shared by every part of the site config model."""

from __future__ import annotations

import functools
import ipaddress
import re
import types
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    ValidationInfo,
    WrapValidator,
    model_validator,
)
from pydantic.functional_serializers import PlainSerializer
from pydantic.json_schema import WithJsonSchema
from pydantic_core import PydanticCustomError

_UNIONS = (typing.Union, types.UnionType)

if TYPE_CHECKING:
    import pulumi


class StrictModel(BaseModel):
    """A config section: unknown keys are errors, values are immutable once validated, and a
    boolean is never taken for a number (pydantic would make `expire_after_days: yes`, which
    YAML 1.1 reads as true, one day)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)

    @model_validator(mode="before")
    @classmethod
    def _no_boolean_numbers(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        numbers = _number_fields(cls)
        found = {
            k: BooleanGiven(v) for k, v in data.items() if k in numbers and isinstance(v, bool)
        }
        return {**data, **found} if found else data


class BooleanGiven:
    """A boolean given where a number belongs: no number validator accepts it, and the error
    shows it as `True (a boolean)`."""

    def __init__(self, value: bool) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"{self.value} (a boolean)"


@functools.cache
def _number_fields(model: type[BaseModel]) -> frozenset[str]:
    """The fields of `model` whose type is a number (int or float, optional or not)."""
    names = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        options = typing.get_args(annotation) if typing.get_origin(annotation) in _UNIONS else ()
        if annotation in (int, float) or any(option in (int, float) for option in options):
            names.add(name)
    return frozenset(names)


# Site names become parts of bucket names, Kubernetes labels and stack names.
NAME_PATTERN = r"^[a-z][a-z0-9-]{1,22}[a-z0-9]$"
Name = Annotated[
    str,
    Field(
        pattern=NAME_PATTERN,
        description="Lower-case letters, digits and '-', 3 to 24 characters, starting with a letter.",
    ),
]


@dataclass(frozen=True)
class SecretValue:
    """A secret from the stack file: its value, or None where it cannot be decrypted (offline)."""

    value: str | None
    pending: bool = False  # the placeholder `{pending: <note>}`: not issued yet (PENDING_SECRET)

    @property
    def known(self) -> bool:
        return self.value is not None

    def output(self) -> pulumi.Output[str]:
        """The value as a Pulumi secret; an unknown secret when it could not be decrypted."""
        import pulumi

        if self.value is not None:
            return pulumi.Output.secret(self.value)
        return unknown_secret()

    def __repr__(self) -> str:  # never print the value, not even in a traceback
        return "SecretValue(***)" if self.known else "SecretValue(<unknown>)"

    __str__ = __repr__


def unknown_secret() -> pulumi.Output[Any]:
    """An Output that is secret and unknown, as `pulumi preview` shows an undecryptable value."""
    import asyncio

    import pulumi

    def done(value: Any) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_event_loop().create_future()
        fut.set_result(value)
        return fut

    return pulumi.Output(set(), done(None), done(False), done(True))


# What `pulumi config set --secret` writes: `v1:<nonce>:<ciphertext>` (passphrase provider) or
# one base64 blob (Pulumi Cloud, awskms, azurekeyvault, gcpkms, hashivault).
_CIPHERTEXT = re.compile(
    r"^(v1:[A-Za-z0-9+/]+={0,2}:[A-Za-z0-9+/]+={0,2}|(?=.{16,}$)([A-Za-z0-9+/]{4})*"
    r"([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?)$"
)


def ciphertext_problem(value: Any) -> str | None:
    """Why a `{secure: ...}` value is not ciphertext Pulumi wrote (a placeholder, a plain
    value), or None when it looks like ciphertext. Never echoes the value."""
    text = value.get("secure") if isinstance(value, dict) else None
    if isinstance(text, str) and _CIPHERTEXT.match(text):
        return None
    return (
        "`secure:` must hold the ciphertext `pulumi config set --secret` writes "
        "(v1:<nonce>:<ciphertext>, or base64), not a placeholder or a plain value"
    )


PENDING_SECRET = "pending"


def _parse_secret(value: Any, handler: Any, info: ValidationInfo) -> SecretValue:
    if isinstance(value, SecretValue):
        return value
    context = info.context or {}
    if isinstance(value, dict) and set(value) == {PENDING_SECRET}:
        # A secret not issued yet: the offline plan goes on with a stand-in (and an advisory);
        # `pulumi up` must never deploy it.
        if context.get("deploying"):
            raise PydanticCustomError(
                "pending_secret",
                "a pending secret (`pending:` placeholder) cannot be deployed: set it first with "
                "`pulumi config set --secret --path '<key path>' <value>`",
            )
        return SecretValue(None, pending=True)
    if isinstance(value, dict) and set(value) == {"secure"}:
        if ciphertext_problem(value):
            raise PydanticCustomError("secret_not_ciphertext", ciphertext_problem(value) or "")
        # The ciphertext of `pulumi config set --secret`: only the Pulumi CLI can decrypt it.
        return SecretValue(None)
    if isinstance(value, str) and context.get("secrets_decrypted"):
        # Under `pulumi up` the CLI hands the decrypted object over and marks it secret.
        return SecretValue(value)
    if isinstance(value, str):
        raise PydanticCustomError(
            "plaintext_secret",
            "a plaintext value where a secret is required: set it with "
            "`pulumi config set --secret --path '<key path>' <value>` so the stack file holds "
            "`secure: <ciphertext>`",
        )
    raise PydanticCustomError(
        "secret_type",
        "a secret is required: `secure: <ciphertext>` set by `pulumi config set --secret`",
    )


Secret = Annotated[
    SecretValue,
    WrapValidator(_parse_secret),
    PlainSerializer(lambda s: "[secret]", return_type=str),
    WithJsonSchema(
        {
            "type": "object",
            "properties": {"secure": {"type": "string", "pattern": _CIPHERTEXT.pattern}},
            "required": ["secure"],
            "additionalProperties": False,
            "description": "A secret: set with `pulumi config set --secret --path ...`.",
        }
    ),
]


def no_userinfo(value: Any) -> Any:
    """Refuse `user:password@` in a URL before it is parsed, so no message echoes it."""
    if isinstance(value, str) and "@" in urlsplit(value.strip()).netloc:
        raise PydanticCustomError(
            "url_userinfo",
            "a URL must not carry a user name or password (user:password@host): the URL is "
            "printed in plans and exported in stack outputs; give credentials in their own "
            "secret keys",
        )
    return value


Url = Annotated[HttpUrl, BeforeValidator(no_userinfo)]
"""An http(s) URL without credentials in it (it reaches stack outputs and reports)."""


HOST_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$"


def _host(value: str) -> str:
    """A name whose last label is all digits must be an IPv4 address (10.0.0.256 is a typo)."""
    if value.rsplit(".", 1)[-1].isdigit():
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            raise ValueError(f"{value!r} is neither a DNS name nor an IPv4 address") from None
    return value


HostName = Annotated[
    str,
    Field(
        pattern=HOST_PATTERN,
        max_length=253,
        description="A DNS name or an IPv4 address (no scheme, port or path).",
    ),
    AfterValidator(_host),
]
"""A host name or address, as a client connects to it."""

Word = Annotated[str, Field(pattern=r"^[^\s]+$", max_length=253)]
"""A name without spaces or line breaks (a kubeconfig context, a token audience)."""
