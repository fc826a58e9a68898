"""The case study's README tells its cost truly and its default output leaves no untracked
files (review 34, P4)."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "examples/case-study/README.md"


def test_the_default_output_folder_is_ignored_by_git() -> None:
    run = (ROOT / "examples/case-study/run.py").read_text()
    assert 'default=Path(__file__).parent / "out"' in run
    for name in ("forecast.png", "model-card.md", "metrics.json"):
        done = subprocess.run(
            ["git", "-C", str(ROOT), "check-ignore", "-q", f"examples/case-study/out/{name}"],
            check=False,
        )
        assert done.returncode == 0, f"examples/case-study/out/{name} is not ignored"
    assert "`examples/case-study/out/`, is ignored by\ngit" in README.read_text()


def test_the_readme_states_a_measured_duration_with_its_conditions() -> None:
    text = README.read_text()
    assert "about a minute" not in text
    assert "# 4 to 6 minutes on 2 shared cores" in text
    assert "241 s and 338 s on a machine of 2 cores that other work shared" in text
