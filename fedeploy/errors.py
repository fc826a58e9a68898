"""The project's own errors: each names the place, what was found and what is allowed."""

from __future__ import annotations

from dataclasses import dataclass


class FedeployError(Exception):
    """Base of every error fedeploy reports to a user; `exit_code` is the CLI's exit status."""

    exit_code = 2


@dataclass(frozen=True, order=True)
class ConfigIssue:
    """One problem in a stack file."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class StackConfigError(FedeployError):
    """A stack file that does not validate; carries every problem found in it."""

    def __init__(self, stack_file: str, issues: list[ConfigIssue]):
        self.stack_file = stack_file
        self.issues = sorted(set(issues))
        noun = "problem" if len(self.issues) == 1 else "problems"
        lines = [f"{stack_file}: {len(self.issues)} {noun} in the site config"]
        lines += [f"  - {issue}" for issue in self.issues]
        super().__init__("\n".join(lines))


class FederationError(FedeployError):
    """A problem only the federation as a whole shows: references, cycles, clashes."""


class ProgramError(FedeployError):
    """The Pulumi program of a stack failed while planning."""
