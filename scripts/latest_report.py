"""The report of `make test-latest`: what moved since the lock, what failed, what is known.

Reads the lock (requirements/dev.txt), the throwaway environment's `pip freeze`, the known
upstream regressions (requirements/upstream-regressions.txt: a constraint, then `# test: NODE`)
and pytest's JUnit XML. Prints three parts: packages whose version differs from the lock; each
known regression whose excluded release is the one installed, with its test's outcome; the
failed tests.
"""

from __future__ import annotations

import argparse
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def pins(text: str) -> dict[str, str]:
    """`name==version` lines of a lock or a freeze, by canonical name."""
    return {canonicalize_name(m[1]): m[2] for line in text.splitlines() if (m := _PIN.match(line))}


def regressions(text: str) -> list[tuple[Requirement, str, str]]:
    """(constraint, its test's node id, the comment above it) for each known regression."""
    found: list[tuple[Requirement, str, str]] = []
    comment: list[str] = []
    current: Requirement | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("# test:") and current is not None:
            found.append((current, line.removeprefix("# test:").strip(), " ".join(comment)))
            current, comment = None, []
        elif line.startswith("#"):
            comment.append(line.lstrip("# "))
        elif line:
            current = Requirement(line)
        else:
            comment = [] if current is None else comment
    return found


def outcomes(junit: Path) -> dict[str, str]:
    """Each test case of pytest's JUnit XML by dotted id (module[.Class].name): its outcome,
    "passed", "failed" (failure or error) or "skipped". Empty when the file is missing."""
    if not junit.exists():
        return {}
    found = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
        elif case.find("skipped") is not None:
            outcome = "skipped"
        else:
            outcome = "passed"
        found[f"{case.get('classname', '')}.{case.get('name', '')}"] = outcome
    return found


def regression_outcome(results: dict[str, str], test: str) -> str:
    """What the tests of one module (`tests/upstream/x.py`) did: "still fails" if any failed,
    "now passes" only if some ran and all passed, else "not run" (deselected, skipped, or a
    collection error pytest reports under the module's own name)."""
    module = test.removesuffix(".py").replace("/", ".")
    mine = [o for case, o in results.items() if case == module or case.startswith(module + ".")]
    if "failed" in mine:
        return "still fails"
    if mine and all(o == "passed" for o in mine):
        return "now passes"
    return "not run: run its test to know"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for flag in ("--lock", "--freeze", "--regressions", "--junit"):
        parser.add_argument(flag, type=Path, required=True)
    args = parser.parse_args()
    locked, latest = pins(args.lock.read_text()), pins(args.freeze.read_text())
    results = outcomes(args.junit)
    failed = sorted(case for case, outcome in results.items() if outcome == "failed")

    moved = sorted(n for n in latest if n in locked and latest[n] != locked[n])
    new = sorted(n for n in latest if n not in locked)
    print(f"\n== newest releases against the lock: {len(moved)} moved, {len(new)} new")
    for name in moved:
        print(f"  {name}: lock {locked[name]} -> latest {latest[name]}")
    for name in new:
        print(f"  {name}: not in the lock -> latest {latest[name]}")

    print("\n== known upstream regressions (requirements/upstream-regressions.txt)")
    for constraint, test, why in regressions(args.regressions.read_text()):
        name = canonicalize_name(constraint.name)
        installed = latest.get(name)
        if installed is None or constraint.specifier.contains(installed, prereleases=True):
            print(f"  {name} {installed}: not the excluded release ({constraint}); {test}")
            continue
        outcome = regression_outcome(results, test)
        print(f"  {name} {installed} (lock {locked.get(name)}): KNOWN REGRESSION, {test} {outcome}")
        print(f"    {why}")

    print(f"\n== failed tests: {len(failed)}")
    for node in failed:
        print(f"  {node}")


if __name__ == "__main__":
    main()
