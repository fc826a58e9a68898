"""A canary in every secret slot of every example stack must never surface in plain text."""

from __future__ import annotations

import json
from typing import Any

import yaml

from fedeploy.offline.engine import SECRET, plan_stack
from fedeploy.offline.federation import load_federation
from fedeploy.plan.formats import as_json, as_markdown, as_text
from fedeploy.plan.run import build_report, write_out
from tests.builders import TEST_CA_PEM
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


CERT = TEST_CA_PEM


def _plan_with_vm_bridge(example_plans: Any, stack: str, fields: dict[str, Any]) -> Any:
    """Plan an example stack given a vm bridge with `fields` and a canary TLS private key."""
    federation = load_federation(STACKS)
    path = STACKS / f"Pulumi.{stack}.yaml"
    site = yaml.safe_load(path.read_text())["config"]["fedeploy:site"]
    site["bridge"] = {
        "mode": "vm",
        **fields,
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
    return plan


def test_a_vm_bridge_keeps_every_secret_out_of_its_ec2_user_data(example_plans):
    import base64
    import gzip

    plan = _plan_with_vm_bridge(
        example_plans,
        "aws-frankfurt",
        {"instance_type": "c6i.large", "ami": "ami-0123456789abcdef0"},
    )
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


SECRETISH = ("token", "password", "secret", "private_key", "jwt")


def test_rendered_pods_carry_no_secret_in_a_plain_env_value(example_report, tmp_path):
    """Every pod spec the plan renders: a credential-named variable is a reference or a *_FILE
    path, never a plain value; no plain value looks like a token or a private key."""
    import re

    write_out(example_report, tmp_path / "out")
    credential = re.compile(r"PASSWORD|TOKEN|SECRET|ACCESS_KEY|PRIVATE_KEY")
    seen = 0
    for path in (tmp_path / "out").rglob("*.yaml"):
        for manifest in yaml.safe_load_all(path.read_text()):
            spec = (manifest or {}).get("spec") or {}
            if (manifest or {}).get("kind") == "CronJob":
                spec = spec["jobTemplate"]["spec"]
            pod = (spec.get("template") or {}).get("spec")
            if not pod:
                continue
            for container in pod.get("containers", []) + pod.get("initContainers", []):
                for env in container.get("env", []):
                    seen += 1
                    where = f"{path.name} {manifest['metadata']['name']} {env['name']}"
                    value = str(env.get("value", ""))
                    assert "BEGIN" not in value and not value.startswith("eyJ"), where
                    # *_FILE and *_DIR name where mounted secrets lie, not the secrets.
                    if credential.search(env["name"]) and not env["name"].endswith(
                        ("_FILE", "_DIR")
                    ):
                        assert "value" not in env, f"{where} is a credential in plain text"
    assert seen > 0


def test_the_command_lines_take_no_secret():
    """The process list shows argv: no option of the bridge or inference CLIs takes a secret."""
    import typer
    from fedeploy_inference.cli import _parser

    from fedeploy.bridge.command import bridge_app

    group: Any = typer.main.get_command(bridge_app)
    commands = [group, *group.commands.values()]
    names = [opt for c in commands for p in c.params for opt in p.opts]
    inference = _parser()
    for action in inference._actions:
        names += list(action.option_strings)
        choices = getattr(action, "choices", None)
        if isinstance(choices, dict):  # the subcommands
            names += [o for sub in choices.values() for a in sub._actions for o in a.option_strings]
    assert "--token-file" in names
    leaking = [n for n in names if any(w in n.lower() for w in SECRETISH) and "file" not in n]
    assert leaking == []


def test_a_bridge_answer_that_echoes_the_token_never_reaches_an_exception():
    import base64 as b64
    import time

    import httpx

    from fedeploy.bridge.client import BridgeClient
    from fedeploy.bridge.errors import BridgeError
    from fedeploy.bridge.jobs import JobSpec

    def part(obj: dict[str, Any]) -> str:
        return b64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    token = f"{part({'alg': 'HS256'})}.{part({'sun': 'svc', 'exp': int(time.time()) + 3600})}"
    token += f".{CANARY}"

    def echo(request: httpx.Request) -> httpx.Response:
        sent = request.headers["X-SLURM-USER-TOKEN"]
        if request.url.path.endswith("/submit"):
            return httpx.Response(
                500, json={"errors": [{"error_number": 9999, "error": f"bad token {sent}"}]}
            )
        return httpx.Response(401, text=f"<title>denied {sent}</title>")

    client = BridgeClient(
        "https://bridge.test:6820",
        "svc",
        token,
        transport=httpx.MockTransport(echo),
        retries=0,
        sleep=lambda s: None,
    )
    spec = JobSpec(
        name="j", script="#!/bin/bash\ntrue\n", time_limit_minutes=5, working_directory="/tmp"
    )
    for call in (lambda: client.submit(spec), lambda: client.status(5)):
        try:
            call()
        except BridgeError as error:
            assert CANARY not in str(error) and CANARY not in repr(error)
        else:
            raise AssertionError("the bridge refused: an error was expected")
    assert CANARY not in repr(client)


def test_an_openstack_vm_bridge_keeps_every_secret_in_barbican_and_out_of_plain_inputs(
    example_plans,
):
    plan = _plan_with_vm_bridge(
        example_plans,
        "ewc-bologna",
        {
            "flavor_id": "eo2a.large",
            "image_id": "6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b",
            "auth_url": "https://keystone.cloudferro.com:5000/v3",
        },
    )
    assert CANARY not in json.dumps([r.inputs for r in plan.resources])
    assert CANARY not in json.dumps(plan.outputs) + "\n".join(plan.logs)
    (instance,) = [r for r in plan.resources if r.type == "openstack:compute/instance:Instance"]
    # It carries the boot credential (never a bridge secret): kept secret as a whole.
    assert instance.inputs["userData"] == SECRET
    assert instance.inputs["configDrive"] is False
    stored = [r for r in plan.resources if r.type == "openstack:keymanager/secretV1:SecretV1"]
    assert len(stored) == 4 and all(r.inputs["payload"] == SECRET for r in stored)
    (credential,) = [
        r
        for r in plan.resources
        if r.type == "openstack:identity/applicationCredential:ApplicationCredential"
    ]
    assert credential.inputs["unrestricted"] is False
    assert len(credential.inputs["accessRules"]) == 4
