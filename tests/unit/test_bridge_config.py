"""The site.bridge section: valid shapes per mode, and bad input named with both fields."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from fedeploy.config.bridge import BridgeConfig
from tests.builders import TEST_CA_PEM

KEY = {"secure": "v1:c3No:c3NoLWtleQ=="}
CERT = TEST_CA_PEM
GATEWAY: dict[str, Any] = {
    "mode": "gateway",
    "host": "slurm-gw.hpc.example.eu",
    "ssh_user": "fedeploy-admin",
    "ssh_private_key": KEY,
    "partitions": ["gpu", "cpu"],
}
VM: dict[str, Any] = {
    "mode": "vm",
    "instance_type": "c6i.2xlarge",
    "ami": "ami-0123456789abcdef0",
    "partitions": ["batch"],
}
EXISTING: dict[str, Any] = {
    "mode": "existing",
    "endpoint": "https://slurm-api.example.eu:6820",
    "token": {"secure": "v1:dG9r:dG9rZW4="},
    "partitions": ["gpu"],
}


@pytest.mark.parametrize("fields", [GATEWAY, VM, EXISTING], ids=["gateway", "vm", "existing"])
def test_each_mode_validates_with_secure_defaults(fields):
    config = BridgeConfig.model_validate(fields)
    assert config.tls.enabled
    assert config.daemon_user not in ("root", config.slurm_user)
    # Unset: an existing centre's clients negotiate; a node is rendered for Debian 12's 22.05.
    assert config.api_version is None and config.node_api_version == "v0.0.38"
    assert config.default_partition == fields["partitions"][0]


def test_a_secret_from_the_stack_file_stays_unknown_offline():
    config = BridgeConfig.model_validate(GATEWAY)
    assert not config.ssh_key.known
    assert "c3NoLWtleQ" not in repr(config)


BAD = [
    ({**GATEWAY, "host": None}, ["mode is 'gateway'", "requires host"]),
    (
        {**GATEWAY, "ssh_private_key": "-----BEGIN KEY-----"},
        ["plaintext value where a secret is required"],
    ),
    (
        {**VM, "host": "gw.example.eu"},
        ["host is set but mode is 'vm'", "belongs to mode 'gateway'"],
    ),
    ({**VM, "host_key": "ssh-ed25519 AAAA"}, ["host_key is set but mode is 'vm'"]),
    ({**VM, "instance_type": None}, ["requires instance_type"]),
    ({**VM, "ami": None}, ["requires ami"]),
    (
        {**VM, "ami": "resolve:ssm:/aws/service/debian/release/12/latest/amd64"},
        ["ami", "should match pattern"],
    ),
    ({**GATEWAY, "ami": "ami-0123456789abcdef0"}, ["ami is set but mode is 'gateway'"]),
    ({**EXISTING, "token": None}, ["requires token"]),
    (
        {**EXISTING, "endpoint": "http://slurm-api.example.eu"},
        ["endpoint", "tls.enabled=True", "disagree"],
    ),
    ({**GATEWAY, "allowed_cidrs": ["0.0.0.0/0"]}, ["allowed_cidrs", "whole internet"]),
    (
        {**GATEWAY, "allowed_cidrs": ["0.0.0.0/1", "128.0.0.0/1"]},
        ["allowed_cidrs", "'0.0.0.0/1' admits a /1", "at most /8"],
    ),
    ({**GATEWAY, "allowed_cidrs": ["2000::/3"]}, ["allowed_cidrs", "at most /32"]),
    ({**GATEWAY, "host": "10.0.0.256"}, ["'10.0.0.256' is neither a DNS name nor an IP"]),
    ({**GATEWAY, "host": "1.2.3.4.5"}, ["'1.2.3.4.5' is neither"]),
    ({**GATEWAY, "allowed_cidrs": ["10.0.0.1/8"]}, ["allowed_cidrs", "'10.0.0.1/8'"]),
    ({**GATEWAY, "daemon_user": "slurm"}, ["daemon_user and slurm_user", "SlurmUser"]),
    ({**GATEWAY, "service_user": "root"}, ["daemon_user and service_user must not be root"]),
    ({**GATEWAY, "service_user": "slurmrestd"}, ["service_user 'slurmrestd' equals daemon_user"]),
    ({**GATEWAY, "internal_port": 6820}, ["rest_port and internal_port", "6820"]),
    ({**GATEWAY, "partitions": []}, ["partitions", "at least 1"]),
    ({**GATEWAY, "partitions": ["gpu", "gpu"]}, ["partitions lists 'gpu' twice"]),
    ({**GATEWAY, "host": "not a host!"}, ["host 'not a host!'"]),
    (
        {
            **GATEWAY,
            "tls": {"certificate": CERT},
        },
        ["tls.certificate and tls.private_key go together"],
    ),
    (
        {**GATEWAY, "tls": {"ca_certificate": "not pem"}},
        ["tls.ca_certificate is not a PEM certificate"],
    ),
    (  # the markers around a body that is no certificate (taken before: a search for them)
        {
            **GATEWAY,
            "tls": {"ca_certificate": "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----"},
        },
        ["tls.ca_certificate is not a PEM certificate bundle"],
    ),
    (
        {
            **GATEWAY,
            "tls": {
                "ca_certificate": CERT
                + "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n"
            },
        },
        ["tls.ca_certificate holds a PEM block that is not a certificate (PRIVATE KEY)"],
    ),
    (
        {
            **EXISTING,
            "tls": {
                "certificate": CERT,
                "private_key": {"secure": "v1:a2V5:a2V5"},
            },
        },
        ["tls.certificate is set but mode is 'existing'"],
    ),
    ({**GATEWAY, "api_version": "v0.0.39"}, ["api_version", "v0.0.38", "v0.0.42", "v0.0.45"]),
    ({**EXISTING, "api_version": "0.0.42"}, ["api_version", "'v0.0.42'"]),
    ({**GATEWAY, "ssh_port": 22}, ["ssh_port", "Extra inputs are not permitted"]),
]


@pytest.mark.parametrize(("fields", "words"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_input_is_named(fields, words):
    with pytest.raises(ValidationError) as error:
        BridgeConfig.model_validate(fields)
    message = str(error.value)
    for word in words:
        assert word in message


def test_every_field_is_described_in_the_schema():
    schema = BridgeConfig.model_json_schema()
    models = [schema, *schema.get("$defs", {}).values()]
    for model in models:
        for name, prop in model.get("properties", {}).items():
            assert prop.get("description"), f"{model.get('title')}.{name} has no description"


OPENSTACK_VM: dict[str, Any] = {
    "mode": "vm",
    "flavor_id": "eo2a.large",
    "image_id": "6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b",
    "auth_url": "https://keystone.cloudferro.com:5000/v3",
    "partitions": ["batch"],
}


def test_a_vm_names_the_cloud_of_its_fields():
    assert BridgeConfig.model_validate(VM).vm_platform == "aws"
    config = BridgeConfig.model_validate(OPENSTACK_VM)
    assert config.vm_platform == "openstack"
    assert config.boot_window_minutes == 30
    assert BridgeConfig.model_validate(GATEWAY).vm_platform is None


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({**OPENSTACK_VM, "ami": VM["ami"]}, ["ami (aws) and flavor_id (openstack)"]),
        ({"mode": "vm", "partitions": ["a"]}, ["flavor_id, image_id and auth_url"]),
        ({**OPENSTACK_VM, "image_id": None}, ["requires image_id"]),
        ({**GATEWAY, "flavor_id": "m1.small"}, ["flavor_id is set but mode is 'gateway'"]),
        ({**OPENSTACK_VM, "boot_window_minutes": 240}, ["less than or equal to 120"]),
        ({**OPENSTACK_VM, "auth_url": "https://u:p@keystone.example.eu/v3"}, ["user"]),
    ],
)
def test_bad_openstack_vm_fields_are_named(fields, words):
    with pytest.raises(ValidationError) as caught:
        BridgeConfig.model_validate(fields)
    message = str(caught.value)
    for word in words:
        assert word in message, message


def test_the_site_kind_decides_which_vm_fields_are_allowed():
    from fedeploy.config.bridge import check_vm_platform

    check_vm_platform(BridgeConfig.model_validate(OPENSTACK_VM), "openstack")
    check_vm_platform(BridgeConfig.model_validate(VM), "aws")
    with pytest.raises(ValueError, match="requires bridge.instance_type, bridge.ami"):
        check_vm_platform(BridgeConfig.model_validate(OPENSTACK_VM), "aws")
    with pytest.raises(ValueError, match="not offered on ovh sites"):
        check_vm_platform(BridgeConfig.model_validate(OPENSTACK_VM), "ovh")
