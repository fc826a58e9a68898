"""Where the project's files are: the charts, the bridge templates and images.lock.yaml.

They live in the project directory (the repository holding Pulumi.yaml), not in the installed
package. `pulumi up` runs the program there; the pipelines install fedeploy with
`pip install ".[deploy]"` (not editable) and run it there too. So the project directory is:
FEDEPLOY_PROJECT_DIR when set; else the current directory when it holds Pulumi.yaml and charts/;
else the directory above the package (a source checkout or an editable install)."""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_PARENT = Path(__file__).resolve().parent.parent


def _is_project(path: Path) -> bool:
    return (path / "Pulumi.yaml").is_file() and (path / "charts").is_dir()


def project_dir() -> Path:
    """The project directory, absolute (see the module's docstring for how it is found)."""
    given = os.environ.get("FEDEPLOY_PROJECT_DIR")
    if given:
        return Path(given).resolve()
    here = Path.cwd()
    return here.resolve() if _is_project(here) else _PACKAGE_PARENT
