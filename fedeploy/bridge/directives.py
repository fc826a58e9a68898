"""`#SBATCH` lines of a batch script, translated into the job spec or refused by line.

slurmrestd 22.05 does not read a script's `#SBATCH` lines: a job submitted through it with
`#SBATCH --cpus-per-task=2` runs with one CPU, silently. The bridge reads them as sbatch
would (only in the block of comments before the first command) and turns each one into the
field of `JobSpec` that means the same; a directive it cannot honour is refused with its line
number, so nothing is dropped silently. See docs/bridge.md ("#SBATCH directives").
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_Convert = Callable[[str], Any]


class DirectiveError(ValueError):
    """A directive the bridge cannot honour, or whose value it cannot read; names the line."""


@dataclass(frozen=True)
class Directive:
    """One option of an `#SBATCH` line: where it is, what it says, and the field it sets."""

    line: int
    text: str
    option: str  # the long name, without dashes
    value: str | None

    def where(self) -> str:
        return f"script line {self.line} ({self.text.strip()!r})"


def _positive_int(value: str) -> int:
    if not re.fullmatch(r"[0-9]+", value) or int(value) < 1:
        raise ValueError("expected a whole number of at least 1")
    return int(value)


def _one(value: str) -> int:
    if value not in ("1", "1-1"):
        raise ValueError(
            "the bridge runs one task on one node; more need srun inside the job "
            "(and a job spec with more nodes, which the bridge does not offer)"
        )
    return 1


def slurm_minutes(value: str) -> int:
    """A SLURM time limit in whole minutes, rounded up: "M", "M:S", "H:M:S", "D-H",
    "D-H:M", "D-H:M:S". Raises ValueError for anything else (and for UNLIMITED)."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", value.strip())
    if not match:
        raise ValueError(
            "not a SLURM time: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS "
            "(the bridge needs a finite limit)"
        )
    days, first, second, third = match.groups()
    if days is not None:
        hours, minutes, seconds = int(first), int(second or 0), int(third or 0)
    elif third is not None:
        hours, minutes, seconds = int(first), int(second), int(third)
    elif second is not None:
        hours, minutes, seconds = 0, int(first), int(second)
    else:
        hours, minutes, seconds = 0, int(first), 0
    total = ((int(days or 0) * 24 + hours) * 60 + minutes) * 60 + seconds
    if total <= 0:
        raise ValueError("a time limit of zero")
    return math.ceil(total / 60)


_MEMORY_UNITS = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}


def _megabytes(value: str) -> int:
    match = re.fullmatch(r"([0-9]+)([KMGT]?)B?", value.strip().upper())
    if not match or int(match.group(1)) == 0:
        raise ValueError("expected memory per node such as 4000, 4000M, 16G (0 is refused)")
    return max(1, math.ceil(int(match.group(1)) * _MEMORY_UNITS[match.group(2) or "M"]))


def _gpus(value: str) -> int:
    if ":" in value:
        raise ValueError("GPU types (type:count) are not supported: give a count, e.g. --gpus=2")
    return _positive_int(value)


def _absolute(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError("the working directory must be absolute")
    return value


def _path(value: str) -> str:
    # Relative paths are resolved against the working directory once it is known.
    if not value or value.lower() == "none":
        raise ValueError("an output path is needed (the bridge has no 'none')")
    return value


def _name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,100}", value):
        raise ValueError("a job name of 1 to 100 letters, digits, '.', '_' or '-'")
    return value


