"""The answer of `fedeploy affected`, and its JSON form (what a pipeline's job matrix reads)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fedeploy.gitops.closure import SiteInfo


@dataclass
class Affected:
    """Affected stacks in waves, each with its reasons; removed stacks; paths that touch nothing."""

    base: str | None
    head: str
    waves: list[list[str]]
    reasons: dict[str, list[str]]
    sites: dict[str, SiteInfo]
    removed: dict[str, str] = field(default_factory=dict)
    ignored: dict[str, str] = field(default_factory=dict)
    # What the answer leaves out: stack files the working tree holds differently from --head.
    notes: list[str] = field(default_factory=list)

    @property
    def stacks(self) -> list[str]:
        """Every affected stack, in deployment order."""
        return [stack for wave in self.waves for stack in wave]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: `waves` and `stacks` feed job matrices, `sites[s].environment` approvals."""
        return {
            "base": self.base,
            "head": self.head,
            "waves": self.waves,
            "stacks": self.stacks,
            "removed": sorted(self.removed),
            "reasons": {stack: self.reasons[stack] for stack in self.stacks},
            "removed_reasons": dict(sorted(self.removed.items())),
            "sites": {
                stack: {
                    "kind": self.sites[stack].kind,
                    "environment": self.sites[stack].environment,
                    "region": self.sites[stack].region,
                    "wave": index + 1,
                }
                for index, wave in enumerate(self.waves)
                for stack in wave
            },
            "ignored": dict(sorted(self.ignored.items())),
            "notes": self.notes,
        }
