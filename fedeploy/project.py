"""Where the project's files are: the charts, the bridge templates and images.lock.yaml.

They live in the project directory (the repository holding Pulumi.yaml), not in the installed
package. `pulumi up` runs the program there; the pipelines install fedeploy with
`pip install ".[deploy]"` (not editable) and run it there too. So the project directory is:
FEDEPLOY_PROJECT_DIR when set (relative to the current directory if relative); else the current
directory when it is a fedeploy project (Pulumi.yaml and the Chart.yaml of each of our charts);
else the directory above the package (a source checkout or an editable install). Directories
above the current one are never searched: a Pulumi.yaml planted in a shared parent (/tmp, a
home directory) would otherwise choose the charts and image digests that get deployed."""

from __future__ import annotations

import os
from pathlib import Path

from fedeploy.errors import FedeployError

_PACKAGE_PARENT = Path(__file__).resolve().parent.parent
CHARTS = ("catalog", "ingestion", "inference")


class ProjectError(FedeployError):
    """The project directory fedeploy chose holds no fedeploy project."""


def _missing(path: Path) -> list[str]:
    """What a fedeploy project directory needs and `path` lacks, as paths relative to it."""
    needed = ["Pulumi.yaml", *(f"charts/{chart}/Chart.yaml" for chart in CHARTS)]
    return [name for name in needed if not (path / name).is_file()]


def _is_project(path: Path) -> bool:
    return not _missing(path)


def _locate() -> tuple[Path, str]:
    """The project directory and the rule that chose it, in words."""
    given = os.environ.get("FEDEPLOY_PROJECT_DIR")
    if given:
        return Path(given).resolve(), f"FEDEPLOY_PROJECT_DIR={given}"
    here = Path.cwd()
    if _is_project(here):
        return here.resolve(), "the current directory"
    return _PACKAGE_PARENT, (
        f"the directory above the fedeploy package, since the current directory {here} "
        "is no fedeploy project"
    )


def project_dir() -> Path:
    """The project directory, absolute (see the module's docstring for how it is found).

    Never raises (modules compute their paths from it at import); require_project says what is
    wrong with it."""
    return _locate()[0]


def require_project(path: Path | None = None) -> Path:
    """`path` (default: project_dir()) when it is a fedeploy project directory.

    Raises ProjectError naming the directory, the rule that chose it and the files it lacks."""
    where, how = _locate()
    path = path or where
    missing = _missing(path)
    if missing:
        raise ProjectError(
            f"{path}: not a fedeploy project directory (chosen as {how}): no "
            f"{', '.join(missing)}. Run fedeploy in the directory holding Pulumi.yaml and "
            "charts/, or set FEDEPLOY_PROJECT_DIR to it"
        )
    return path