def _identifier(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", value):
        raise ValueError("1 to 64 letters, digits, '.', '_' or '-'")
    return value


# The directives the bridge translates: long option -> (short option, JobSpec field, reader).
# A field of None means "allowed when it asks for what the bridge does anyway".
SUPPORTED: dict[str, tuple[str | None, str | None, _Convert]] = {
    "job-name": ("J", "name", _name),
    "partition": ("p", "partition", _identifier),
    "time": ("t", "time_limit_minutes", slurm_minutes),
    "cpus-per-task": ("c", "cpus", _positive_int),
    "mem": (None, "memory_mb", _megabytes),
    "gpus": ("G", "gpus", _gpus),
    "output": ("o", "stdout", _path),
    "error": ("e", "stderr", _path),
    "chdir": ("D", "working_directory", _absolute),
    "account": ("A", "account", _identifier),
    "qos": ("q", "qos", _identifier),
    "ntasks": ("n", None, _one),
    "nodes": ("N", None, _one),
}
_SHORT = {short: long for long, (short, _, _) in SUPPORTED.items() if short}

# Why some common directives are refused, beyond "not translated".
_HINTS = {
    "array": "job arrays are not supported: submit one job per task (each with its own key)",
    "dependency": "the bridge uses the job's dependency itself (it keeps one job per "
    "idempotency key): wait for the other job in the caller instead",
    "export": "the job's environment comes from the job spec (environment=...)",
    "mem-per-cpu": "give memory per node with --mem",
    "gres": "give GPUs with --gpus=<count>",
    "requeue": "the bridge never requeues a job: a second run would surprise whoever waits",
    "hold": "the bridge starts jobs at once",
    "wrap": "submit the command as the script itself",
    "ntasks-per-node": "the bridge runs one task; start more with srun inside the job",
}
_REFUSED_SHORT = {"a": "array", "d": "dependency", "H": "hold"}
_LONG = re.compile(r"^--([A-Za-z][A-Za-z0-9-]*)(?:=(.*))?$", re.S)


def directives(script: str) -> list[Directive]:
    """The `#SBATCH` options of a script, as sbatch reads them: from the lines after the
    interpreter line up to the first line that is neither blank nor a comment.

    Raises DirectiveError naming the line for an option the bridge does not translate."""
    found: list[Directive] = []
    for number, line in enumerate(script.splitlines(), start=1):
        stripped = line.strip()
        if number == 1 and stripped.startswith("#!"):
            continue
        if not stripped:
            continue
        if not stripped.startswith("#"):
            break  # sbatch stops at the first command
        if not stripped.startswith("#SBATCH"):
            continue
        found.extend(_line_options(number, line, stripped[len("#SBATCH") :]))
    return found


def _line_options(number: int, line: str, rest: str) -> list[Directive]:
    try:
        words = shlex.split(rest, comments=True)
    except ValueError as err:
        raise DirectiveError(f"script line {number} ({line.strip()!r}): {err}") from None
    options: list[Directive] = []
    index = 0
    while index < len(words):
        word = words[index]
        if word.startswith("--") and (match := _LONG.match(word)):
            name, value = match.groups()
            long, shown, hint = name, f"--{name}", _HINTS.get(name, "")
        elif re.match(r"^-[A-Za-z]", word):  # -c2, -c 2, -c=2, -J name, -o/path
            short, attached = word[1], word[2:].removeprefix("=")
            value = attached or None
            long = _SHORT.get(short) or ""
            shown, hint = f"-{short}", _HINTS.get(_REFUSED_SHORT.get(short, ""), "")
        else:
            raise DirectiveError(
                f"script line {number} ({line.strip()!r}): {word!r} is not an option"
            )
        if long not in SUPPORTED:
            raise DirectiveError(
                f"script line {number} ({line.strip()!r}): the bridge does not translate "
                f"{shown}{': ' + hint if hint else ''}; it translates "
                f"{', '.join('--' + o for o in SUPPORTED)} (or remove the line)"
            )
        if value is None:
            index += 1
            if index >= len(words):
                raise DirectiveError(
                    f"script line {number} ({line.strip()!r}): {shown} needs a value"
                )
            value = words[index]
        options.append(Directive(number, line, long, value))
        index += 1
    return options


def directive_fields(script: str) -> dict[str, tuple[Any, Directive]]:
    """JobSpec fields the script's directives set: field -> (value, the directive).

    Raises DirectiveError naming the line for a directive the bridge does not translate,
    a value it cannot read, or two lines that set the same field differently."""
    fields: dict[str, tuple[Any, Directive]] = {}
    for directive in directives(script):
        _, field, convert = SUPPORTED[directive.option]
        try:
            value = convert(directive.value or "")
        except ValueError as err:
            raise DirectiveError(f"{directive.where()}: {err}") from None
        if field is None:
            continue
        if field in fields and fields[field][0] != value:
            raise DirectiveError(
                f"{directive.where()} contradicts {fields[field][1].where()}: keep one"
            )
        fields[field] = (value, directive)
    return fields
