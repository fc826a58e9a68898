"""Reads a stack file's `fedeploy:site` object and validates it, reporting every problem at once:
the YAML (duplicate keys, what YAML 1.1 made of unquoted words), the site model, then the checks
across the stack files of its directory, on validated models only."""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import functools
import os
import re
import reprlib
import stat
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from fedeploy.config.base import NAME_PATTERN, BooleanGiven, Name, ciphertext_problem
from fedeploy.config.site import MODELS
from fedeploy.config.site_base import KINDS, STORAGE_ONLY_KINDS, a_kind_site, is_storage_only
from fedeploy.config.yaml_words import TYPE_WORDS, disagreement, key_record, loc_item
from fedeploy.errors import ConfigIssue, StackConfigError
from fedeploy.gpu_flavors import is_gpu_flavor
from fedeploy.network import overlapping
from fedeploy.project import PROJECT_NAME
from fedeploy.references import references

PROJECT = PROJECT_NAME  # the namespace of `fedeploy:site`, Pulumi.yaml's `name`
SITE_KEY = f"{PROJECT}:site"
# Pulumi reads a stack's settings from Pulumi.<stack>.yaml only (never .yml).
STACK_FILE = re.compile(r"^Pulumi\.(?P<stack>[^.]+)\.yaml$")
# A file meant as one that Pulumi would never read: another case, separator or extension.
_NEAR_STACK_FILE = re.compile(r"^pulumi[-_.]?(?P<stack>.+?)\.ya?ml$", re.IGNORECASE)
_PROJECT_FILES = ("Pulumi.yaml", "Pulumi.yml")
STACK_NAME = re.compile(r"^[a-z][a-z0-9-]{1,22}[a-z0-9]$")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Error types whose input may be a secret's plaintext: never echo it.
_HIDDEN_INPUT = {"plaintext_secret", "secret_type", "secret_not_ciphertext", "url_userinfo"}
_STR_TAG = "tag:yaml.org,2002:str"
_UNIONS = (typing.Union, types.UnionType)
# A key's description that says what is allowed in words (a range, the characters, a count):
# shown instead of its regular expression.
# A pattern said in words where the key's own description does not (a list item's type).
_PATTERN_WORDS: dict[str, str | None] = {NAME_PATTERN: typing.get_args(Name)[1].description}
_SAYS_ALLOWED = re.compile(r"\d+ to \d+|characters|digits|five-field")
# What a message shows of a given value: bounded, however large (or self-referencing, through
# YAML aliases) the value is.
_GIVEN = reprlib.Repr()
_GIVEN.maxlevel, _GIVEN.maxlist, _GIVEN.maxtuple, _GIVEN.maxdict = 2, 4, 4, 4
_GIVEN.maxstring = _GIVEN.maxother = 60
_TYPE_WORDS = TYPE_WORDS


@dataclass(frozen=True)
class StackFile:
    """A stack file on disk: its path, the stack (site) name, its raw `fedeploy:site` object,
    the whole `config:` mapping, the source text and tag of every unquoted scalar in the site
    object that YAML read as something other than a string, or as a string that Pulumi and
    YAML 1.2 read as a number (`1e9`), by key path (e.g. `site.cluster.version`), and of every
    key of it that YAML read as something other than a string (`on:`, the boolean true), by
    yaml_words.key_record."""

    path: Path
    stack: str
    raw: Any
    config: dict[str, Any] = field(default_factory=dict)
    plain_scalars: dict[str, tuple[str, str]] = field(default_factory=dict)
    plain_keys: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckedStack:
    """A valid stack file, its site model and the notes on it: advisories, and federation
    checks skipped because a file they need is invalid."""

    stack_file: StackFile
    site: Any
    notes: list[ConfigIssue]


NO_SUCH_DIRECTORY = "no such directory"
NO_STACK_FILES = "no stack files (Pulumi.<site>.yaml) in it"


def stacks_dir_problem(stacks_dir: Path, *, need_stack_files: bool = True) -> str | None:
    """What keeps `stacks_dir` from being read as a stacks directory, in the words every command
    prints after `stacks directory <path>: `: NO_SUCH_DIRECTORY (a file too), NO_STACK_FILES
    (with `need_stack_files`), or that it cannot be listed; None when it can be read."""
    if not stacks_dir.is_dir():
        return NO_SUCH_DIRECTORY
    try:
        names = [p.name for p in stacks_dir.iterdir()]
    except OSError as err:
        return f"cannot be read ({err.strerror})"
    if need_stack_files and not any(STACK_FILE.match(name) for name in names):
        return NO_STACK_FILES
    return None


def _nearby_directory(stacks_dir: Path, shown: str | Path) -> str:
    """` (did you mean 'stacks'?)` when a directory beside a missing `stacks_dir` is named
    like it: shown as `shown`'s sibling."""
    parent = stacks_dir.parent if str(stacks_dir.parent) else Path(".")
    try:
        nearby = [p.name for p in parent.iterdir() if p.is_dir()]
    except OSError:
        nearby = []
    close = difflib.get_close_matches(stacks_dir.name, nearby, n=1, cutoff=0.6)
    if not close:
        return ""
    return f" (did you mean {str(Path(shown).parent / close[0]).removeprefix('./')!r}?)"


def require_stacks_dir(stacks_dir: Path, *, need_stack_files: bool = True) -> None:
    """Raise FederationError (exit 2) unless `stacks_dir` is a directory holding stack files
    (or, without `need_stack_files`, a directory): the one check of --stacks-dir of every
    command reading the stack files on disk (fedeploy.cli_options.stacks_dir_or_exit)."""
    from fedeploy.errors import FederationError

    problem = stacks_dir_problem(stacks_dir, need_stack_files=need_stack_files)
    if problem is not None:
        hint = _nearby_directory(stacks_dir, stacks_dir) if problem == NO_SUCH_DIRECTORY else ""
        raise FederationError(f"stacks directory {stacks_dir}: {problem}{hint}")


def stacks_dir_in_repository(top: Path, given: str) -> str:
    """--stacks-dir of diff and affected as a path from the repository's top `top`, as git
    names it (`stacks`, `deploy/stacks`, `.`): `given` from the top, or absolute inside it.
    Both commands read the stack files from the repository's git history, which holds nothing
    outside it: a directory outside is refused (FederationError) before git is asked."""
    from fedeploy.errors import FederationError

    path = Path(given)
    relative = os.path.relpath(path.resolve(), top.resolve()) if path.is_absolute() else str(path)
    relative = os.path.normpath(relative)
    if relative == ".." or relative.startswith(f"..{os.sep}") or Path(relative).is_absolute():
        raise FederationError(
            f"--stacks-dir {given!r} must be a directory inside the repository ({top}), given "
            "from its root (e.g. stacks): diff and affected read the stack files from the "
            "repository's git history, which holds nothing outside the repository"
        )
    return Path(relative).as_posix()


