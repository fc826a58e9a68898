"""fedeploy/ reads by command (docs/architecture.md, "fedeploy/: one package per command"):
every command comes from its own package's `command` module, cli.py only registers them, and
the map names every package and top-level module of fedeploy/."""

from __future__ import annotations

from pathlib import Path

import typer.main

from fedeploy.cli import app

ROOT = Path(__file__).resolve().parents[2]
# Commands whose package is named otherwise (a Python name, or a group of the stack file's own).
PACKAGE = {
    "restore-drill": "restore_drill",
    "schema": "validate",
    "config-reference": "validate",
}


def _section() -> str:
    text = (ROOT / "docs" / "architecture.md").read_text()
    start = text.index("## fedeploy/: one package per command")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_every_command_lives_in_its_own_package() -> None:
    for info in app.registered_commands:
        name = info.name or typer.main.get_command_name(info.callback.__name__)
        module = info.callback.__module__
        assert module == f"fedeploy.{PACKAGE.get(name, name)}.command", (name, module)
    for group in app.registered_groups:
        module = type(group.typer_instance).__module__
        callbacks = {c.callback.__module__ for c in group.typer_instance.registered_commands}
        assert callbacks == {f"fedeploy.{group.name}.command"}, (group.name, callbacks, module)


def test_the_map_names_every_package_and_top_level_module() -> None:
    section = _section()
    fedeploy = ROOT / "fedeploy"
    packages = [p.name for p in fedeploy.iterdir() if (p / "__init__.py").is_file()]
    modules = [p.name for p in fedeploy.glob("*.py") if p.name != "__init__.py"]
    assert packages and modules
    missing = [f"{name}/" for name in packages if f"`{name}/`" not in section]
    missing += [name for name in modules if f"`{name}`" not in section]
    assert not missing, f"docs/architecture.md does not name: {missing}"
