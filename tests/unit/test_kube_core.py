"""components/kube_core.py's light Namespace, Secret, Service and EndpointSlice against the SDK's.

This is the test that catches an upgrade of pulumi_kubernetes that changes one of the SDK's
generated classes (its type token, the properties it registers, the options it adds): the light
classes mirror them by hand, and each case below registers the light class and the SDK's class
with the same arguments under fresh mocks and compares what pulumi.CustomResource.__init__
receives (type, name, options) and the whole RegisterResource request the engine (here the
mock monitor) receives: properties with their secrets, dependencies, parent, provider, version,
plugin download URL, additional secret outputs, aliases. A difference fails; then update
kube_core.py to the new class.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pytest
from google.protobuf.json_format import MessageToDict
from pulumi.runtime import mocks as pulumi_mocks
from pulumi_kubernetes import _utilities

from components import kube_core

ROOT = Path(__file__).resolve().parents[2]
SECRET_SIG = "4dabf18193072939515e22adb298388d"  # pulumi's wire marker of a secret value
SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270"
LABELS = {"app.kubernetes.io/part-of": "fedeploy", "fedeploy.io/site": "site-a"}


class _Mocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.inputs: dict[str, dict[str, Any]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.inputs[f"{args.typ}::{args.name}"] = dict(args.inputs)
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], None]:
        return {}, None


class _Parent(pulumi.ComponentResource):
    def __init__(self, name: str) -> None:
        super().__init__("fedeploy:test:Parent", name)


def _normal(value: Any) -> Any:
    """Options made comparable: resources by their name, aliases and the like by their fields."""
    if isinstance(value, pulumi.Resource):
        return ("resource", type(value).__name__, value._name)
    if isinstance(value, list | tuple):
        return [_normal(v) for v in value]
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if hasattr(value, "__dict__") and not callable(value):  # Alias, ResourceHookBinding, ...
        return (type(value).__name__, {k: _normal(v) for k, v in vars(value).items()})
    return value


def _register(build: Callable[[pulumi.ResourceOptions], Any]) -> dict[str, Any]:
    """Run `build` (given options naming a parent and a provider) under fresh mocks; what reached
    CustomResource.__init__, the RegisterResource request, the mock's inputs and the resolved
    metadata name and its secretness."""
    mocks = _Mocks()
    pulumi.runtime.set_mocks(mocks, project="fedeploy", stack="kube-core", preview=False)
    seen: dict[str, Any] = {"init": [], "requests": []}
    init = pulumi.CustomResource.__init__
    register = pulumi_mocks.MockMonitor.RegisterResource

    def spy_init(
        self: Any, t: str, name: str, props: Any = None, opts: Any = None, *a: Any, **kw: Any
    ) -> None:
        if not t.startswith("pulumi:providers:"):
            seen["init"].append(
                {
                    "class": pulumi.get_type_token(type(self)),
                    "type": t,
                    "name": name,
                    "props": sorted(vars(props)) if props is not None else None,
                    "props_class": [
                        (p, n)
                        for p, n in sorted(
                            pulumi._types.input_type_py_to_pulumi_names(type(props)).items()
                        )
                    ],
                    "opts": {k: _normal(v) for k, v in vars(opts).items()},
                }
            )
        init(self, t, name, props, opts, *a, **kw)

    def spy_register(monitor: Any, request: Any) -> Any:
        if request.custom and not request.type.startswith("pulumi:providers:"):
            sent = MessageToDict(request)
            # Where the caller stands (both name the test's line, a line apart), not what it sent.
            seen["caller"] = sent.pop("sourcePosition")["uri"]
            sent.pop("stackTrace")
            seen["requests"].append(sent)
        return register(monitor, request)

    @pulumi.runtime.test
    def program() -> Any:
        parent = _Parent("parent")
        import pulumi_kubernetes as k8s

        provider = k8s.Provider(
            "cluster", kubeconfig="stand-in", opts=pulumi.ResourceOptions(parent=parent)
        )
        resource = build(pulumi.ResourceOptions(parent=parent, provider=provider))
        return pulumi.Output.all(
            resource.metadata.apply(lambda m: m.name), resource.metadata.is_secret()
        ).apply(lambda v: seen.__setitem__("metadata", v))

    pulumi.CustomResource.__init__ = spy_init  # type: ignore[method-assign]
    pulumi_mocks.MockMonitor.RegisterResource = spy_register  # type: ignore[method-assign]
    try:
        program()
    finally:
        pulumi.CustomResource.__init__ = init  # type: ignore[method-assign]
        pulumi_mocks.MockMonitor.RegisterResource = register  # type: ignore[method-assign]
    seen["mock_inputs"] = mocks.inputs
    return seen


def _sdk(kind: str) -> type:
    import pulumi_kubernetes as k8s

    return {
        "Namespace": k8s.core.v1.Namespace,
        "Secret": k8s.core.v1.Secret,
        "Service": k8s.core.v1.Service,
        "EndpointSlice": k8s.discovery.v1.EndpointSlice,
    }[kind]


def _secret_password() -> pulumi.Output[str]:
    return pulumi.Output.secret("pw-canary")


CASES: dict[str, tuple[str, Callable[[], dict[str, Any]]]] = {
    "namespace-labels": (
        "Namespace",
        lambda: {
            "metadata": {
                "name": "fedeploy",
                "labels": {**LABELS, "pod-security.kubernetes.io/enforce": "restricted"},
            }
        },
    ),
    "namespace-bare": ("Namespace", lambda: {"metadata": {"name": "bare"}}),
    "secret-string-data": (
        "Secret",
        lambda: {
            "metadata": {"name": "catalog-db", "namespace": "fedeploy", "labels": LABELS},
            "type": "Opaque",
            "string_data": {"username": "pgstac", "password": _secret_password()},
        },
    ),
    "secret-per-value-secrets": (
        "Secret",
        lambda: {
            "metadata": {"name": "s3", "namespace": "fedeploy"},
            "type": "Opaque",
            "string_data": {k: pulumi.Output.secret(v) for k, v in {"a": "1", "b": "2"}.items()},
        },
    ),
    "secret-output-all": (
        "Secret",
        lambda: {
            "metadata": {"name": "bridge-token", "namespace": "fedeploy", "labels": LABELS},
            "type": "Opaque",
            "string_data": pulumi.Output.secret(
                pulumi.Output.all(token=pulumi.Output.secret("tok"), user="slurm")
            ),
        },
    ),
    "secret-data-immutable": (
        "Secret",
        lambda: {
            "metadata": {"name": "raw"},
            "data": {"k": "dmFsdWU="},
            "immutable": True,
        },
    ),
    "service-externalname": (
        "Service",
        lambda: {
            "metadata": {"name": "slurm", "namespace": "fedeploy", "labels": LABELS},
            "spec": {
                "type": "ExternalName",
                "externalName": "slurm.centre.example.eu",
                "ports": [{"name": "https", "port": 8443, "targetPort": 8443, "protocol": "TCP"}],
            },
        },
    ),
    "service-clusterip": (
        "Service",
        lambda: {
            "metadata": {"name": "slurm", "namespace": "fedeploy", "labels": LABELS},
            "spec": {
                "type": "ClusterIP",
                "ports": [{"name": "http", "port": 6820, "targetPort": 6820, "protocol": "TCP"}],
            },
        },
    ),
    "endpointslice": (
        "EndpointSlice",
        lambda: {
            "metadata": {
                "name": "slurm",
                "namespace": "fedeploy",
                "labels": {**LABELS, "kubernetes.io/service-name": "slurm"},
            },
            "address_type": "IPv4",
            "endpoints": [
                {
                    "addresses": [pulumi.Output.from_input("10.0.3.17")],
                    "conditions": {"ready": True},
                }
            ],
            "ports": [{"name": "http", "port": 6820, "protocol": "TCP"}],
        },
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_light_class_registers_what_the_sdk_class_registers(case: str) -> None:
    kind, arguments = CASES[case]
    light = _register(lambda opts: getattr(kube_core, kind)("r", opts=opts, **arguments()))
    sdk = _register(lambda opts: _sdk(kind)("r", opts=opts, **arguments()))
    assert light["init"] and light["requests"]
    assert light["caller"] == sdk["caller"] == Path(__file__).as_uri()
    assert light["init"] == sdk["init"]
    assert light["requests"] == sdk["requests"]
    assert light["mock_inputs"] == sdk["mock_inputs"]
    assert light["metadata"] == sdk["metadata"]
    assert light["metadata"][0] == arguments()["metadata"]["name"]


def test_the_secret_s_values_reach_the_engine_as_secrets() -> None:
    """The comparison above would pass if both sent plain text: say what the light one sends."""
    kind, arguments = CASES["secret-string-data"]
    seen = _register(lambda opts: kube_core.Secret("r", opts=opts, **arguments()))
    request = seen["requests"][0]
    assert request["object"]["stringData"] == {
        SECRET_SIG: SECRET_VALUE,
        "value": {"username": "pgstac", "password": "pw-canary"},
    }
    assert request["additionalSecretOutputs"] == ["data", "stringData"]
    assert request["version"] == _utilities.get_version()  # the SDK's defaults, merged first
    assert seen["metadata"] == ["catalog-db", False]


def test_planning_the_example_federation_leaves_core_v1_unimported(tmp_path: Path) -> None:
    """A fresh process planning every stack of the example in itself (--jobs 1) never imports
    pulumi_kubernetes.core.v1 (0.15-0.35 s of the one-site plan)."""
    script = (
        "import atexit, runpy, sys\n"
        "atexit.register(lambda: sys.stderr.write('CORE_V1 %r\\n' % sorted("
        "m for m in sys.modules if m.startswith('pulumi_kubernetes.core.v1'))))\n"
        "sys.argv = ['fedeploy', 'plan', '--jobs', '1', '--format', 'json', '--out', sys.argv[1]]\n"
        "runpy.run_module('fedeploy', run_name='__main__')\n"
    )
    env = {**os.environ, "FEDEPLOY_PLAN_CACHE": "off"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "out")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "CORE_V1 []" in done.stderr, done.stderr[-2000:]
    assert (tmp_path / "out").is_dir()


def test_warming_the_sdk_before_forking_leaves_core_v1_unimported() -> None:
    """warm_imports loads what the components use before workers are forked: no longer core/v1
    (nothing uses it), so the 300-site case's workers import nothing the parent did not either."""
    script = (
        "import sys\n"
        "from fedeploy.offline.federation import warm_imports\n"
        "warm_imports()\n"
        "assert 'components.kube_core' in sys.modules\n"
        "assert 'pulumi_kubernetes.meta.v1.outputs' in sys.modules\n"
        "print(sorted(m for m in sys.modules if m.startswith('pulumi_kubernetes.core.v1')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]", done.stdout[-2000:]


# Options a caller may add, beyond the parent and provider every case passes (review RD F2):
# the SDK's classes merge their own defaults, secret outputs and aliases with these, and an
# upgrade that changes that merging must fail here too.
_CALLER_OPTIONS = {
    "protect": True,
    "version": "4.0.0",
    "aliases": [pulumi.Alias(name="old-name")],
    "additional_secret_outputs": ["metadata"],
    "ignore_changes": ["metadata.annotations"],
    "replace_on_changes": ["spec"],
    "delete_before_replace": True,
    "custom_timeouts": pulumi.CustomTimeouts(create="5m"),
    "retain_on_delete": True,
}


@pytest.mark.parametrize("kind", ["Namespace", "Secret", "Service", "EndpointSlice"])
def test_options_a_caller_adds_are_merged_as_the_sdk_class_merges_them(kind: str) -> None:
    case = next(name for name, (k, _) in sorted(CASES.items()) if k == kind)
    arguments = CASES[case][1]

    def build(cls: type) -> Callable[[pulumi.ResourceOptions], Any]:
        return lambda opts: cls(
            "r",
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(**_CALLER_OPTIONS)),
            **arguments(),
        )

    light = _register(build(getattr(kube_core, kind)))
    sdk = _register(build(_sdk(kind)))
    assert light["init"] and light["requests"]
    assert light["init"] == sdk["init"]
    assert light["requests"] == sdk["requests"]
    assert light["mock_inputs"] == sdk["mock_inputs"]
