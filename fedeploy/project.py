"""Where the project's files are: the charts, the bridge templates, images.lock.yaml and the
stack files.

They live in the project directory (the repository holding Pulumi.yaml), not in the installed
package. `pulumi up` runs the program there; the pipelines install fedeploy with
`pip install ".[deploy]"` (not editable) and run it there too. So the project directory is:

1. FEDEPLOY_PROJECT_DIR when set (relative to the current directory if relative);
2. else the current directory when it is a fedeploy project (Pulumi.yaml and the Chart.yaml of
   each of our charts);
3. else the nearest directory above it that is one, searched no higher than the top of the git
   work tree holding the current directory (a user editing stacks/ or docs/ of a clone);
4. else the directory above the package (a source checkout or an editable install).

Outside a git work tree, directories above the current one are never searched: a Pulumi.yaml
planted in a shared parent (/tmp, a home directory) would otherwise choose the charts and image
digests that get deployed. Inside one the search stops at its top, and git itself refuses a
work tree owned by another user (its `safe.directory` rule), so a planted `.git` in /tmp does
not widen it either.

The stacks directory is the project's `stackConfigDir` (Pulumi.yaml), relative to the project
directory, as Pulumi reads it: every command finds the same stack files from any folder."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path, PurePosixPath

import yaml

from fedeploy.errors import FedeployError

_PACKAGE_PARENT = Path(__file__).resolve().parent.parent
CHARTS = ("catalog", "ingestion", "inference")
PROJECT_FILE = "Pulumi.yaml"
PROJECT_NAME = "fedeploy"  # Pulumi.yaml's `name`: stack files set `fedeploy:site`


class ProjectError(FedeployError):
    """The project directory fedeploy chose holds no fedeploy project."""


def _missing(path: Path) -> list[str]:
    """What a fedeploy project directory needs and `path` lacks, as paths relative to it."""
    needed = [PROJECT_FILE, *(f"charts/{chart}/Chart.yaml" for chart in CHARTS)]
    return [name for name in needed if not (path / name).is_file()]


def _is_project(path: Path) -> bool:
    return not _missing(path)


def git_top(start: Path) -> Path | None:
    """The top of the git work tree holding `start`, or None (no git, not in a work tree, or a
    work tree git refuses as another user's)."""
    try:
        done = subprocess.run(
            ["git", "-C", str(start), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    top = done.stdout.strip()
    return Path(top).resolve() if done.returncode == 0 and top else None


def _locate() -> tuple[Path, str]:
    """The project directory and the rule that chose it, in words."""
    given = os.environ.get("FEDEPLOY_PROJECT_DIR")
    if given:
        return Path(given).resolve(), f"FEDEPLOY_PROJECT_DIR={given}"
    here = Path.cwd().resolve()
    if _is_project(here):
        return here, "the current directory"
    top = git_top(here)
    if top is not None and here.is_relative_to(top):
        for above in here.parents:
            if not above.is_relative_to(top):
                break
            if _is_project(above):
                return above, f"the nearest project above the current directory {here}"
    return _PACKAGE_PARENT, (
        f"the directory above the fedeploy package, since the current directory {here} "
        + ("is no fedeploy project" if top is None else f"and the git work tree {top} hold none")
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
            "charts/ (or a folder below it in its git clone), or set FEDEPLOY_PROJECT_DIR to it"
        )
    return path


def stacks_dir(project: Path | None = None) -> Path:
    """The project's stacks directory, absolute: Pulumi.yaml's `stackConfigDir` under the project
    directory (default: project_dir(), which must be a fedeploy project).

    Raises ProjectError naming the directory, or Pulumi.yaml and the key (see stack_config_dir)."""
    return stack_config_dir(require_project(project))


def stack_config_dir(root: Path) -> Path:
    """`root / stackConfigDir` as `root`'s Pulumi.yaml sets it (`root` itself when unset, as in
    Pulumi).

    Raises ProjectError naming Pulumi.yaml and the key when the file cannot be read or the
    directory it names is absolute, leaves the project or does not exist."""
    source = root / PROJECT_FILE
    try:
        document = yaml.safe_load(source.read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise ProjectError(f"{source}: cannot be read: {err}") from None
    except yaml.YAMLError as err:
        raise ProjectError(f"{source}: is not valid YAML: {err}") from None
    if not isinstance(document, dict):
        raise ProjectError(
            f"{source}: holds {type(document).__name__}, not a mapping of Pulumi project keys"
        )
    if document.get("name") != PROJECT_NAME:
        raise ProjectError(
            f"{source}: name: {document.get('name')!r}, but the stack files' settings are under "
            f"`{PROJECT_NAME}:site` and Pulumi reads a project's own keys under its name: "
            f"set `name: {PROJECT_NAME}`"
        )
    given = document.get("stackConfigDir")
    if given is None:
        return root
    inside = PurePosixPath(str(given))
    if not isinstance(given, str) or not given or inside.is_absolute() or ".." in inside.parts:
        raise ProjectError(
            f"{source}: stackConfigDir: {given!r} is not a directory inside the project "
            "(a relative path such as `stacks`)"
        )
    found = root / inside
    if not found.is_dir():
        raise ProjectError(
            f"{source}: stackConfigDir: {given!r}: {found} is not a directory; Pulumi reads the "
            "stack files (Pulumi.<site>.yaml) from it"
        )
    return found


def repository(given: Path | None) -> tuple[Path, str]:
    """The top of the git work tree that `git diff` and `affected` read (the one holding `given`,
    default: the one holding the project directory) and its stacks directory from that top
    (stackConfigDir of the top's Pulumi.yaml; `stacks` when it has none).

    Raises ProjectError when the folder is in no git work tree, or the Pulumi.yaml is broken."""
    start = given if given is not None else require_project()
    top = git_top(start)
    if top is None:
        raise ProjectError(
            f"{start.resolve()} is not inside a git work tree (chosen as "
            + ("--repo" if given is not None else _locate()[1])
            + "): give --repo the clone"
        )
    if not (top / PROJECT_FILE).is_file():
        return top, "stacks"
    return top, stack_config_dir(top).relative_to(top).as_posix() or "."


def project_notes(root: Path) -> list[str]:
    """What in `root`'s Pulumi.yaml would stop `pulumi up` though the offline plan runs: a
    `runtime.options.virtualenv` that is not there (Pulumi refuses to run the program until
    `pulumi install` creates it). Empty when the file cannot be read (stack_config_dir says why)."""
    source = root / PROJECT_FILE
    try:
        document = yaml.safe_load(source.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    runtime = document.get("runtime") if isinstance(document, dict) else None
    options = runtime.get("options") if isinstance(runtime, dict) else None
    venv = options.get("virtualenv") if isinstance(options, dict) else None
    if not isinstance(venv, str) or (root / venv / "pyvenv.cfg").is_file():
        return []
    return [
        f"{source}: runtime.options.virtualenv: {venv!r} is not a virtual environment (no "
        f"{root / venv / 'pyvenv.cfg'}); `pulumi up` refuses to run until `pulumi install` (or "
        "`make plan`) creates it"
    ]
