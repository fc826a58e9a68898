"""Reads a stack file's `fedeploy:site` object and validates it, reporting every problem at once."""

from __future__ import annotations

import difflib
import functools
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from fedeploy.config.site import KINDS, MODELS
from fedeploy.errors import ConfigIssue, StackConfigError

PROJECT = "fedeploy"
SITE_KEY = f"{PROJECT}:site"
STACK_FILE = re.compile(r"^Pulumi\.(?P<stack>[^.]+)\.ya?ml$")
STACK_NAME = re.compile(r"^[a-z][a-z0-9-]{1,22}[a-z0-9]$")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Error types whose input may be a secret's plaintext: never echo it.
_HIDDEN_INPUT = {"plaintext_secret", "secret_type"}


@dataclass(frozen=True)
class StackFile:
    """A stack file on disk: its path, the stack (site) name, and its raw `fedeploy:site` object."""

    path: Path
    stack: str
    raw: Any


def stack_name_of(path: Path) -> str:
    match = STACK_FILE.match(path.name)
    if not match:
        raise StackConfigError(
            str(path), [ConfigIssue("file name", "a stack file is named Pulumi.<site>.yaml")]
        )
    return match["stack"]


def read_stack_file(path: Path) -> StackFile:
    """Parse the YAML and find the site object; problems here are reported like config problems."""
    stack = stack_name_of(path)
    issues: list[ConfigIssue] = []
    if not STACK_NAME.match(stack):
        issues.append(
            ConfigIssue(
                "stack name",
                f"{stack!r} is not a valid site name: lower-case letters, digits and '-', "
                "3 to 24 characters, starting with a letter",
            )
        )
    try:
        document = yaml.load(path.read_text(), Loader=_LOADER)
    except FileNotFoundError:
        raise StackConfigError(str(path), [ConfigIssue("file", "does not exist")]) from None
    except yaml.YAMLError as err:
        raise StackConfigError(
            str(path), [ConfigIssue("file", f"is not valid YAML: {err}")]
        ) from None
    config = document.get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        raise StackConfigError(
            str(path), [ConfigIssue("config", "the file has no `config:` mapping")]
        )
    for key in config:
        if str(key).startswith(f"{PROJECT}:") and key != SITE_KEY:
            issues.append(
                ConfigIssue(f"config.{key}", f"unknown key{_did_you_mean(key, [SITE_KEY])}")
            )
    if SITE_KEY not in config:
        issues.append(ConfigIssue(f"config.{SITE_KEY}", "is required: the site object"))
    if issues:
        raise StackConfigError(str(path), issues)
    return StackFile(path=path, stack=stack, raw=config[SITE_KEY])


def load_stack_file(path: Path, *, check_federation: bool = True) -> tuple[StackFile, Any]:
    """Read and validate one stack file; sibling stack files answer the cross-site checks."""
    stack_file = read_stack_file(path)
    site = validate_site(
        stack_file.raw,
        stack_file=str(path),
        stacks_dir=path.parent if check_federation else None,
        stack=stack_file.stack,
    )
    return stack_file, site


def validate_site(
    raw: Any,
    *,
    stack_file: str,
    stacks_dir: Path | None = None,
    stack: str | None = None,
    secrets_decrypted: bool = False,
) -> Any:
    """Validate a raw site object into its typed model, or raise StackConfigError with every issue."""
    if raw is None:
        raise StackConfigError(
            stack_file, [ConfigIssue(f"config.{SITE_KEY}", "is required: the site object")]
        )
    if not isinstance(raw, dict):
        raise StackConfigError(
            stack_file, [ConfigIssue("site", f"must be a mapping, got {type(raw).__name__}")]
        )
    kind = raw.get("kind")
    if kind not in KINDS:
        given = "nothing" if kind is None else repr(kind)
        raise StackConfigError(
            stack_file,
            [
                ConfigIssue(
                    "site.kind",
                    f"given {given}; allowed: {', '.join(KINDS)}"
                    + (_did_you_mean(str(kind), KINDS) if kind is not None else ""),
                )
            ],
        )
    model = MODELS[kind]
    issues: list[ConfigIssue] = []
    site = None
    try:
        site = model.model_validate(raw, context={"secrets_decrypted": secrets_decrypted})
    except ValidationError as err:
        issues += [_issue(model, e) for e in err.errors()]
    if stacks_dir is not None:
        issues += federation_issues(raw, stacks_dir, stack)
    if issues:
        raise StackConfigError(stack_file, issues)
    return site


