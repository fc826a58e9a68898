"""The image's Dockerfile: pinned base, multi-stage, non-root, no build tools at run time.

There is no Docker engine here, so the image is not built by the tests; CI's image job is.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

SERVICE = Path(__file__).resolve().parents[1]
LINES = [line.strip() for line in (SERVICE / "Dockerfile").read_text().splitlines()]


def arguments() -> dict[str, str]:
    found = {}
    for line in LINES:
        match = re.match(r"^ARG (\w+)=(\S+)$", line)
        if match:
            found[match[1]] = match[2]
    return found


def stages() -> list[list[str]]:
    result: list[list[str]] = []
    for line in LINES:
        if line.startswith("FROM "):
            result.append([line])
        elif result and line and not line.startswith("#"):
            result[-1].append(line)
    return result


def test_every_base_image_is_pinned_to_an_exact_tag_or_digest() -> None:
    images = []
    for stage in stages():
        image = stage[0].split()[1]
        image = re.sub(r"\$\{(\w+)\}", lambda m: arguments()[m[1]], image)
        images.append(image)
    assert len(images) >= 2, "expected a build stage and a run stage"
    for image in images:
        assert "@sha256:" in image or re.search(r":\d+\.\d+\.\d+[-\w.]*$", image), image


def test_the_final_stage_runs_as_a_numeric_non_root_user() -> None:
    users = [line.split()[1] for line in stages()[-1] if line.startswith("USER ")]
    assert users, "the final stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0


def test_the_final_stage_installs_no_build_tools() -> None:
    final = " ".join(stages()[-1])
    for tool in ("apt-get install", "apk add", "gcc", "build-essential", "pip install"):
        assert tool not in final


def test_the_image_runs_the_console_script_of_this_package() -> None:
    project = tomllib.loads((SERVICE / "pyproject.toml").read_text())["project"]
    assert "fedeploy-ingest" in project["scripts"]
    assert 'ENTRYPOINT ["fedeploy-ingest"]' in LINES
    assert any("COPY --from=build" in line for line in stages()[-1])
