"""Which files of a project tree the Pulumi program loads: the static import closure of
`__main__.py`, found by the standard library's `modulefinder`.

`modulefinder` reads bytecode, so imports inside functions count too (the program imports
its components lazily). Only the tree itself is searched: third-party packages are not
followed, which keeps this to a fraction of a second."""

from __future__ import annotations

import modulefinder
from pathlib import Path

ENTRY_POINT = "__main__.py"


def program_files(tree: Path) -> frozenset[str]:
    """Paths (relative, POSIX) of the tree's own modules that `__main__.py` imports, itself included."""
    entry = tree / ENTRY_POINT
    if not entry.is_file():
        return frozenset()
    root = tree.resolve()
    finder = modulefinder.ModuleFinder(path=[str(root)])
    finder.run_script(str(entry))
    found = {ENTRY_POINT}
    for module in finder.modules.values():
        file = getattr(module, "__file__", None)
        if not file:
            continue
        path = Path(file).resolve()
        if path.is_relative_to(root):
            found.add(path.relative_to(root).as_posix())
    return frozenset(found)
