"""Deterministic stand-ins for what cloud providers would answer: ids, ARNs, endpoints.

Every value derives from the resource's name and inputs, so two plans give identical bytes."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

ACCOUNT = "123456789012"


def digest(*parts: str, length: int = 16) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def resource_id(typ: str, name: str, inputs: dict[str, Any]) -> str:
    if typ == "aws:s3/bucket:Bucket" and inputs.get("bucket"):
        return str(inputs["bucket"])
    if typ.startswith("kubernetes:"):
        meta = inputs.get("metadata") or {}
        ns, obj = meta.get("namespace"), meta.get("name") or name
        return f"{ns}/{obj}" if ns else str(obj)
    return f"{name}-{digest(typ, name, length=8)}"


def _arn(typ: str, name: str, region: str) -> str:
    service = typ.split(":")[1].split("/")[0]
    kind = typ.rsplit(":", 1)[-1].lower()
    if service == "iam":
        return f"arn:aws:iam::{ACCOUNT}:{kind}/{name}"
    return f"arn:aws:{service}:{region}:{ACCOUNT}:{kind}/{name}"


def outputs(typ: str, name: str, inputs: dict[str, Any], region: str) -> dict[str, Any]:
    """The state a provider would return: the inputs plus the computed outputs the program reads."""
    state = dict(inputs)
    if typ.startswith("aws:") and not typ.startswith("aws:index/provider"):
        state.setdefault("arn", _arn(typ, name, region))
    if typ == "aws:s3/bucket:Bucket":
        state["arn"] = f"arn:aws:s3:::{inputs.get('bucket', name)}"
        state["bucket"] = inputs.get("bucket", name)
    elif typ == "aws:kms/key:Key":
        key_id = digest("kms", name, length=32)
        state.update(keyId=key_id, arn=f"arn:aws:kms:{region}:{ACCOUNT}:key/{key_id}")
    elif typ == "aws:iam/role:Role":
        state.update(name=inputs.get("name", name), arn=f"arn:aws:iam::{ACCOUNT}:role/{name}")
    elif typ == "aws:eks/cluster:Cluster":
        oidc = digest("oidc", name, length=32).upper()
        state.update(
            endpoint=f"https://{oidc}.gr7.{region}.eks.amazonaws.com",
            certificateAuthority={"data": base64.b64encode(f"ca-of-{name}".encode()).decode()},
            identities=[
                {"oidcs": [{"issuer": f"https://oidc.eks.{region}.amazonaws.com/id/{oidc}"}]}
            ],
        )
    elif typ == "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
        url = str(inputs.get("url", "")).removeprefix("https://")
        state["arn"] = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{url}"
    elif typ == "aws:rds/instance:Instance":
        host = f"{name}.{digest('rds', name, length=12)}.{region}.rds.amazonaws.com"
        state.update(address=host, port=5432, endpoint=f"{host}:5432")
    elif typ == "aws:rds/subnetGroup:SubnetGroup" or typ == "aws:rds/parameterGroup:ParameterGroup":
        state.setdefault("name", name)
    elif typ == "command:local:Command" and name.endswith("-ca-bundle"):
        # A CA bundle fetched at `pulumi up`: a placeholder certificate of the same form.
        state["stdout"] = (
            f"-----BEGIN CERTIFICATE-----\nstand-in for {name}\n-----END CERTIFICATE-----\n"
        )
    elif typ == "aws:ec2/instance:Instance":
        state.update(
            privateIp="10.255.0.10", privateDns=f"ip-10-255-0-10.{region}.compute.internal"
        )
    elif typ == "random:index/randomPassword:RandomPassword":
        state["result"] = digest("password", name, length=int(inputs.get("length", 32)))
    elif typ == "random:index/randomBytes:RandomBytes":
        raw = hashlib.sha256(f"bytes/{name}".encode()).digest()
        state.update(base64=base64.b64encode(raw).decode(), hex=raw.hex())
    elif typ == "random:index/randomString:RandomString":
        state["result"] = digest("string", name, length=int(inputs.get("length", 16)))
    elif typ.startswith("tls:"):
        pem = (
            f"-----BEGIN STAND-IN-----\n{digest('tls', name, length=32)}\n-----END STAND-IN-----\n"
        )
        for key in (
            "privateKeyPem",
            "publicKeyPem",
            "certPem",
            "privateKeyOpenssh",
            "publicKeyOpenssh",
        ):
            state.setdefault(key, pem)
    elif typ.startswith(("openstack:", "ovh:")):
        state.update(_european_cloud(typ, name, inputs))
    elif typ.startswith("command:"):
        state.setdefault("stdout", "")
        state.setdefault("stderr", "")
    return state


def _kubeconfig(name: str, server: str) -> str:
    """A kubeconfig naming the stand-in cluster (no credentials: the plan never connects)."""
    return (
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: {name}\n  cluster:\n    server: {server}\n"
        f"contexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {name}\n"
        f"current-context: {name}\nusers:\n- name: {name}\n  user: {{}}\n"
    )


def _uuid(*parts: str) -> str:
    raw = digest(*parts, length=32)
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"


def _european_cloud(typ: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Computed outputs of the openstack and ovh resources the program reads."""
    if typ == "openstack:containerinfra/cluster:Cluster":
        server = f"https://{digest('magnum', name, length=8)}.magnum.invalid:6443"
        return {
            "apiAddress": server,
            "coeVersion": "stand-in",
            "kubeconfig": {"rawConfig": _kubeconfig(name, server), "host": server},
        }
    if typ == "openstack:identity/ec2CredentialV3:Ec2CredentialV3":
        return {
            "access": digest("ec2-access", name, length=32),
            "secret": digest("ec2-secret", name, length=32),
        }
    if typ == "ovh:CloudProject/kube:Kube":
        server = f"https://{digest('ovh-kube', name, length=6)}.c1.gra.k8s.ovh.net"
        return {"url": server, "kubeconfig": _kubeconfig(name, server), "status": "READY"}
    if typ == "ovh:CloudProject/s3Credential:S3Credential":
        return {
            "accessKeyId": digest("ovh-s3-access", name, length=32),
            "secretAccessKey": digest("ovh-s3-secret", name, length=32),
        }
    if typ == "ovh:CloudProject/user:User":
        return {"username": f"user-{digest('ovh-user', name, length=12)}", "status": "ok"}
    if typ == "ovh:CloudProject/networkPrivate:NetworkPrivate":
        ids = {str(r): _uuid("ovh-network", name, str(r)) for r in inputs.get("regions") or []}
        return {"regionsOpenstackIds": ids}
    if typ == "ovh:CloudProject/networkPrivateSubnet:NetworkPrivateSubnet":
        return {"id": _uuid("ovh-subnet", name)}
    if typ == "openstack:keymanager/secretV1:SecretV1":
        ref = f"https://barbican.invalid:9311/v1/secrets/{_uuid('barbican', name)}"
        return {"secretRef": ref}
    if typ == "openstack:identity/applicationCredential:ApplicationCredential":
        return {"projectId": _uuid("project", name)}
    if typ == "openstack:compute/instance:Instance":
        return {"accessIpV4": "10.255.0.20"}
    return {}
