"""The code's layout (docs/architecture.md): no import circle among fedeploy/, components/ and
policies/, and no cloud provider SDK imported outside components/providers/."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("fedeploy", "components", "policies")
SDKS = ("pulumi_aws", "pulumi_openstack", "pulumi_ovh")
PROVIDERS = Path("components/providers")


def _modules() -> dict[str, Path]:
    """Every module of the packages, by dotted name (a package by its own name)."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "__pycache__" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST, module: str, is_package: bool, runtime: bool) -> Iterator[str]:
    """Dotted names `node` imports (for `from a import b`: `a.b`), relative ones resolved;
    with `runtime`, not those under `if TYPE_CHECKING:`. Imports inside functions count."""
    for child in ast.iter_child_nodes(node):
        if runtime and isinstance(child, ast.If) and _type_checking(child.test):
            for branch in child.orelse:
                yield from _imports(branch, module, is_package, runtime)
            continue
        if isinstance(child, ast.Import):
            yield from (alias.name for alias in child.names)
        elif isinstance(child, ast.ImportFrom):
            base = child.module or ""
            if child.level:
                package = module if is_package else module.rpartition(".")[0]
                for _ in range(child.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            yield base
            yield from (f"{base}.{alias.name}" for alias in child.names)
        else:
            yield from _imports(child, module, is_package, runtime)


def _graph(runtime: bool = True) -> dict[str, set[str]]:
    """Module -> the project's modules it imports (a name resolves to its longest module prefix)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for imported in _imports(tree, name, path.name == "__init__.py", runtime):
            target = imported
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                graph[name].add(target)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of `graph` with more than one node, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_the_circle_finder_finds_a_circle_and_ignores_a_chain() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert strongly_connected(graph) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_type_checking_imports_are_not_runtime_edges() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from policies.cloud import Rule\n"
        "def f():\n    from policies import findings\n"
    )
    runtime = set(_imports(tree, "policies.x", False, runtime=True))
    assert "policies.cloud.Rule" not in runtime
    assert "policies.findings" in runtime


def test_no_import_circle() -> None:
    circles = strongly_connected(_graph())
    assert not circles, "import circles (modules that import each other at run time): " + "; ".join(
        " <-> ".join(circle) for circle in circles
    )


def test_no_cloud_sdk_is_imported_outside_components_providers() -> None:
    outside = []
    for name, path in _modules().items():
        relative = path.relative_to(ROOT)
        if relative.is_relative_to(PROVIDERS):
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        sdks = {i.split(".")[0] for i in _imports(tree, name, False, runtime=False)} & set(SDKS)
        outside += [f"{relative}: {sdk}" for sdk in sorted(sdks)]
    assert not outside, f"cloud SDKs belong in {PROVIDERS}/<kind>/: {outside}"


def test_the_code_map_names_files_that_exist_and_every_provider_package() -> None:
    from components.providers import PROVIDERS

    text = (ROOT / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`(components/[\w/.]+)`", text))
    for first, alternatives, rest in re.findall(
        r"`(components/[\w/]*)\{([\w,]+)\}([\w/.]*)`", text
    ):
        named |= {f"{first}{alternative}{rest}" for alternative in alternatives.split(",")}
    assert named, "docs/architecture.md names no file under components/"
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert not missing, f"docs/architecture.md names files that do not exist: {missing}"
    for package in set(PROVIDERS.values()):
        folder = package.removeprefix("components.providers.")
        assert f"`{folder}/`" in text, f"docs/architecture.md has no row for {package}"


def test_every_provider_package_has_the_same_shape() -> None:
    from components.providers import PROVIDERS as REGISTRY
    from components.providers import provider_for

    allowed = {"network", "cluster", "storage", "database", "bridge_host", "identity"}
    packages = sorted(p for p in (ROOT / PROVIDERS).iterdir() if (p / "__init__.py").exists())
    assert {p.name for p in packages} == {m.rsplit(".", 1)[-1] for m in REGISTRY.values()}
    for package in packages:
        modules = {p.stem for p in package.glob("*.py")} - {"__init__"}
        assert modules <= allowed, f"{package.relative_to(ROOT)}: {sorted(modules - allowed)}"
    for kind in REGISTRY:
        assert callable(provider_for(kind)), kind


# A component's type token is part of every URN under it: a changed token replaces the
# resources of every deployed stack, wherever the class lives (docs/architecture.md).
TYPE_TOKENS = {
    "fedeploy:catalog:RdsPostgres",
    "fedeploy:cluster:KubernetesCluster",
    "fedeploy:hpc:SlurmBridge",
    "fedeploy:identity:WorkloadRole",
    "fedeploy:network:OpenStackNetwork",
    "fedeploy:network:OvhPrivateNetwork",
    "fedeploy:network:Vpc",
    "fedeploy:services:ServiceRelease",
    "fedeploy:site:Hub",
    "fedeploy:site:Site",
    "fedeploy:storage:ObjectStore",
}


def test_component_type_tokens_are_the_deployed_ones() -> None:
    tokens = set()
    for path in sorted((ROOT / "components").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "__init__"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and str(node.args[0].value).startswith("fedeploy:")
            ):
                tokens.add(node.args[0].value)
    assert tokens == TYPE_TOKENS
