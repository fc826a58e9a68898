"""A canary in every secret slot of every example stack must never surface in plain text."""

from __future__ import annotations

import json
from typing import Any

import yaml

from fedeploy.offline.engine import SECRET, plan_stack
from fedeploy.offline.federation import load_federation
from fedeploy.plan import build_report, write_out
from fedeploy.report import as_json, as_markdown, as_text
from tests.conftest import STACKS

CANARY = "CANARY-7f3a"


def _with_canaries(value: Any, path: str, found: list[str]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            found.append(path)
            return f"{CANARY}:{path}"
        return {k: _with_canaries(v, f"{path}.{k}", found) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_canaries(v, f"{path}.{i}", found) for i, v in enumerate(value)]
    return value


def test_canaries_never_appear_in_outputs_logs_inputs_or_reports(tmp_path):
    federation = load_federation(STACKS)
    assert not federation.errors
    slots: list[str] = []
    for wave in federation.order:
        for stack in wave:
            path = STACKS / f"Pulumi.{stack}.yaml"
            site = yaml.safe_load(path.read_text())["config"]["fedeploy:site"]
            refs = {
                r.target: federation.plans[r.target].outputs
                for r in federation.references
                if r.stack == stack
            }
            federation.plans[stack] = plan_stack(
                path,
                references=refs,
                # As `pulumi up` passes a site object that holds decrypted secure values.
                config_override={"fedeploy:site": _with_canaries(site, "site", slots)},
                secret_keys=["fedeploy:site"],
            )
    # Every kind of secret slot of the examples is exercised.
    assert any(s.endswith("kubeconfig") for s in slots)
    assert any(s.endswith("secret_access_key") for s in slots)
    assert any(s.endswith("ssh_private_key") for s in slots)
    assert any("credentials" in s for s in slots)

    report = build_report(federation)
    write_out(report, tmp_path / "out")
    texts = [as_text(report), as_json(report), as_markdown(report)]
    texts += [p.read_text() for p in (tmp_path / "out").rglob("*") if p.is_file()]
    for plan in federation.plans.values():
        texts.append(json.dumps(plan.outputs))
        texts.append("\n".join(plan.logs))
        texts.append(json.dumps([r.inputs for r in plan.resources]))
    for text in texts:
        assert CANARY not in text
    # The secrets did reach the resources, as secrets.
    hpc = federation.plans["hpc-kajaani"]
    assert any(SECRET in json.dumps(r.inputs) for r in hpc.resources)


CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_a_vm_bridge_keeps_every_secret_out_of_its_ec2_user_data(example_plans):
    import base64
    import gzip

    federation = load_federation(STACKS)
    stack = "aws-frankfurt"
    path = STACKS / f"Pulumi.{stack}.yaml"
    site = yaml.safe_load(path.read_text())["config"]["fedeploy:site"]
    site["bridge"] = {
        "mode": "vm",
        "instance_type": "c6i.large",
        "ami": "ami-0123456789abcdef0",
        "partitions": ["batch"],
        "tls": {"certificate": CERT, "private_key": {"secure": "x"}},
    }
    slots: list[str] = []
    refs = {
        r.target: example_plans[r.target].outputs for r in federation.references if r.stack == stack
    }
    plan = plan_stack(
        path,
        references=refs,
        config_override={"fedeploy:site": _with_canaries(site, "site", slots)},
        secret_keys=["fedeploy:site"],
    )
    assert "site.bridge.tls.private_key" in slots
    (instance,) = [r for r in plan.resources if r.type == "aws:ec2/instance:Instance"]
    user_data = instance.inputs["userDataBase64"]
    assert user_data != SECRET, "user data holds no secret, so it is not marked as one"
    document = gzip.decompress(base64.b64decode(user_data)).decode()
    assert CANARY not in document
    # Every secret the VM needs travels as a SecureString parameter, kept secret.
    parameters = {
        r.inputs["name"]: r for r in plan.resources if r.type == "aws:ssm/parameter:Parameter"
    }
    assert {p.rsplit("/", 1)[-1] for p in parameters} == {"jwt.key", "tls.key", "tls.crt", "ca.crt"}
    assert all(p.inputs["value"] == SECRET for p in parameters.values())
    assert all(p.inputs["type"] == "SecureString" for p in parameters.values())
    for name in parameters:
        assert name in document  # fetched at boot by name
