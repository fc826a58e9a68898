"""The four Kubernetes kinds the components create from core/v1 and discovery/v1, without
importing `pulumi_kubernetes.core.v1` (its package loads every core/v1 resource and its huge
_inputs/outputs modules: 0.15-0.35 s of a fresh planning process, docs/plan.md stop 31).

Each class mirrors the SDK's generated class (pulumi_kubernetes 4.34.2): the same type token,
the same properties (apiVersion and kind set, None for the outputs the SDK sets to None, a
Secret's data and stringData wrapped in Output.secret), the same options (the SDK's defaults
merged first, a Secret's additional secret outputs, EndpointSlice's alias), keyword arguments
named as the SDK's. tests/unit/test_kube_core.py registers each beside the SDK's class and
compares what reaches pulumi.CustomResource and the mocks: an SDK upgrade that changes its
class fails there. Nested inputs (spec, endpoints, ports) carry no type of their own: give their
keys as the Kubernetes API spells them (camelCase), as the components do; metadata is typed with
the SDK's meta/v1 classes (a light module), so `secret.metadata` resolves to an ObjectMeta.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
from pulumi_kubernetes import _utilities
from pulumi_kubernetes.meta.v1 import ObjectMetaArgs
from pulumi_kubernetes.meta.v1.outputs import ObjectMeta

__all__ = ["EndpointSlice", "Namespace", "Secret", "Service"]

_Meta = pulumi.Input[ObjectMetaArgs | None]
_Nested = pulumi.Input[Any | None]


# -- the properties, as the SDK's *InitArgs input types name them ------------------------------
@pulumi.input_type
class _NamespaceArgs:
    @property
    @pulumi.getter(name="apiVersion")
    def api_version(self) -> pulumi.Input[str | None]:
        return pulumi.get(self, "api_version")

    @property
    @pulumi.getter
    def kind(self) -> pulumi.Input[str | None]:
        return pulumi.get(self, "kind")

    @property
    @pulumi.getter
    def metadata(self) -> _Meta:
        return pulumi.get(self, "metadata")

    @property
    @pulumi.getter
    def spec(self) -> _Nested:
        return pulumi.get(self, "spec")


# A Service's properties are named as a Namespace's (apiVersion, kind, metadata, spec): both
# take _NamespaceArgs (_WithSpec).


@pulumi.input_type
class _SecretArgs:
    @property
    @pulumi.getter(name="apiVersion")
    def api_version(self) -> pulumi.Input[str | None]:
        return pulumi.get(self, "api_version")

    @property
    @pulumi.getter
    def data(self) -> pulumi.Input[Mapping[str, pulumi.Input[str]] | None]:
        return pulumi.get(self, "data")

    @property
    @pulumi.getter
    def immutable(self) -> pulumi.Input[bool | None]:
        return pulumi.get(self, "immutable")

    @property
    @pulumi.getter
    def kind(self) -> pulumi.Input[str | None]:
        return pulumi.get(self, "kind")

    @property
    @pulumi.getter
    def metadata(self) -> _Meta:
        return pulumi.get(self, "metadata")

    @property
    @pulumi.getter(name="stringData")
    def string_data(self) -> pulumi.Input[Mapping[str, pulumi.Input[str]] | None]:
        return pulumi.get(self, "string_data")

    @property
    @pulumi.getter
    def type(self) -> pulumi.Input[str | None]:
        return pulumi.get(self, "type")


@pulumi.input_type
class _EndpointSliceArgs:
    @property
    @pulumi.getter(name="addressType")
    def address_type(self) -> pulumi.Input[str]:
        return pulumi.get(self, "address_type")

    @property
    @pulumi.getter(name="apiVersion")
    def api_version(self) -> pulumi.Input[str | None]:
        return pulumi.get(self, "api_version")

    @property
    @pulumi.getter
    def endpoints(self) -> pulumi.Input[Sequence[Any] | None]:
        return pulumi.get(self, "endpoints")

    @property
    @pulumi.getter
    def kind(self) -> pulumi.Input[str | None]:
        return pulumi.get(self, "kind")

    @property
    @pulumi.getter
    def metadata(self) -> _Meta:
        return pulumi.get(self, "metadata")

    @property
    @pulumi.getter
    def ports(self) -> pulumi.Input[Sequence[Any] | None]:
        return pulumi.get(self, "ports")


def _props(cls: type, values: dict[str, Any]) -> Any:
    """An instance of the input type holding `values` under their Python names, as the SDK
    fills its *InitArgs (pulumi reads the instance's __dict__ and translates by the type)."""
    props = cls.__new__(cls)
    props.__dict__.update(values)
    return props


def _options(opts: pulumi.ResourceOptions | None) -> pulumi.ResourceOptions:
    merged = pulumi.ResourceOptions.merge(_utilities.get_resource_opts_defaults(), opts)
    if not isinstance(merged, pulumi.ResourceOptions):
        raise TypeError("Expected resource options to be a ResourceOptions instance")
    if merged.id is not None:
        raise TypeError("reading an existing object (opts.id) is not supported here")
    return merged


# -- the resources --------------------------------------------------------------------------------
class _WithSpec(pulumi.CustomResource):
    """A kind whose properties are apiVersion "v1", kind, metadata, spec and status (Namespace
    and Service): `_KIND` names it, its type token is core/v1's."""

    _KIND = ""

    def __init__(
        self,
        resource_name: str,
        opts: pulumi.ResourceOptions | None = None,
        api_version: Any = None,
        kind: Any = None,
        metadata: _Meta = None,
        spec: _Nested = None,
    ) -> None:
        props = _props(
            _NamespaceArgs,
            {
                "api_version": "v1",
                "kind": self._KIND,
                "metadata": metadata,
                "spec": spec,
                "status": None,
            },
        )
        token = f"kubernetes:core/v1:{self._KIND}"
        super().__init__(token, resource_name, props, _options(opts))

    @property
    @pulumi.getter(name="apiVersion")
    def api_version(self) -> pulumi.Output[str]:
        return pulumi.get(self, "api_version")

    @property
    @pulumi.getter
    def kind(self) -> pulumi.Output[str]:
        return pulumi.get(self, "kind")

    @property
    @pulumi.getter
    def metadata(self) -> pulumi.Output[ObjectMeta]:
        return pulumi.get(self, "metadata")

    @property
    @pulumi.getter
    def spec(self) -> pulumi.Output[Any]:
        return pulumi.get(self, "spec")

    @property
    @pulumi.getter
    def status(self) -> pulumi.Output[Any]:
        return pulumi.get(self, "status")


@pulumi.type_token("kubernetes:core/v1:Namespace")
class Namespace(_WithSpec):
    _KIND = "Namespace"


@pulumi.type_token("kubernetes:core/v1:Service")
class Service(_WithSpec):
    _KIND = "Service"


@pulumi.type_token("kubernetes:core/v1:Secret")
class Secret(pulumi.CustomResource):
    def __init__(
        self,
        resource_name: str,
        opts: pulumi.ResourceOptions | None = None,
        api_version: Any = None,
        data: pulumi.Input[Mapping[str, pulumi.Input[str]] | None] = None,
        immutable: pulumi.Input[bool | None] = None,
        kind: Any = None,
        metadata: _Meta = None,
        string_data: pulumi.Input[Mapping[str, pulumi.Input[str]] | None] = None,
        type: pulumi.Input[str | None] = None,
    ) -> None:
        merged = _options(opts)
        props = _props(
            _SecretArgs,
            {
                "api_version": "v1",
                "data": None if data is None else pulumi.Output.secret(data),
                "immutable": immutable,
                "kind": "Secret",
                "metadata": metadata,
                "string_data": None if string_data is None else pulumi.Output.secret(string_data),
                "type": type,
            },
        )
        merged = pulumi.ResourceOptions.merge(
            merged, pulumi.ResourceOptions(additional_secret_outputs=["data", "stringData"])
        )
        super().__init__("kubernetes:core/v1:Secret", resource_name, props, merged)

    @property
    @pulumi.getter(name="apiVersion")
    def api_version(self) -> pulumi.Output[str]:
        return pulumi.get(self, "api_version")

    @property
    @pulumi.getter
    def data(self) -> pulumi.Output[Mapping[str, str]]:
        return pulumi.get(self, "data")

    @property
    @pulumi.getter
    def immutable(self) -> pulumi.Output[bool]:
        return pulumi.get(self, "immutable")

    @property
    @pulumi.getter
    def kind(self) -> pulumi.Output[str]:
        return pulumi.get(self, "kind")

    @property
    @pulumi.getter
    def metadata(self) -> pulumi.Output[ObjectMeta]:
        return pulumi.get(self, "metadata")

    @property
    @pulumi.getter(name="stringData")
    def string_data(self) -> pulumi.Output[Mapping[str, str]]:
        return pulumi.get(self, "string_data")

    @property
    @pulumi.getter
    def type(self) -> pulumi.Output[str]:
        return pulumi.get(self, "type")


@pulumi.type_token("kubernetes:discovery.k8s.io/v1:EndpointSlice")
class EndpointSlice(pulumi.CustomResource):
    def __init__(
        self,
        resource_name: str,
        opts: pulumi.ResourceOptions | None = None,
        address_type: pulumi.Input[str | None] = None,
        api_version: Any = None,
        endpoints: pulumi.Input[Sequence[Any] | None] = None,
        kind: Any = None,
        metadata: _Meta = None,
        ports: pulumi.Input[Sequence[Any] | None] = None,
    ) -> None:
        merged = _options(opts)
        if address_type is None and not merged.urn:
            raise TypeError("Missing required property 'address_type'")
        props = _props(
            _EndpointSliceArgs,
            {
                "address_type": address_type,
                "api_version": "discovery.k8s.io/v1",
                "endpoints": endpoints,
                "kind": "EndpointSlice",
                "metadata": metadata,
                "ports": ports,
            },
        )
        merged = pulumi.ResourceOptions.merge(
            merged,
            pulumi.ResourceOptions(
                aliases=[pulumi.Alias(type_="kubernetes:discovery.k8s.io/v1beta1:EndpointSlice")]
            ),
        )
        super().__init__(
            "kubernetes:discovery.k8s.io/v1:EndpointSlice", resource_name, props, merged
        )

    @property
    @pulumi.getter(name="addressType")
    def address_type(self) -> pulumi.Output[str]:
        return pulumi.get(self, "address_type")

    @property
    @pulumi.getter(name="apiVersion")
    def api_version(self) -> pulumi.Output[str]:
        return pulumi.get(self, "api_version")

    @property
    @pulumi.getter
    def endpoints(self) -> pulumi.Output[Sequence[Any]]:
        return pulumi.get(self, "endpoints")

    @property
    @pulumi.getter
    def kind(self) -> pulumi.Output[str]:
        return pulumi.get(self, "kind")

    @property
    @pulumi.getter
    def metadata(self) -> pulumi.Output[ObjectMeta]:
        return pulumi.get(self, "metadata")

    @property
    @pulumi.getter
    def ports(self) -> pulumi.Output[Sequence[Any]]:
        return pulumi.get(self, "ports")
