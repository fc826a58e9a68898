"""Untrusted text (a recorded plan's errors, names and values) made literal in Markdown.

The rule: every control character is normalised first (`\\r\\n`, `\\r`, U+0085, U+2028 and
U+2029 end a line as `\\n`; any other C0/C1 control but a tab becomes U+FFFD), then the text is
either escaped (`&`, `<`, `>` as entities, which rules out HTML and autolinks; the marks of
emphasis, code, links, images, tables and strikethrough, ``\\ ` * _ [ ] ! | ~``, with a backslash,
which CommonMark renders as the mark itself) or placed in a fenced block whose fence is longer
than any backtick run inside it. Escaped text never starts a line of its own (it is joined into
one line), so line-start marks (`#`, `-`, `>`, `1.`) need no escape. A bare URL still shows
as GitHub's autolink of the same visible text."""

from __future__ import annotations

import re

_LINE_ENDS = re.compile(r"\r\n|[\r\u0085\u2028\u2029]")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x84\x86-\x9f]")
_BACKTICKS = re.compile(r"`+")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_PUNCTUATION = {c: "\\" + c for c in "\\`*_[]!|~"}
_ESCAPES = str.maketrans({**_PUNCTUATION, **_ENTITIES})


def normalise(text: str) -> str:
    """`text` with `\\n` its only line end and no control character but tab and `\\n`."""
    return _CONTROLS.sub("\ufffd", _LINE_ENDS.sub("\n", text))


def inline(text: str, newline: str = " ") -> str:
    """`text` as literal inline Markdown (a table cell included); its lines joined by `newline`."""
    return newline.join(normalise(text).translate(_ESCAPES).split("\n"))


def code(text: str, table: bool = False) -> str:
    """`text` as an inline code span: its delimiters are longer than any backtick run inside and
    its lines are joined by spaces; in a GFM table cell (`table`), pipes are escaped."""
    one_line = " ".join(normalise(text).split("\n"))
    if table:
        one_line = one_line.replace("|", "\\|")
    longest = max((len(run) for run in _BACKTICKS.findall(one_line)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if one_line.startswith("`") or one_line.endswith("`") else ""
    return f"{ticks}{pad}{one_line}{pad}{ticks}"


def fenced(lines: list[str], info: str = "text") -> list[str]:
    """`lines` as one fenced code block: the fence is longer than any backtick run inside."""
    body = normalise("\n".join(lines)).split("\n") if lines else []
    longest = max((len(run) for run in _BACKTICKS.findall("\n".join(body))), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{info}", *body, fence]
