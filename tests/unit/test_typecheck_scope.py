"""`make typecheck` (plain `mypy`, configured in pyproject.toml) checks every service's package.

The services are distributions of their own, installed editable through import hooks that mypy
cannot follow: each must be named in `packages` and its folder be on `mypy_path`, or a new
service would go unchecked without anyone noticing.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _mypy_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]


def _service_packages() -> dict[str, str]:
    """Each services/<name>/<package>/__init__.py: package name -> its folder (repo-relative)."""
    found = sorted((ROOT / "services").glob("*/*/__init__.py"))
    return {p.parent.name: p.parent.parent.relative_to(ROOT).as_posix() for p in found}


def test_every_service_package_is_type_checked() -> None:
    config = _mypy_config()
    services = _service_packages()
    assert {"fedeploy_ingestion", "fedeploy_inference"} <= services.keys()
    path = set(re.split(r"[,:]", config["mypy_path"]))
    unchecked = sorted(name for name in services if name not in config["packages"])
    off_path = sorted(folder for folder in services.values() if folder not in path)
    assert not unchecked, f"add {unchecked} to [tool.mypy] packages in pyproject.toml"
    assert not off_path, f"add {off_path} to [tool.mypy] mypy_path in pyproject.toml"