def federation_issues(
    raw: dict[str, Any], stacks_dir: Path, stack: str | None
) -> list[ConfigIssue]:
    """Checks that need the other stack files: replication targets and hub members exist."""
    issues: list[ConfigIssue] = []
    siblings = _sibling_sites(stacks_dir)
    available = ", ".join(sorted(siblings)) or "none"
    buckets = (raw.get("storage") or {}).get("buckets") or {}
    for name, bucket in buckets.items() if isinstance(buckets, dict) else []:
        target = (bucket or {}).get("replicate_to") if isinstance(bucket, dict) else None
        if not isinstance(target, dict) or not isinstance(target.get("site"), str):
            continue
        path = f"site.storage.buckets.{name}.replicate_to"
        other = siblings.get(target["site"])
        if target["site"] == stack:
            issues.append(ConfigIssue(f"{path}.site", "a bucket cannot replicate to its own site"))
        elif other is None:
            issues.append(
                ConfigIssue(
                    f"{path}.site",
                    f"unknown replication target {target['site']!r}: no stack file "
                    f"Pulumi.{target['site']}.yaml in {stacks_dir} (sites there: {available})"
                    + _did_you_mean(target["site"], list(siblings)),
                )
            )
        elif other.get("kind") != "aws":
            issues.append(
                ConfigIssue(
                    f"{path}.site",
                    f"replication target {target['site']!r} is a {other.get('kind')!r} site; "
                    "S3 replication needs an aws site",
                )
            )
        else:
            other_buckets = (other.get("storage") or {}).get("buckets") or {}
            wanted = target.get("bucket")
            if wanted not in other_buckets:
                issues.append(
                    ConfigIssue(
                        f"{path}.bucket",
                        f"site {target['site']!r} has no bucket {wanted!r} (it has: "
                        f"{', '.join(sorted(other_buckets)) or 'none'})",
                    )
                )
            elif (other_buckets[wanted] or {}).get("versioning", True) is False:
                issues.append(
                    ConfigIssue(
                        f"{path}.bucket",
                        f"bucket {wanted!r} of site {target['site']!r} has versioning off; "
                        "a replication target must be versioned",
                    )
                )
    if raw.get("kind") == "hub":
        for index, member in enumerate(raw.get("members") or []):
            if not isinstance(member, str):
                continue
            other = siblings.get(member)
            if member == stack:
                issues.append(
                    ConfigIssue(f"site.members.{index}", "the hub cannot be its own member")
                )
            elif other is None:
                issues.append(
                    ConfigIssue(
                        f"site.members.{index}",
                        f"unknown site {member!r}: no stack file Pulumi.{member}.yaml in "
                        f"{stacks_dir} (sites there: {available})"
                        + _did_you_mean(member, list(siblings)),
                    )
                )
            elif other.get("kind") == "hub":
                issues.append(
                    ConfigIssue(f"site.members.{index}", f"{member!r} is a hub, not a site")
                )
    return issues


def _sibling_sites(stacks_dir: Path) -> dict[str, dict[str, Any]]:
    """The raw site objects of every stack file in the directory (read once while unchanged:
    each of N stacks checks against all others, which would otherwise parse N² files)."""
    files = []
    for path in sorted(stacks_dir.glob("Pulumi.*.y*ml")):
        stat = path.stat()
        files.append((path.name, stat.st_mtime_ns, stat.st_size))
    return _read_sites(str(stacks_dir.resolve()), tuple(files))


@functools.lru_cache(maxsize=8)
def _read_sites(
    directory: str, files: tuple[tuple[str, int, int], ...]
) -> dict[str, dict[str, Any]]:
    sites: dict[str, dict[str, Any]] = {}
    for name, _, _ in files:
        match = STACK_FILE.match(name)
        if not match:
            continue
        try:
            document = yaml.load(Path(directory, name).read_text(), Loader=_LOADER)
            config = (document or {}).get("config") or {}
        except (yaml.YAMLError, AttributeError, OSError):
            continue
        site = config.get(SITE_KEY)
        if isinstance(site, dict):
            sites[match["stack"]] = site
    return sites


def _issue(model: type[BaseModel], error: Any) -> ConfigIssue:
    loc = tuple(error["loc"])
    kind = error["type"]
    if loc and loc[-1] == "[key]":  # a mapping's key (a bucket or node group name) is bad
        path = ".".join(["site", *map(str, loc[:-1])])
        return ConfigIssue(path, f"the name {loc[-2]!r} is not allowed: {_allowed(error['msg'])}")
    path = ".".join(["site", *map(str, loc)])
    if kind == "extra_forbidden":
        known = _field_names(model, loc[:-1])
        return ConfigIssue(
            path,
            f"unknown key {str(loc[-1])!r}{_did_you_mean(str(loc[-1]), known)}; "
            f"allowed: {', '.join(sorted(known))}",
        )
    message = _allowed(error["msg"])
    if kind == "missing":
        described = _description(model, loc)
        return ConfigIssue(path, "is required" + (f": {described}" if described else ""))
    if kind in _HIDDEN_INPUT:
        return ConfigIssue(path, f"given [hidden]; {message}")
    given = _shorten(repr(error.get("input")))
    if kind.startswith("value_error") or kind == "assertion_error":
        return ConfigIssue(path, message)
    return ConfigIssue(path, f"given {given}; allowed: {message}")


def _allowed(msg: str) -> str:
    msg = re.sub(r"^Value error, ", "", msg)
    return re.sub(r"^(Input|String|List|Dictionary) should (be|match|have)", r"must \2", msg)


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _did_you_mean(word: str, candidates: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> Any:
    """The model class or type that sits at `loc` inside `model`, following dicts and lists."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        elif typing.get_origin(current) in (dict, list, tuple):
            args = typing.get_args(current)
            current = args[-1] if args else None
        else:
            return None
    return _unwrap(current)


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
            models = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = models[0] if len(models) == 1 else tp
            if len(models) != 1:
                return tp
        else:
            return tp


def _field_names(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    target = _model_at(model, loc)
    if isinstance(target, type) and issubclass(target, BaseModel):
        return list(target.model_fields)
    return []


def _description(model: type[BaseModel], loc: tuple[Any, ...]) -> str | None:
    parent = _model_at(model, loc[:-1])
    if isinstance(parent, type) and issubclass(parent, BaseModel):
        field = parent.model_fields.get(str(loc[-1]))
        return field.description if field else None
    return None


__all__ = ["StackFile", "load_stack_file", "read_stack_file", "validate_site"]