def stacks_in_revisions(stacks_dir: str, trees: list[tuple[str, Path]]) -> list[bool]:
    """For diff and affected: whether each revision's exported tree (what the revision is, e.g.
    `--head HEAD (commit 0123456789ab)`, and the tree) holds stack files in `stacks_dir` (from
    the repository's top). Raise FederationError (exit 2) when none does: the answer would be
    an empty one, exit 0, for a misspelt or wrong directory. The message is the one the other
    commands give (require_stacks_dir), saying at which revisions."""
    from fedeploy.errors import FederationError

    problems = [(what, stacks_dir_problem(tree / stacks_dir)) for what, tree in trees]
    if any(problem is None for _, problem in problems):
        return [problem is None for _, problem in problems]
    if len({problem for _, problem in problems}) == 1:
        said = f"{problems[0][1]} at " + " or at ".join(what for what, _ in problems)
    else:
        said = "; ".join(f"{problem} at {what}" for what, problem in problems)
    hint = ""
    if problems[0][1] == NO_SUCH_DIRECTORY:  # directories named like it in the first tree
        hint = _nearby_directory(trees[0][1] / stacks_dir, stacks_dir)
    raise FederationError(f"stacks directory {stacks_dir}: {said}{hint}")


def _stack_of(stack_file: str) -> str | None:
    """The stack a stack file's name gives, or None for another name."""
    match = STACK_FILE.match(Path(stack_file).name)
    return match["stack"] if match else None


def stack_name_of(path: Path) -> str:
    match = STACK_FILE.match(path.name)
    if not match:
        raise StackConfigError(
            str(path),
            [
                ConfigIssue(
                    "file name",
                    "a stack file is named Pulumi.<site>.yaml, exactly: Pulumi reads no other name"
                    + _rename_hint(path.name),
                )
            ],
        )
    return match["stack"]


def _rename_hint(name: str) -> str:
    near = _NEAR_STACK_FILE.match(name)
    if near is None:
        return ""
    stack = near["stack"].lstrip(".-_")
    return f" (rename it Pulumi.{stack}.yaml)" if "." not in stack else ""


def stray_stack_files(stacks_dir: Path) -> list[str]:
    """A message for each file of the directory meant as a stack file that Pulumi would never
    read (`Pulumi.x.yml`, `pulumi.x.yaml`, `Pulumi-x.yaml`, `Pulumi.a.b.yaml`): the plan would
    skip it without a word while the user expects the site deployed."""
    found = []
    for path in sorted(stacks_dir.iterdir()):
        name = path.name
        if name in _PROJECT_FILES or STACK_FILE.match(name) or not _NEAR_STACK_FILE.match(name):
            continue
        found.append(
            f"{path}: not read as a stack file: a stack file is named Pulumi.<site>.yaml, "
            f"exactly, and Pulumi reads no other name{_rename_hint(name)}"
        )
    return found


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
        text = _read_regular(path)
        keys: dict[str, tuple[str, str]] = {}
        document, duplicates, plain = parse_yaml(text, keys)
    except FileNotFoundError:
        raise StackConfigError(str(path), [ConfigIssue("file", "does not exist")]) from None
    except (OSError, UnicodeDecodeError) as err:
        raise StackConfigError(str(path), [ConfigIssue("file", f"cannot be read: {err}")]) from None
    except yaml.YAMLError as err:
        raise StackConfigError(str(path), [ConfigIssue("file", _yaml_problem(text, err))]) from None
    if duplicates:
        raise StackConfigError(str(path), duplicates)
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
    return StackFile(
        path=path,
        stack=stack,
        raw=config[SITE_KEY],
        config=config,
        plain_scalars=plain,
        plain_keys=keys,
    )


def _read_regular(path: Path) -> str:
    """The text of a stack file that is a regular file in its own folder (a symlink to one is
    followed only if it stays in that folder); StackConfigError naming it otherwise. Opened
    without blocking: a FIFO named like a stack file is refused, not waited on. Raises OSError."""
    if path.is_symlink():
        target = path.resolve()
        if not target.is_relative_to(path.parent.resolve()):
            raise StackConfigError(
                str(path),
                [
                    ConfigIssue(
                        "file",
                        f"is a symlink to {target}, outside the stacks folder: a stack file is "
                        "read only from its own folder",
                    )
                ],
            )
    handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        mode = os.fstat(handle).st_mode
    except OSError:
        os.close(handle)
        raise
    if not stat.S_ISREG(mode):
        os.close(handle)
        kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO, socket or device"
        raise StackConfigError(
            str(path), [ConfigIssue("file", f"is {kind}, not a regular file: a stack file is")]
        )
    with open(handle) as text:
        return text.read()


def _yaml_problem(text: str, err: yaml.YAMLError) -> str:
    """What is wrong with the YAML, in words: a tab where YAML wants spaces is named as a tab."""
    mark = getattr(err, "problem_mark", None)
    if mark is not None:
        lines = text.splitlines()
        line = lines[mark.line] if mark.line < len(lines) else ""
        at = f"line {mark.line + 1}, column {mark.column + 1}"
        if line[mark.column : mark.column + 1] == "\t" or (
            "\t" in line[: mark.column + 1] and not line[: mark.column].strip(" \t")
        ):
            return (
                f"is not valid YAML: {at} holds a tab; YAML indents with spaces only: "
                "replace the tab with spaces"
            )
        problem = getattr(err, "problem", None) or "cannot be parsed"
        return f"is not valid YAML: {at}: {problem}"
    return f"is not valid YAML: {err}"


def parse_yaml(
    text: str, keys: dict[str, tuple[str, str]] | None = None
) -> tuple[Any, list[ConfigIssue], dict[str, tuple[str, str]]]:
    """The document, its duplicated keys (as issues naming both lines), and the source text and
    tag of each unquoted scalar under `config.fedeploy:site` that YAML did not read as a string
    (or that Pulumi and YAML 1.2 read as a number where YAML 1.1 reads a string: `1e9`). `keys`,
    where given, gets the source text and tag of each key there that YAML did not read as a
    string (`on:`), by yaml_words.key_record."""
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
        duplicates: list[ConfigIssue] = []
        plain: dict[str, tuple[str, str]] = {}
        if node is not None:
            walk = _Walk(duplicates, plain, {} if keys is None else keys, loader.construct_object)
            walk(node, ())
        document = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return document, duplicates, plain


@dataclass
class _Walk:
    """One walk of a document's nodes, each once (YAML aliases may share or nest them): the
    duplicated keys, the unquoted scalars and the keys not read as strings (parse_yaml)."""

    duplicates: list[ConfigIssue]
    plain: dict[str, tuple[str, str]]
    keys: dict[str, tuple[str, str]]
    construct: typing.Callable[[yaml.Node], Any]
    walked: set[int] = field(default_factory=set)

    def __call__(self, node: yaml.Node, path: tuple[str, ...]) -> None:
        if id(node) in self.walked:  # an alias: walked once already (never forever, if recursive)
            return
        self.walked.add(id(node))
        in_site = path[:2] == ("config", SITE_KEY)
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
                line = key_node.start_mark.line + 1
                if key in seen:
                    self.duplicates.append(
                        ConfigIssue(
                            _display_path((*path, key)),
                            f"duplicate key {key!r} at lines {seen[key]} and {line}; YAML would "
                            "keep only the last: remove one",
                        )
                    )
                seen.setdefault(key, line)
                if in_site and isinstance(key_node, yaml.ScalarNode) and key_node.tag != _STR_TAG:
                    item = loc_item(self.construct(key_node))
                    self.keys[key_record(_display_path(path), item)] = (key, key_node.tag)
                self(value_node, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self(item, (*path, str(index)))
        elif (
            isinstance(node, yaml.ScalarNode)
            and not node.style
            and in_site
            and (node.tag != _STR_TAG or disagreement(node.value, node.tag, node.value))
        ):
            self.plain[_display_path(path)] = (node.value, node.tag)


def _display_path(path: tuple[str, ...]) -> str:
    """`config.fedeploy:site.a.b` as the issues name it (`site.a.b`); other keys as they are."""
    if path[:2] == ("config", SITE_KEY):
        return ".".join(["site", *path[2:]])
    return ".".join(path)


def load_stack_file(path: Path, *, check_federation: bool = True) -> tuple[StackFile, Any]:
    """Read and validate one stack file; sibling stack files answer the cross-site checks."""
    checked = check_stack_file(path, check_federation=check_federation)
    return checked.stack_file, checked.site


def check_stack_file(path: Path, *, check_federation: bool = True) -> CheckedStack:
    """Read and validate one stack file, with the notes on it (advisories, skipped checks);
    raises StackConfigError with every problem of the file."""
    stack_file = read_stack_file(path)
    raw = stack_file.raw
    kind = raw.get("kind") if isinstance(raw, dict) else None
    model = MODELS.get(kind) if isinstance(kind, str) else None
    traps = yaml_number_issues(stack_file.plain_scalars, model)
    issues = _provider_config_issues(stack_file) + traps
    try:
        site = validate_site(
            raw,
            stack_file=str(path),
            stacks_dir=path.parent if check_federation else None,
            stack=stack_file.stack,
            plain_scalars=stack_file.plain_scalars,
            plain_keys=stack_file.plain_keys,
        )
    except StackConfigError as err:
        # A key whose unquoted value the YAML readers read differently gets one line, saying
        # what each read and how to write it; not a second one about what YAML 1.1 made of it.
        trapped = {issue.path for issue in traps}
        refused = [issue for issue in err.issues if issue.path not in trapped]
        raise StackConfigError(str(path), [*refused, *issues]) from None
    issues += _region_issues(stack_file, site)
    if issues:
        raise StackConfigError(str(path), issues)
    notes = site_notes(site, path.parent, stack_file.stack) if check_federation else []
    return CheckedStack(stack_file, site, notes)


def yaml_number_issues(
    plain_scalars: dict[str, tuple[str, str]], model: type[BaseModel] | None = None
) -> list[ConfigIssue]:
    """Unquoted numbers that YAML 1.1 (read here), Pulumi (go-yaml) and YAML 1.2 readers read
    differently: a leading zero (`010`: 8 here and in Pulumi, 10 in YAML 1.2; `09`: the text
    '09' here, 9 in the others), hexadecimal, binary, `_` separators, `1:30` (90 here, a string
    in YAML 1.2), an exponent without a '.' or a sign (`1e9`: a string here, a number in the
    others), `0o17`. Only plain decimals are accepted; where the key takes text (in `model`,
    the site's model), quoting is the fix."""
    issues = []
    for path, (text, tag) in sorted(plain_scalars.items()):
        read = text if tag == _STR_TAG else yaml.load(text, Loader=_LOADER)  # noqa: S506
        found = disagreement(text, tag, read)
        if found is None:
            continue
        said, meant = found
        loc = tuple(path.split(".")[1:])
        if model is not None and loc and _takes_text(model, loc):
            if not _text_valid(model, loc, text):
                continue  # refused quoted too: the key's own error says what it takes
            shown = f'{loc[-1]}: "{text}"' if not loc[-1].isdigit() else f'"{text}"'
            issues.append(ConfigIssue(path, f"{said}: quote it, {shown}"))
            continue
        fix = "write the plain decimal number you mean" + (f", {meant}" if meant else "")
        issues.append(ConfigIssue(path, f"{said}: {fix}"))
    return issues


def _provider_config_issues(stack_file: StackFile) -> list[ConfigIssue]:
    issues = []
    for key, value in stack_file.config.items():
        if key != SITE_KEY and isinstance(value, str) and (choice := CHOICE.match(value)):
            issues.append(
                ConfigIssue(
                    f"config.{key}",
                    f"still the placeholder `fedeploy new` wrote: choose {choice['what']}",
                )
            )
        if isinstance(value, dict) and "secure" in value:
            problem = ciphertext_problem(value)
            if problem:
                issues.append(ConfigIssue(f"config.{key}", problem))
    return issues


# The default provider's region key of each kind whose region the stack file also names.
_PROVIDER_REGION_KEYS = {"aws": "aws:region", "openstack": "openstack:region"}


def _region_issues(stack_file: StackFile, site: Any) -> list[ConfigIssue]:
    """The default provider's region (`aws:region`, `openstack:region`) must be the site's own;
    an aws site must set it (the AWS provider has no default region of its own)."""
    key = _PROVIDER_REGION_KEYS.get(site.kind)
    region = getattr(site, "region", None)
    if key is None or region is None:
        return []
    given = stack_file.config.get(key)
    if isinstance(given, str) and CHOICE.match(given):
        return []  # named by _provider_config_issues
    if given is None and site.kind == "aws":
        return [
            ConfigIssue(
                f"config.{key}",
                f"is required for an aws site: the AWS provider's region, the site's own "
                f"({region!r}); add `{key}: {region}` beside fedeploy:site",
            )
        ]
    if given is None or given == region:
        return []
    return [
        ConfigIssue(
            f"config.{key}",
            f"is {given!r} but site.region is {region!r}: resources would land in two regions; "
            "set both to the same region",
        )
    ]


def validate_site(
    raw: Any,
    *,
    stack_file: str,
    stacks_dir: Path | None = None,
    stack: str | None = None,
    secrets_decrypted: bool = False,
    plain_scalars: dict[str, tuple[str, str]] | None = None,
    deploying: bool = False,
    plain_keys: dict[str, tuple[str, str]] | None = None,
) -> Any:
    """Validate a raw site object into its typed model, or raise StackConfigError with every issue.

    With `stacks_dir`, the checks across stack files run too, on the validated models of this
    site and of its siblings (never on raw objects). `deploying` (the program under `pulumi up`)
    refuses pending secrets, which a production site never holds either. Values `fedeploy new`
    wrote for the user to choose (`<choose: ...>`) are named, each, instead of their type errors.
    `plain_scalars` and `plain_keys` (StackFile's): what the stack file wrote, named in the
    issues where YAML read it as something else."""
    if raw is None:
        raise StackConfigError(
            stack_file, [ConfigIssue(f"config.{SITE_KEY}", "is required: the site object")]
        )
    if not isinstance(raw, dict):
        raise StackConfigError(
            stack_file, [ConfigIssue("site", f"must be a mapping, got {type(raw).__name__}")]
        )
    kind = raw.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        given = "nothing" if kind is None else _shorten(repr(kind))
        raise StackConfigError(
            stack_file,
            [
                ConfigIssue(
                    "site.kind",
                    f"given {given}; allowed: {', '.join(KINDS)}"
                    + (_did_you_mean(kind, KINDS) if isinstance(kind, str) else ""),
                )
            ],
        )
    model = MODELS[kind]
    choices = dict(scaffold_choices(raw))
    context = {"secrets_decrypted": secrets_decrypted, "deploying": deploying}
    try:
        site = model.model_validate(raw, context=context)
    except ValidationError as err:
        named = stack or _stack_of(stack_file)
        issues = [
            _issue(model, e, plain_scalars or {}, named, plain_keys or {}) for e in err.errors()
        ]
        issues = [i for i in issues if not any(_under(i.path, c) for c in choices)]
        raise StackConfigError(stack_file, _choice_issues(choices) + issues) from None
    if choices:
        raise StackConfigError(stack_file, _choice_issues(choices))
    pending = pending_secrets(site)
    if pending and site.environment == "production":
        raise StackConfigError(
            stack_file,
            [
                ConfigIssue(
                    path,
                    "is a pending secret, which a production site never holds: set it with "
                    f"`{set_secret_command(stack or _stack_of(stack_file), path)}`",
                )
                for path in pending
            ],
        )
    if stacks_dir is not None:
        issues = federation_issues(site, stacks_dir, stack)
        if issues:
            raise StackConfigError(stack_file, issues)
    return site


# -- what `fedeploy new` leaves to the user: choices and pending secrets --------------------------

# A value the scaffold wrote for the user to choose: `<choose: what, e.g. an example>`.
CHOICE = re.compile(r"^<choose: (?P<what>[^>]*)>$")


def raw_nodes(
    raw: Any, path: str = "site", seen: set[int] | None = None
) -> typing.Iterator[tuple[str, Any]]:
    """(key path, value) of every node of a raw site object, itself first; each mapping or list
    once (YAML aliases may share or nest them without end)."""
    seen = set() if seen is None else seen
    yield path, raw
    if isinstance(raw, dict | list):
        if id(raw) in seen:
            return
        seen.add(id(raw))
        items = raw.items() if isinstance(raw, dict) else enumerate(raw)
        for key, value in items:
            yield from raw_nodes(value, f"{path}.{key}", seen)


def scaffold_choices(raw: Any) -> typing.Iterator[tuple[str, str]]:
    """(key path, what to choose) of every `<choose: ...>` value left in a raw site object."""
    for path, node in raw_nodes(raw):
        if isinstance(node, str) and (match := CHOICE.match(node)):
            yield path, match["what"]


def raw_pending(raw: Any) -> list[str]:
    """Key paths of the `pending:` placeholders of a raw site object, valid or not."""
    return [p for p, node in raw_nodes(raw) if isinstance(node, dict) and set(node) == {"pending"}]


def _choice_issues(choices: dict[str, str]) -> list[ConfigIssue]:
    return [
        ConfigIssue(path, f"still the placeholder `fedeploy new` wrote: choose {what}")
        for path, what in choices.items()
    ]


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(f"{prefix}.")


def secret_fields(site: Any, path: str = "site") -> typing.Iterator[tuple[str, Any]]:
    """(key path, SecretValue) of every secret a validated site model holds."""
    from fedeploy.config.base import SecretValue

    if isinstance(site, SecretValue):
        yield path, site
    elif isinstance(site, BaseModel):
        for name in type(site).model_fields:
            yield from secret_fields(getattr(site, name), f"{path}.{name}")
    elif isinstance(site, dict):
        for key, value in site.items():
            yield from secret_fields(value, f"{path}.{key}")
    elif isinstance(site, list | tuple):
        for index, value in enumerate(site):
            yield from secret_fields(value, f"{path}.{index}")


def pending_secrets(site: Any) -> list[str]:
    """Key paths of the secrets a validated site holds as `pending:` placeholders."""
    return [path for path, secret in secret_fields(site) if secret.pending]


def config_path(path: str) -> str:
    """The `--path` of `pulumi config set` for a key path of the site object (`site.a.0.b`)."""
    parts = path.split(".")[1:]
    return pulumi_config_path(tuple(int(p) if p.isdigit() else p for p in parts))


def set_secret_command(stack: str | None, path: str) -> str:
    """The command that sets the secret at key path `path` of stack `stack`: with `--stack`, so
    that run as printed it sets that stack's secret, not the selected stack's."""
    return _set_secret_at(stack, config_path(path))


def _set_secret_at(stack: str | None, pulumi_path: str) -> str:
    where = f"--stack {stack} " if stack else ""
    return f"pulumi config set {where}--secret --path '{pulumi_path}' <value>"


# -- checks across stack files, on validated models only -----------------------------------------


@dataclass(frozen=True)
class Sibling:
    """Another stack file of the directory: its validated site, or None where it is invalid."""

    path: Path
    site: Any


def _invalid(sibling: Sibling) -> str:
    return f"its stack file {sibling.path.name} is invalid (its own errors say why)"


def federation_issues(site: Any, stacks_dir: Path, stack: str | None) -> list[ConfigIssue]:
    """Checks that need the other stack files: replication targets and hub members exist and
    fit, bucket names and address ranges do not clash. A check that needs an invalid sibling is
    skipped (`site_notes` says so); the sibling's own validation reports it, once."""
    index = federation_index(stacks_dir)
    # The checks below handle a reference to `stack` itself before they look it up.
    siblings = index.sites
    issues: list[ConfigIssue] = []
    issues += _replication_issues(site, siblings, stacks_dir, stack)
    issues += _member_issues(site, siblings, stacks_dir, stack)
    issues += _bucket_name_issues(site, index, stack)
    issues += _address_issues(site, index, stack)
    issues += _catalog_url_issues(site, index, stack)
    issues += _browser_host_issues(site, index, stack)
    issues += _cycle_issues(site, index, stack)
    return issues


@dataclass
class FederationIndex:
    """The valid sites of a stacks directory indexed by what the cross-site checks compare, so
    that checking every site costs linear time in the federation, not quadratic: each map takes
    a value to the sites (stack names, in name order) that have it."""

    sites: dict[str, Sibling]
    catalog_urls: dict[str, list[str]] = field(default_factory=dict)
    catalog_hosts: dict[str, list[str]] = field(default_factory=dict)
    browser_hosts: dict[str, list[str]] = field(default_factory=dict)
    # (bucket namespace, physical name) -> [(stack, logical bucket name)]
    buckets: dict[tuple[str, str], list[tuple[str, str]]] = field(default_factory=dict)
    # member -> the hubs that list it
    hubs_of: dict[str, list[str]] = field(default_factory=dict)
    reads: dict[str, list[Any]] = field(default_factory=dict)
    # IP version -> sorted (first address, stack, key path); (version, prefix length, first
    # address) -> [(stack, key path)]: the ranges starting inside one, and those holding it
    range_starts: dict[int, list[tuple[int, str, str]]] = field(default_factory=dict)
    ranges_at: dict[tuple[int, int, int], list[tuple[str, str]]] = field(default_factory=dict)


def federation_index(stacks_dir: Path) -> FederationIndex:
    """The index of the directory's sites (sibling_sites), made once while its files are
    unchanged."""
    return _index(*_files_signature(stacks_dir))


@functools.lru_cache(maxsize=8)
def _index(directory: str, files: tuple[tuple[str, int, int], ...]) -> FederationIndex:
    import ipaddress

    index = FederationIndex(_read_sites(directory, files))
    for name in sorted(index.sites):
        site = index.sites[name].site
        if site is None:
            continue
        for table, value in (
            (index.catalog_urls, _catalog_url(site)),
            (index.catalog_hosts, _catalog_host(site)),
            (index.browser_hosts, _browser_host(site)),
        ):
            if value is not None:
                table.setdefault(value, []).append(name)
        namespace = _bucket_namespace(site)
        for logical, physical in physical_buckets(site, name).items():
            index.buckets.setdefault((namespace, physical), []).append((name, logical))
        if site.kind == "hub":
            for member in site.members:
                index.hubs_of.setdefault(member, []).append(name)
        index.reads[name] = references(name, site)
        for path, cidr in address_ranges(site).items():
            net = ipaddress.ip_network(cidr)
            first = int(net.network_address)
            index.range_starts.setdefault(net.version, []).append((first, name, path))
            index.ranges_at.setdefault((net.version, net.prefixlen, first), []).append((name, path))
    for starts in index.range_starts.values():
        starts.sort()
    return index


def _catalog_url(site: Any) -> str | None:
    """The public catalog URL a site publishes, compared without case in the host and without
    a trailing slash; None when it publishes none."""
    catalog = getattr(getattr(site, "services", None), "catalog", None)
    url = getattr(catalog, "url", None)
    if catalog is None or not getattr(catalog, "enabled", True) or url is None:
        return None
    parts = urlsplit(str(url))
    return urlunsplit(parts._replace(netloc=parts.netloc.lower(), path=parts.path.rstrip("/")))


def _catalog_url_issues(site: Any, index: FederationIndex, stack: str | None) -> list[ConfigIssue]:
    """Two sites publishing one catalog URL: one would answer for both, the hub harvest it twice."""
    mine = _catalog_url(site)
    if mine is None:
        return []
    return [
        ConfigIssue(
            "site.services.catalog.url",
            f"{mine} is also the catalog url of site {name!r} ({index.sites[name].path.name}): "
            "each site publishes its own catalog; give this one its own host or path",
        )
        for name in index.catalog_urls.get(mine, [])
        if name != stack
    ]


def _browser_host(site: Any) -> str | None:
    """The host of the STAC Browser a site serves (lower case); None when it serves none."""
    catalog = getattr(getattr(site, "services", None), "catalog", None)
    browser = getattr(catalog, "browser", None)
    if catalog is None or not getattr(catalog, "enabled", True) or browser is None:
        return None
    return (urlsplit(str(browser.url)).hostname or "").lower() or None


def _catalog_host(site: Any) -> str | None:
    url = _catalog_url(site)
    if url is None:
        return None
    return (urlsplit(url).hostname or "").lower() or None


def _browser_host_issues(site: Any, index: FederationIndex, stack: str | None) -> list[ConfigIssue]:
    """A browser on the host of another site's catalog or browser: one Ingress (or HTTPRoute)
    would take the other's requests, and the browser's page would share its origin."""
    mine = _browser_host(site)
    catalog = _catalog_host(site)
    issues = []
    # Only the sites sharing one of these hosts can clash: each is then checked as before.
    candidates = set(index.browser_hosts.get(catalog, [])) if catalog is not None else set()
    if mine is not None:
        candidates.update(index.catalog_hosts.get(mine, []), index.browser_hosts.get(mine, []))
    for name in sorted(candidates - {stack}):
        other = index.sites[name]
        if other.site is None:
            continue
        if catalog is not None and _browser_host(other.site) == catalog:
            issues.append(
                ConfigIssue(
                    "site.services.catalog.url",
                    f"host {catalog} is also the host of the STAC Browser of site {name!r} "
                    f"({other.path.name}): a catalog's host may be no browser's host",
                )
            )
        if mine is None:
            continue
        for what, host in (
            ("catalog", _catalog_host(other.site)),
            ("STAC Browser", _browser_host(other.site)),
        ):
            if host == mine:
                issues.append(
                    ConfigIssue(
                        "site.services.catalog.browser.url",
                        f"host {mine} is also the host of the {what} of site {name!r} "
                        f"({other.path.name}): a browser needs a host of its own, that of no "
                        "catalog and no other browser in the federation",
                    )
                )
    return issues


def _cycle_issues(site: Any, index: FederationIndex, stack: str | None) -> list[ConfigIssue]:
    """A reference that leads back to this stack: no order could deploy the stacks in it."""
    if stack is None:
        return []
    reads = _Reads(index.reads, stack, references(stack, site))
    issues: dict[str, ConfigIssue] = {}
    for ref in reads[stack]:
        if ref.target == stack and ref.because.endswith("replicate_to.site"):
            continue  # "a bucket cannot replicate to its own site" says it, once
        back = _path_to(reads, ref.target, stack)
        if back is not None and ref.because not in issues:
            cycle = " -> ".join([stack, *back])
            issues[ref.because] = ConfigIssue(
                ref.because,
                f"stack references form a cycle: {cycle}; no deployment order can satisfy it: "
                "remove one of the references",
            )
    return list(issues.values())


class _Reads(dict):  # type: ignore[type-arg]
    """The federation's references (stack -> what it reads) with this stack's own from the
    site being checked, made without copying the federation's."""

    def __init__(self, reads: dict[str, list[Any]], stack: str, own: list[Any]) -> None:
        super().__init__()
        self._reads, self._stack, self._own = reads, stack, own

    def __getitem__(self, name: Any) -> list[Any]:
        return self._own if name == self._stack else self._reads[name]

    def get(self, name: Any, default: Any = None) -> Any:
        return self._own if name == self._stack else self._reads.get(name, default)


def _path_to(reads: dict[str, list[Any]], start: str, goal: str) -> list[str] | None:
    """The stacks from `start` to `goal` following references (breadth first), or None."""
    came_from: dict[str, str | None] = {start: None}
    queue = [start]
    while queue:
        here = queue.pop(0)
        if here == goal:
            path = [here]
            while (previous := came_from[path[-1]]) is not None:
                path.append(previous)
            return path[::-1]
        for ref in reads.get(here, []):
            if ref.target not in came_from:
                came_from[ref.target] = here
                queue.append(ref.target)
    return None


def site_notes(site: Any, stacks_dir: Path, stack: str | None) -> list[ConfigIssue]:
    """What is worth a look but does not stop a plan: advisories, and checks skipped because a
    stack file they need is invalid."""
    index = federation_index(stacks_dir)
    notes: list[ConfigIssue] = []
    for path, target in _targets(site):
        other = index.sites.get(target) if target != stack else None
        if other is not None and other.site is None:
            notes.append(ConfigIssue(path, f"check of {target!r} skipped: {_invalid(other)}"))
    bridge = getattr(site, "bridge", None)
    if (
        site.environment == "production"
        and bridge is not None
        and bridge.mode == "gateway"
        and bridge.host_key is None
    ):
        notes.append(
            ConfigIssue(
                "site.bridge.host_key",
                "advisory: a production gateway bridge without host_key trusts the gateway's SSH "
                "key on first use; pin it (ssh-keyscan the gateway, check the fingerprint)",
            )
        )
    if site.kind != "hub" and stack is not None:
        hubs = [n for n in index.hubs_of.get(stack, []) if n != stack]
        if not hubs:
            notes.append(
                ConfigIssue(
                    "site",
                    f"advisory: no hub in {stacks_dir} lists {stack!r} among its members; "
                    + (
                        "the hub's registry will not list it as a storage member"
                        if is_storage_only(site)
                        else "the federated catalog will not harvest this site"
                    ),
                )
            )
    for path in pending_secrets(site):
        notes.append(
            ConfigIssue(
                path,
                "advisory: a pending secret (placeholder): planned with a stand-in; `pulumi up` "
                f"refuses it until `{set_secret_command(stack, path)}` sets it",
            )
        )
    if site.kind == "openstack" and site.cluster is not None:
        for name, group in sorted(site.cluster.node_groups.items()):
            if group.accelerator == "nvidia" and not is_gpu_flavor(group.flavor):
                notes.append(
                    ConfigIssue(
                        f"site.cluster.node_groups.{name}.flavor",
                        f"advisory: {group.flavor!r} is no GPU flavor name fedeploy knows, but "
                        "the group has accelerator: nvidia; check that the flavor has NVIDIA "
                        "GPUs (`openstack flavor show`), or inference waits for a GPU no node has",
                    )
                )
    return notes


def _targets(site: Any) -> list[tuple[str, str]]:
    """(key path, site name) of every other site this one names."""
    found = [(f"site.members.{i}", m) for i, m in enumerate(getattr(site, "members", []) or [])]
    storage = getattr(site, "storage", None)
    for name, bucket in sorted((getattr(storage, "buckets", None) or {}).items()):
        if bucket.replicate_to is not None:
            found.append(
                (f"site.storage.buckets.{name}.replicate_to.site", bucket.replicate_to.site)
            )
    return found


def _unknown(target: str, siblings: dict[str, Sibling], stacks_dir: Path, stack: str | None) -> str:
    others = [name for name in siblings if name != stack]
    available = ", ".join(sorted(others)) or "none"
    return (
        f"no stack file Pulumi.{target}.yaml in {stacks_dir} (sites there: {available})"
        + _did_you_mean(target, others)
    )


def _replication_issues(
    site: Any, siblings: dict[str, Sibling], stacks_dir: Path, stack: str | None
) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    storage = getattr(site, "storage", None)
    for name, bucket in sorted((getattr(storage, "buckets", None) or {}).items()):
        target = bucket.replicate_to
        if target is None:
            continue
        path = f"site.storage.buckets.{name}.replicate_to"
        other = siblings.get(target.site)
        if target.site == stack:
            issues.append(ConfigIssue(f"{path}.site", "a bucket cannot replicate to its own site"))
        elif other is None:
            issues.append(
                ConfigIssue(
                    f"{path}.site",
                    f"unknown replication target {target.site!r}: "
                    + _unknown(target.site, siblings, stacks_dir, stack),
                )
            )
        elif other.site is None:
            continue  # skipped: site_notes says so, the sibling's own errors say why
        elif other.site.kind != "aws":
            issues.append(
                ConfigIssue(
                    f"{path}.site",
                    f"replication target {target.site!r} is a {other.site.kind!r} site; "
                    "S3 replication needs an aws site"
                    + (
                        " (fedeploy replicates between aws sites only: nothing copies objects "
                        "to another kind's storage-only site today)"
                        if is_storage_only(other.site)
                        else ""
                    ),
                )
            )
        else:
            other_buckets = other.site.storage.buckets
            if target.bucket not in other_buckets:
                issues.append(
                    ConfigIssue(
                        f"{path}.bucket",
                        f"site {target.site!r} has no bucket {target.bucket!r} (it has: "
                        f"{', '.join(sorted(other_buckets)) or 'none'})",
                    )
                )
            elif not other_buckets[target.bucket].versioning:
                issues.append(
                    ConfigIssue(
                        f"{path}.bucket",
                        f"bucket {target.bucket!r} of site {target.site!r} has versioning off; "
                        "a replication target must be versioned",
                    )
                )
    return issues


def _member_issues(
    site: Any, siblings: dict[str, Sibling], stacks_dir: Path, stack: str | None
) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    if site.kind != "hub":
        return issues
    for index, member in enumerate(site.members):
        path = f"site.members.{index}"
        other = siblings.get(member)
        if member == stack:
            issues.append(ConfigIssue(path, "the hub cannot be its own member"))
        elif other is None:
            issues.append(
                ConfigIssue(
                    path,
                    f"unknown site {member!r}: " + _unknown(member, siblings, stacks_dir, stack),
                )
            )
        elif other.site is None:
            continue
        elif other.site.kind == "hub":
            issues.append(ConfigIssue(path, f"{member!r} is a hub, not a site"))
        else:
            catalog = getattr(getattr(other.site, "services", None), "catalog", None)
            if catalog is not None and catalog.enabled and catalog.url is None:
                issues.append(
                    ConfigIssue(
                        path,
                        f"member {member!r} has no public catalog url (services.catalog.url in "
                        f"{other.path.name}): the hub, on another cluster, cannot reach its "
                        "in-cluster address; set the url of the site's catalog ingress",
                    )
                )
    return issues


def _bucket_namespace(site: Any) -> str:
    """Where bucket names must be unique: all of AWS S3, or one S3-compatible endpoint."""
    storage = getattr(site, "storage", None)
    endpoint = getattr(storage, "endpoint", None)
    if endpoint is not None:
        return str(endpoint)
    return "aws-s3" if site.kind == "aws" else f"{site.kind}:{getattr(storage, 'region', '')}"


def physical_buckets(site: Any, stack: str) -> dict[str, str]:
    """Logical bucket name -> physical name (`<prefix>-<site>-<bucket>`) of a site's buckets."""
    storage = getattr(site, "storage", None)
    prefix = getattr(storage, "bucket_prefix", None)
    buckets = getattr(storage, "buckets", None) or {}
    return {name: f"{prefix}-{stack}-{name}" for name in buckets} if prefix else {}


def _bucket_name_issues(site: Any, index: FederationIndex, stack: str | None) -> list[ConfigIssue]:
    if stack is None:
        return []
    namespace = _bucket_namespace(site)
    # (other site, my bucket) -> their bucket, in the order of the other sites' names
    clashes = sorted(
        (other_name, name, theirs, physical)
        for name, physical in physical_buckets(site, stack).items()
        for other_name, theirs in index.buckets.get((namespace, physical), [])
        if other_name != stack
    )
    return [
        ConfigIssue(
            f"site.storage.buckets.{name}",
            f"its physical name {physical!r} is also that of bucket {theirs!r} of site "
            f"{other_name!r} ({index.sites[other_name].path.name}); "
            "change bucket_prefix or the bucket's name",
        )
        for other_name, name, theirs, physical in clashes
    ]


def address_ranges(site: Any) -> dict[str, str]:
    """Key path -> address range of every range a site occupies (VPC, pods and nodes)."""
    ranges: dict[str, str] = {}
    for network in ("network", "private_network"):  # aws, openstack; ovh
        cidr = getattr(getattr(site, network, None), "cidr", None)
        if isinstance(cidr, str):
            ranges[f"site.{network}.cidr"] = cidr
    cluster = getattr(site, "cluster", None)
    for index, pod_cidr in enumerate(getattr(cluster, "pod_cidrs", None) or []):
        ranges[f"site.cluster.pod_cidrs.{index}"] = pod_cidr
    return ranges


def _address_issues(site: Any, index: FederationIndex, stack: str | None) -> list[ConfigIssue]:
    mine = address_ranges(site)
    everything: dict[tuple[str | None, str], str] = {(None, p): c for p, c in mine.items()}
    # Only the other sites' ranges that overlap one of mine can make an issue (a pair of two
    # others is never reported): those are looked up, not the whole federation swept.
    near = sorted({hit for cidr in mine.values() for hit in _ranges_overlapping(index, cidr)})
    for other_name, path in near:
        if other_name != stack:
            everything[(other_name, path)] = address_ranges(index.sites[other_name].site)[path]
    siblings = index.sites
    keys = {f"{n or ''}|{p}": (n, p) for n, p in everything}
    issues = []
    for a, b in overlapping({k: everything[v] for k, v in keys.items()}):
        (site_a, path_a), (site_b, path_b) = keys[a], keys[b]
        if site_a is not None and site_b is not None:
            continue  # between two other sites: their own files report it
        if site_a is not None:
            (site_a, path_a), (site_b, path_b) = (site_b, path_b), (site_a, path_a)
        where = (
            f"{path_b} ({everything[(site_b, path_b)]}) of this site"
            if site_b is None
            else f"{path_b.removeprefix('site.')} ({everything[(site_b, path_b)]}) of site "
            f"{site_b!r} ({siblings[site_b].path.name})"
        )
        issues.append(
            ConfigIssue(
                path_a,
                f"{everything[(None, path_a)]} overlaps {where}: sites could never be peered "
                "and a bridge's firewall could not tell them apart",
            )
        )
    return issues


def _ranges_overlapping(index: FederationIndex, cidr: str) -> list[tuple[str, str]]:
    """(stack, key path) of the indexed ranges that overlap `cidr`: of two CIDR ranges that
    overlap, one holds the other, so those starting inside it and those holding its first
    address (one lookup per shorter prefix)."""
    import bisect
    import ipaddress

    net = ipaddress.ip_network(cidr)
    first, last = int(net.network_address), int(net.broadcast_address)
    starts = index.range_starts.get(net.version, [])
    found = [
        (name, path)
        for _, name, path in starts[
            bisect.bisect_left(starts, (first,)) : bisect.bisect_right(starts, (last, "\uffff"))
        ]
    ]
    for prefix in range(net.prefixlen):
        holder = int(net.supernet(new_prefix=prefix).network_address)
        found += index.ranges_at.get((net.version, prefix, holder), [])
    return found


def sibling_sites(stacks_dir: Path) -> dict[str, Sibling]:
    """The validated site of every stack file in the directory (None where a file is invalid),
    read once while the files are unchanged: each of N stacks checks against all others."""
    return _read_sites(*_files_signature(stacks_dir))


# The signatures taken while one load runs (see listed_once): directory -> signature.
_LISTED: contextvars.ContextVar[dict[Path, tuple[str, tuple[tuple[str, int, int], ...]]] | None] = (
    contextvars.ContextVar("_LISTED", default=None)
)


@contextlib.contextmanager
def listed_once() -> Iterator[None]:
    """While in it, each stacks directory is listed (its files stat'ed) once: a load of N
    stacks checks each against the others, which listed the directory twice per stack."""
    token = _LISTED.set({})
    try:
        yield
    finally:
        _LISTED.reset(token)


def _files_signature(stacks_dir: Path) -> tuple[str, tuple[tuple[str, int, int], ...]]:
    """The directory and its stack files' (name, mtime, size): what the caches are keyed on;
    taken once per directory inside listed_once."""
    taken = _LISTED.get()
    if taken is not None and stacks_dir in taken:
        return taken[stacks_dir]
    files = []
    for path in sorted(stacks_dir.glob("Pulumi.*.yaml")):
        try:
            found = path.stat()
        except OSError:
            continue
        files.append((path.name, found.st_mtime_ns, found.st_size))
    signature = str(stacks_dir.resolve()), tuple(files)
    if taken is not None:
        taken[stacks_dir] = signature
    return signature


@functools.lru_cache(maxsize=8)
def _read_sites(directory: str, files: tuple[tuple[str, int, int], ...]) -> dict[str, Sibling]:
    sites: dict[str, Sibling] = {}
    for name, _, _ in files:
        match = STACK_FILE.match(name)
        if not match:
            continue
        path = Path(directory, name)
        try:
            stack_file = read_stack_file(path)
            site = validate_site(stack_file.raw, stack_file=str(path), stack=stack_file.stack)
        except StackConfigError:
            site = None
        sites[match["stack"]] = Sibling(path, site)
    return sites


def _issue(
    model: type[BaseModel],
    error: Any,
    plain_scalars: dict[str, tuple[str, str]] | None = None,
    stack: str | None = None,
    plain_keys: dict[str, tuple[str, str]] | None = None,
) -> ConfigIssue:
    loc = tuple(error["loc"])
    kind = error["type"]
    keys = plain_keys or {}
    if loc and loc[-1] == "[key]":  # a mapping's key (a bucket or node group name) is bad
        return _key_issue(model, error, loc[:-1], keys)
    path = _written_path(loc, keys)
    if kind in ("extra_forbidden", "invalid_key"):  # invalid_key: `on:`, read as true
        known = _field_names(model, loc[:-1])
        if loc == ("role",):
            return ConfigIssue(path, _role_refused(model))
        parent = _written_path(loc[:-1], keys)
        written = keys.get(key_record(parent, loc[-1]))
        name = written[0] if written else str(loc[-1])
        if written and name in known:
            return ConfigIssue(path, _key_hint(name, written[1]))
        return ConfigIssue(
            path,
            f"unknown key {name!r}{_did_you_mean(name, known)}; allowed: {', '.join(sorted(known))}",
        )
    message = _allowed(error["msg"])
    if kind == "missing" and loc and isinstance(loc[-1], int):  # a fixed-length list
        parent = ".".join(["site", *map(str, loc[:-1])])
        return ConfigIssue(parent, f"has too few items: item {loc[-1]} is missing")
    if kind == "missing":
        described = _description(model, loc)
        return ConfigIssue(path, "is required" + (f": {described}" if described else ""))
    if kind == "pending_secret":
        return ConfigIssue(
            path,
            "is a pending secret (`pending:` placeholder), which `pulumi up` never deploys: set "
            f"it with `{_set_secret_at(stack, pulumi_config_path(loc))}`",
        )
    if kind in ("plaintext_secret", "secret_not_ciphertext"):
        found = (
            "a plaintext value where a secret is required"
            if kind == "plaintext_secret"
            else message
        )
        return ConfigIssue(
            path,
            f"given [hidden]; {found}: set it with "
            f"`{_set_secret_at(stack, pulumi_config_path(loc))}` "
            "so the stack file holds `secure: <ciphertext>`",
        )
    if kind in _HIDDEN_INPUT:
        return ConfigIssue(path, f"given [hidden]; {message}")
    given = _shorten(_GIVEN.repr(error.get("input")))
    if (plain_scalars or {}).get(path, ("?", ""))[0] == "" and error.get("input") is None:
        given = "an empty value"  # `key:` with nothing after it, which YAML reads as null
    if kind == "string_pattern_mismatch":
        # The key's description says what is allowed in words ("1.25 to 1.37"), not the regex.
        named = tuple(part for part in loc if not isinstance(part, int))
        described = _description(model, named) if named else None
        if not (described and _SAYS_ALLOWED.search(described)):
            # A list's item (a hub's members): the item type says it (a site name's words).
            pattern = str((error.get("ctx") or {}).get("pattern"))
            described = _PATTERN_WORDS.get(pattern) or described
        if described and _SAYS_ALLOWED.search(described):
            return ConfigIssue(path, f"given {given}; allowed: {described}")
    hint = _quote_hint(
        path,
        error,
        plain_scalars,
        _takes_text(model, loc),
        lambda text: _text_valid(model, loc, text),
    )
    about = _NAMES_ITS_KEY.match(message)
    if kind.startswith("value_error") and about:  # a check of the whole site about one key
        return ConfigIssue(f"{path}.{about['key']}", about["message"])
    if kind.startswith("value_error") or kind == "assertion_error":
        return ConfigIssue(path, message + hint)
    return ConfigIssue(path, f"given {given}; allowed: {message}{hint}")


def _written_path(loc: tuple[Any, ...], keys: dict[str, tuple[str, str]]) -> str:
    """The key path of `loc` as the stack file writes it: a key YAML read as something other
    than a string by its text (`site.tags.on`, where pydantic names it `site.tags.1`)."""
    path = "site"
    for part in loc:
        written = keys.get(key_record(path, part))
        path += f".{written[0] if written else part}"
    return path


def _key_hint(text: str, tag: str) -> str:
    """What YAML made of the unquoted key `text`, and to quote it."""
    what = _TYPE_WORDS.get(tag, "a non-string value")
    return (
        f"the unquoted key {text} is read as {what} by YAML 1.1 (fedeploy), not as the name "
        f'{text!r}: quote it, "{text}":'
    )


def _key_issue(
    model: type[BaseModel], error: Any, loc: tuple[Any, ...], keys: dict[str, tuple[str, str]]
) -> ConfigIssue:
    """A mapping's key (a bucket or node group name, a tag's key) that is refused: one YAML
    read as something other than a string (`on`, `1.10`, `null`) is named as written, with the
    hint to quote it where the quoted name would be taken, else what the name may be."""
    path = _written_path(loc, keys)
    written = keys.get(key_record(_written_path(loc[:-1], keys), loc[-1]))
    if written is None:
        return ConfigIssue(path, f"the name {loc[-1]!r} is not allowed: {_allowed(error['msg'])}")
    text, tag = written
    mapping = _model_at(model, loc[:-1])
    key_type = typing.get_args(mapping)[0] if typing.get_origin(mapping) is dict else str
    try:
        TypeAdapter(key_type).validate_python(text)
    except ValidationError as err:
        return ConfigIssue(path, f"the name {text!r} is not allowed: {_name_words(err)}")
    return ConfigIssue(path, _key_hint(text, tag))


def _name_words(err: ValidationError) -> str:
    """Why a name is refused, in words: a missed pattern by what it allows (a site name's
    words), else pydantic's message."""
    first = err.errors()[0]
    if first["type"] == "string_pattern_mismatch":
        words = _PATTERN_WORDS.get(str((first.get("ctx") or {}).get("pattern")))
        if words:
            return f"allowed: {words}"
    return _allowed(first["msg"])


def pulumi_config_path(loc: tuple[Any, ...]) -> str:
    """The `--path` of `pulumi config set` for a key path in the site object."""
    text = SITE_KEY
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _quote_hint(
    path: str,
    error: Any,
    plain_scalars: dict[str, tuple[str, str]] | None,
    takes_text: bool,
    quoted_valid: typing.Callable[[str], bool] = lambda text: True,
) -> str:
    """Where YAML 1.1 made a boolean or number of an unquoted word (`on`, `1.30`) and the key
    takes text, say to quote it; where it takes a number, quoting changes nothing (`port: 88830`
    is out of range however written): no hint, but for a boolean given for a number. Nor where
    the quoted text would be refused too (`quoted_valid`): `role: 1` is no role quoted either."""
    source = (plain_scalars or {}).get(path)
    if source is None or isinstance(error.get("input"), str):
        return ""
    text, tag = source
    what = _TYPE_WORDS.get(tag, "a non-string value")
    if isinstance(error.get("input"), BooleanGiven):  # a number belongs here: quoting won't do
        return f" (YAML read the unquoted {text} as {what}: write a number)"
    if not takes_text or not quoted_valid(text):
        # Quoting would only trade one refusal for another (`role: "1"` is no role either).
        return ""
    key = path.rsplit(".", 1)[-1]
    shown = f'{key}: "{text}"' if not key.isdigit() else f'"{text}"'
    read = f"the unquoted {text}" if text else "the empty value"
    return f" (YAML read {read} as {what}: quote it, {shown})"


def _text_valid(model: type[BaseModel], loc: tuple[Any, ...], text: str) -> bool:
    """Whether the key at `loc` would take `text`, a string, on its own (with the field's own
    constraints: a pattern, a length)."""
    parent = _model_at(model, loc[:-1]) if loc else None
    target: Any
    if (
        isinstance(parent, type)
        and issubclass(parent, BaseModel)
        and str(loc[-1]) in (parent.model_fields)
    ):
        field = parent.model_fields[str(loc[-1])]
        target = typing.Annotated[field.annotation, field]
    else:
        target = _model_at(model, loc)
    if target is None:
        return True  # unknown: hint as before
    try:
        TypeAdapter(target).validate_python(text)
    except Exception:  # a ValidationError, or a check needing context: not valid on its own
        return False
    return True


def _role_refused(model: type[BaseModel]) -> str:
    """`role:` on a kind that has no role: what role is for, and that this kind never has it."""
    kinds = typing.get_args(_unwrap(model.model_fields["kind"].annotation))
    site = a_kind_site(kinds[0]) if len(kinds) == 1 else "this kind of site"
    allowed = ", ".join(STORAGE_ONLY_KINDS[:-1]) + f" and {STORAGE_ONLY_KINDS[-1]}"
    return (
        f"unknown key 'role' on {site}: role: storage (a site of buckets only) applies to "
        f"{allowed} sites, and {site} is always a full one (role: full is refused too): "
        "remove the key"
    )


def _takes_text(model: type[BaseModel], loc: tuple[Any, ...]) -> bool:
    """Whether the key at `loc` takes a string (str, a string Literal or enum) in some form."""
    target = _model_at(model, loc)
    arms = typing.get_args(target) if typing.get_origin(target) in _UNIONS else (target,)
    for arm in arms:
        arm = _unwrap(arm)
        if typing.get_origin(arm) is typing.Literal:
            if any(isinstance(value, str) for value in typing.get_args(arm)):
                return True
        elif isinstance(arm, type) and issubclass(arm, str):
            return True
    return False


# A model's own check that names the key it is about: "site.<key>: <message>" (site_base.py);
# a tag's key (`site.tags.<key>`) is any characters but spaces, `:` and `.` included.
_NAMES_ITS_KEY = re.compile(
    r"^site\.(?P<key>[a-z_]+(?:\.[a-z_]+)*|tags\.\S+?): (?P<message>.*)\Z", re.S
)


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
            field = _field_named(current, str(part))
            if field is None:
                return None
            current = field.annotation
        elif typing.get_origin(current) in (dict, list, tuple):
            args = typing.get_args(current)
            current = args[-1] if args else None
        else:
            return None
    return _unwrap(current)


def _field_named(model: type[BaseModel], key: str) -> Any:
    """The field of `model` a stack file names `key` (its alias, where it has one: `for`)."""
    fields = model.model_fields
    return fields.get(key) or next((f for f in fields.values() if f.alias == key), None)


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in _UNIONS:
            models = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = models[0] if len(models) == 1 else tp
            if len(models) != 1:
                return tp
        else:
            return tp


def _field_names(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    target = _model_at(model, loc)
    if isinstance(target, type) and issubclass(target, BaseModel):
        return [field.alias or name for name, field in target.model_fields.items()]
    return []


def _description(model: type[BaseModel], loc: tuple[Any, ...]) -> str | None:
    parent = _model_at(model, loc[:-1])
    if isinstance(parent, type) and issubclass(parent, BaseModel):
        field = _field_named(parent, str(loc[-1]))
        return field.description if field else None
    return None


__all__ = [
    "CheckedStack",
    "StackFile",
    "check_stack_file",
    "load_stack_file",
    "read_stack_file",
    "site_notes",
    "listed_once",
    "validate_site",
]
