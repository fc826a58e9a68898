"""SlurmBridge under Pulumi's mocks: what each mode registers, secrets kept secret, the wiring."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import jwt
import pulumi
import pytest
import yaml

from fedeploy.config.base import SecretValue
from fedeploy.config.bridge import BridgeConfig

SECRET_SIG = "4dabf18193072939515e22adb298388d"
SSH_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nssh-key-canary-7f3a\n-----END OPENSSH PRIVATE KEY-----\n"
)
TOKEN_CANARY = "centre-issued-token-canary-91c2"
LABELS = {"app.kubernetes.io/part-of": "fedeploy", "fedeploy.io/site": "hpc-test"}
CLUSTER_CIDRS = ["10.40.0.0/16"]


@dataclass
class Recorded:
    typ: str
    name: str
    inputs: dict[str, Any]
    provider: str | None


@dataclass
class Mocks(pulumi.runtime.Mocks):
    """Records every registration; answers like a provider would, deterministically."""

    resources: list[Recorded] = field(default_factory=list)

    def new_resource(
        self, args: pulumi.runtime.MockResourceArgs
    ) -> tuple[str | None, dict[str, Any]]:
        self.resources.append(Recorded(args.typ, args.name, dict(args.inputs), args.provider))
        if not args.custom:
            return None, {}
        state = dict(args.inputs)
        digest = hashlib.sha256(args.name.encode()).hexdigest()
        if args.typ == "random:index/randomPassword:RandomPassword":
            state["result"] = digest[: int(args.inputs["length"])]
        elif args.typ.startswith("tls:"):
            pem = f"-----BEGIN TEST-----\n{digest[:24]}\n-----END TEST-----\n"
            state.update(privateKeyPem=pem, certPem=pem, certRequestPem=pem)
        elif args.typ == "aws:ec2/instance:Instance":
            state["privateIp"] = "10.0.3.17"
        if args.typ.startswith("aws:"):
            service = args.typ.split(":")[1].split("/")[0]
            state.setdefault("arn", f"arn:aws:{service}:eu-north-1:1:{args.name}")
            state.setdefault("name", args.name)
        if args.typ == "aws:ssm/parameter:Parameter":
            state["version"] = 3
        if args.typ == "openstack:keymanager/secretV1:SecretV1":
            uuid = f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"
            state["secretRef"] = f"https://barbican.example.eu:9311/v1/secrets/{uuid}"
        elif args.typ == "openstack:compute/instance:Instance":
            state["accessIpV4"] = "10.60.0.23"
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> Any:
        raise AssertionError(f"SlurmBridge must not invoke provider functions, called {args.token}")

    def by_type(self, typ: str) -> list[Recorded]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str) -> Recorded:
        [found] = self.by_type(typ)
        return found


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG) == "1b47061264138c4ac30d75fd1eb44270"


def reveal(value: Any) -> Any:
    return value["value"] if is_secret(value) else value


def plain_text(value: Any) -> str:
    """Everything in an input that is not inside a secret, as one string."""
    if is_secret(value):
        return ""
    if isinstance(value, dict):
        return " ".join(f"{k} {plain_text(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return " ".join(plain_text(v) for v in value)
    return str(value)


def gateway(**overrides: Any) -> BridgeConfig:
    fields: dict[str, Any] = {
        "mode": "gateway",
        "host": "slurm-gw.hpc.example.eu",
        "ssh_user": "fedeploy-admin",
        "ssh_private_key": SecretValue(SSH_KEY),
        "host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleHostKey",
        "partitions": ["standard-g", "small-g"],
        "allowed_cidrs": ["192.0.2.0/24"],
    }
    return BridgeConfig(**{**fields, **overrides})


def vm() -> BridgeConfig:
    return BridgeConfig(
        mode="vm", instance_type="c6i.2xlarge", ami="ami-0123456789abcdef0", partitions=["batch"]
    )


def existing() -> BridgeConfig:
    return BridgeConfig(
        mode="existing",
        endpoint="https://slurm-api.centre.example.eu:8443",
        token=SecretValue(TOKEN_CANARY),
        partitions=["gpu"],
    )


def run(config: BridgeConfig, **kwargs: Any) -> tuple[Mocks, dict[str, Any]]:
    """Run the component under fresh mocks; its outputs as plain values, asserted afterwards."""
    from components.providers.aws.bridge_host import AwsBridgeHost
    from components.slurm_bridge import SlurmBridge

    mocks = Mocks()
    pulumi.runtime.set_mocks(mocks, project="fedeploy", stack="hpc-test", preview=False)
    outputs: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        import pulumi_kubernetes as k8s

        provider = k8s.Provider("cluster", kubeconfig="stand-in")
        tags = {"fedeploy:site": "hpc-test", "fedeploy:managed-by": "fedeploy"}
        extra: dict[str, Any] = {}
        if config.mode == "vm":
            host = AwsBridgeHost(
                site="hpc-test", config=config, vpc_id="vpc-1", subnet_id="subnet-1", tags=tags
            )
            extra = {"bridge_host": host}
        bridge = SlurmBridge(
            "hpc-test-bridge",
            site_name="hpc-test",
            config=config,
            namespace="fedeploy",
            k8s_provider=provider,
            labels=LABELS,
            allowed_cidrs=CLUSTER_CIDRS,
            **{**extra, **kwargs},
        )
        return pulumi.Output.all(bridge.endpoint, bridge.secret_name, bridge.partitions).apply(
            lambda v: outputs.update(endpoint=v[0], secret_name=v[1], partitions=v[2])
        )

    program()
    return mocks, outputs


COMMAND = "command:remote:Command"
SECRET = "kubernetes:core/v1:Secret"
SERVICE = "kubernetes:core/v1:Service"
SLICE = "kubernetes:discovery.k8s.io/v1:EndpointSlice"


@pytest.mark.parametrize(
    ("config", "present", "absent"),
    [
        (
            gateway(),
            {
                COMMAND,
                "random:index/randomPassword:RandomPassword",
                "tls:index/locallySignedCert:LocallySignedCert",
            },
            {"aws:ec2/instance:Instance", SLICE},
        ),
        (
            vm(),
            {"aws:ec2/instance:Instance", "aws:ec2/securityGroup:SecurityGroup", SLICE},
            {COMMAND},
        ),
        (
            existing(),
            {SECRET, SERVICE},
            {COMMAND, "aws:ec2/instance:Instance", "random:index/randomPassword:RandomPassword"},
        ),
    ],
    ids=["gateway", "vm", "existing"],
)
def test_each_mode_registers_its_resources(config, present, absent):
    mocks, _ = run(config)
    types = {r.typ for r in mocks.resources}
    assert present <= types
    assert not absent & types
    assert mocks.one("fedeploy:hpc:SlurmBridge").name == "hpc-test-bridge"


def test_every_child_is_parented_and_named_after_the_component():
    mocks, _ = run(gateway())
    children = [
        r
        for r in mocks.resources
        if r.typ not in ("fedeploy:hpc:SlurmBridge", "pulumi:providers:kubernetes")
    ]
    assert children and all(r.name.startswith("hpc-test-bridge-") for r in children)


@pytest.mark.parametrize("config", [gateway(), vm(), existing()], ids=["gateway", "vm", "existing"])
def test_kubernetes_objects_use_the_given_provider_and_labels(config):
    mocks, _ = run(config)
    objects = [r for r in mocks.resources if r.typ.startswith("kubernetes:")]
    assert {r.typ for r in objects} >= {SECRET, SERVICE}
    for obj in objects:
        assert obj.provider is not None and "pulumi:providers:kubernetes::cluster" in obj.provider
        assert LABELS.items() <= obj.inputs["metadata"]["labels"].items()
        assert obj.inputs["metadata"]["namespace"] == "fedeploy"


def test_the_secret_holds_a_token_slurm_accepts_for_the_service_user():
    config = gateway()
    mocks, outputs = run(config)
    secret = mocks.one(SECRET)
    key = mocks.one("random:index/randomPassword:RandomPassword")

    assert is_secret(secret.inputs["stringData"])
    data = reveal(secret.inputs["stringData"])
    assert data["user"] == "fedeploy"
    expected_key = hashlib.sha256(key.name.encode()).hexdigest()[:64]
    claims = jwt.decode(data["token"], expected_key, algorithms=["HS256"])
    assert claims["sun"] == "fedeploy"
    assert claims["exp"] - claims["iat"] == config.token_lifetime_hours * 3600
    assert data["ca.crt"].startswith("-----BEGIN TEST-----")
    assert outputs["secret_name"] == secret.inputs["metadata"]["name"]


def test_the_jwt_key_is_64_random_alphanumerics():
    mocks, _ = run(gateway())
    key = mocks.one("random:index/randomPassword:RandomPassword")
    assert key.inputs["length"] == 64 and key.inputs["special"] is False


def test_the_ssh_key_reaches_the_node_only_as_a_secret():
    mocks, _ = run(gateway())
    commands = mocks.by_type(COMMAND)
    assert len(commands) == 2
    for command in commands:
        connection = command.inputs["connection"]
        assert is_secret(connection) or is_secret(connection["privateKey"])
        assert reveal(reveal(connection)["privateKey"]) == SSH_KEY
    for resource in mocks.resources:
        assert "ssh-key-canary" not in plain_text(resource.inputs), resource.name


def test_the_setup_command_carries_the_rendered_configuration_and_its_secrets_on_stdin():
    from fedeploy.bridge.firewall import firewall_rules
    from fedeploy.bridge.node_config import bridge_node

    config = gateway()
    mocks, _ = run(config)
    setup = next(c for c in mocks.by_type(COMMAND) if c.name.endswith("-setup"))
    node = bridge_node(
        config,
        bridge_name="hpc-test",
        firewall=firewall_rules(config.rest_port, CLUSTER_CIDRS + config.allowed_cidrs),
        tls_name="fedeploy-slurm-bridge.fedeploy.svc.cluster.local",
    )

    assert setup.inputs["create"] == setup.inputs["update"]
    assert setup.inputs["create"].startswith("sudo -n bash -c ")
    # The cluster's ranges and the config's own, both admitted by the node's firewall.
    assert "elements = { 10.40.0.0/16, 192.0.2.0/24 }" in setup.inputs["create"]
    assert setup.inputs["triggers"] == [node.content_hash]
    assert "delete" not in setup.inputs  # re-running never tears the bridge down first
    assert is_secret(setup.inputs["stdin"])
    names = [line.split("\t")[0] for line in reveal(setup.inputs["stdin"]).splitlines()]
    assert names == sorted(["jwt.key", "tls.key", "tls.crt", "ca.crt", "token"])
    teardown = next(c for c in mocks.by_type(COMMAND) if c.name.endswith("-teardown"))
    assert (
        "fedeploy-bridge: removed" in teardown.inputs["delete"] and "create" not in teardown.inputs
    )


def test_a_second_run_registers_the_same_plain_inputs():
    first, out1 = run(gateway())
    second, out2 = run(gateway())
    plain = lambda m: sorted((r.typ, r.name, plain_text(r.inputs)) for r in m.resources)  # noqa: E731
    assert plain(first) == plain(second)
    assert out1 == out2


def test_the_outputs_are_the_endpoint_secret_and_partitions():
    _, outputs = run(gateway())
    assert outputs == {
        "endpoint": "https://fedeploy-slurm-bridge.fedeploy.svc.cluster.local:6820",
        "secret_name": "fedeploy-slurm-bridge",
        "partitions": ["standard-g", "small-g"],
    }


def test_a_gateway_named_by_dns_is_an_external_name_service():
    mocks, _ = run(gateway())
    spec = mocks.one(SERVICE).inputs["spec"]
    assert spec["type"] == "ExternalName" and spec["externalName"] == "slurm-gw.hpc.example.eu"
    assert spec["ports"][0]["port"] == 6820


def test_a_gateway_named_by_address_gets_an_endpoint_slice():
    mocks, _ = run(gateway(host="198.51.100.7"))
    assert "selector" not in mocks.one(SERVICE).inputs["spec"]
    endpoints = mocks.one(SLICE).inputs
    assert endpoints["endpoints"][0]["addresses"] == ["198.51.100.7"]
    assert endpoints["metadata"]["labels"]["kubernetes.io/service-name"] == "fedeploy-slurm-bridge"
    request = mocks.one("tls:index/certRequest:CertRequest").inputs
    assert request["ipAddresses"] == ["198.51.100.7"]


def test_the_generated_certificate_names_the_service():
    mocks, _ = run(gateway())
    names = mocks.one("tls:index/certRequest:CertRequest").inputs["dnsNames"]
    assert "fedeploy-slurm-bridge.fedeploy.svc.cluster.local" in names
    assert "slurm-gw.hpc.example.eu" in names
    cert = mocks.one("tls:index/locallySignedCert:LocallySignedCert").inputs
    assert "server_auth" in cert["allowedUses"] and cert["earlyRenewalHours"] > 0


def test_a_vm_bridge_is_private_encrypted_and_requires_imdsv2():
    mocks, _ = run(vm())
    instance = mocks.one("aws:ec2/instance:Instance").inputs

    assert instance["metadataOptions"]["httpTokens"] == "required"
    assert instance["rootBlockDevice"]["encrypted"] is True
    assert instance["associatePublicIpAddress"] is False
    assert instance["subnetId"] == "subnet-1"
    assert instance["ami"] == "ami-0123456789abcdef0"  # pinned: no lookup, no churn
    assert instance["tags"]["fedeploy:site"] == "hpc-test"


def test_a_vm_security_group_admits_only_the_cluster_on_the_rest_port():
    mocks, _ = run(vm())
    group = mocks.one("aws:ec2/securityGroup:SecurityGroup").inputs
    [rule] = group["ingress"]
    assert (rule["fromPort"], rule["toPort"], rule["protocol"]) == (6820, 6820, "tcp")
    assert rule["cidrBlocks"] == CLUSTER_CIDRS


def test_a_vm_gets_no_secret_in_its_user_data_but_reads_them_from_ssm():
    mocks, _ = run(vm())
    instance = mocks.one("aws:ec2/instance:Instance").inputs
    assert not is_secret(instance["userDataBase64"])  # nothing in it needs hiding
    document = gzip.decompress(base64.b64decode(instance["userDataBase64"])).decode()
    assert document.startswith("#cloud-config\n")
    cloud = yaml.safe_load(document)
    assert "slurmrestd" in cloud["packages"]
    files = {f["path"]: base64.b64decode(f["content"]).decode() for f in cloud["write_files"]}
    assert "fedeploy-slurmrestd.service" in files["/root/fedeploy-bridge/setup.sh"]
    assert "/root/fedeploy-bridge/secrets" not in files
    jwt_key = next(
        r for r in mocks.resources if r.typ == "random:index/randomPassword:RandomPassword"
    )
    key_value = hashlib.sha256(jwt_key.name.encode()).hexdigest()[:64]
    assert key_value not in document and "BEGIN TEST" not in document

    parameters = {p.inputs["name"]: p.inputs for p in mocks.by_type("aws:ssm/parameter:Parameter")}
    assert sorted(parameters) == [
        f"/fedeploy/hpc-test/bridge/{n}" for n in ("ca.crt", "jwt.key", "tls.crt", "tls.key")
    ]
    kms = mocks.one("aws:kms/key:Key")
    for parameter in parameters.values():
        assert parameter["type"] == "SecureString" and is_secret(parameter["value"])
        assert parameter["keyId"] == f"arn:aws:kms:eu-north-1:1:{kms.name}"
    assert reveal(parameters["/fedeploy/hpc-test/bridge/jwt.key"]["value"]) == key_value
    # Secret versions are in the user data: a rotated secret replaces the VM.
    assert "jwt.key=3" in document and instance["userDataReplaceOnChange"] is True

    profile = mocks.one("aws:iam/instanceProfile:InstanceProfile")
    assert instance["iamInstanceProfile"] == profile.name
    policy = json.loads(mocks.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    read, decrypt, _, drop = policy["Statement"]
    assert read["Action"] == ["ssm:GetParameter"] and len(read["Resource"]) == 4
    # The instance drops its own profile after first boot (tagged for that, and only it).
    assert drop["Condition"] == {"StringEquals": {"ec2:ResourceTag/fedeploy-bridge-of": "hpc-test"}}
    assert instance["tags"]["fedeploy-bridge-of"] == "hpc-test"
    assert all(":ssm:" in arn for arn in read["Resource"])
    assert decrypt["Condition"]["StringEquals"]["kms:ViaService"] == "ssm.eu-north-1.amazonaws.com"
    assert mocks.one(SLICE).inputs["endpoints"][0]["addresses"] == ["10.0.3.17"]


def test_a_vm_without_a_bridge_host_is_refused():
    with pytest.raises(Exception, match="needs a bridge host from the site's provider"):
        run(vm(), bridge_host=None)


def test_an_existing_bridge_only_wires_the_centres_endpoint_and_token():
    mocks, outputs = run(existing())
    assert outputs["endpoint"] == "https://slurm-api.centre.example.eu:8443"
    data = reveal(mocks.one(SECRET).inputs["stringData"])
    assert data == {"token": TOKEN_CANARY, "user": "fedeploy"}
    spec = mocks.one(SERVICE).inputs["spec"]
    assert (spec["externalName"], spec["ports"][0]["port"]) == ("slurm-api.centre.example.eu", 8443)
    assert all(TOKEN_CANARY not in plain_text(r.inputs) for r in mocks.resources)


# -- vm on an openstack site --------------------------------------------------------------------
OS_IMAGE = "6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b"
BARBICAN = "openstack:keymanager/secretV1:SecretV1"
APP_CREDENTIAL = "openstack:identity/applicationCredential:ApplicationCredential"
OS_INSTANCE = "openstack:compute/instance:Instance"
OS_RULE = "openstack:networking/secGroupRule:SecGroupRule"


def openstack_vm(**overrides: Any) -> BridgeConfig:
    fields: dict[str, Any] = {
        "mode": "vm",
        "flavor_id": "eo2a.large",
        "image_id": OS_IMAGE,
        "auth_url": "https://keystone.cloudferro.com:5000/v3",
        "partitions": ["batch"],
    }
    return BridgeConfig(**{**fields, **overrides})


def run_openstack(config: BridgeConfig) -> tuple[Mocks, dict[str, Any]]:
    from components.providers.openstack.bridge_host import OpenStackBridgeHost

    host = OpenStackBridgeHost(
        site="hpc-test",
        config=config,
        region="WAW3-1",
        network_id="net-1",
        cidrs=[*CLUSTER_CIDRS, *config.allowed_cidrs],
        availability_zone=None,
        tags={"fedeploy:site": "hpc-test"},
    )
    return run(config, bridge_host=host)


def test_an_openstack_vm_is_pinned_in_the_sites_network_without_floating_ip_or_config_drive():
    mocks, _ = run_openstack(openstack_vm())
    instance = mocks.one(OS_INSTANCE).inputs
    assert (instance["imageId"], instance["flavorId"]) == (OS_IMAGE, "eo2a.large")
    assert instance["networks"] == [{"uuid": "net-1"}]
    assert instance["configDrive"] is False
    assert not mocks.by_type("openstack:networking/floatingIp:FloatingIp")
    assert not mocks.by_type("aws:ec2/instance:Instance")
    assert mocks.one(SLICE).inputs["endpoints"][0]["addresses"] == ["10.60.0.23"]


def test_an_openstack_vm_security_group_admits_only_the_rest_port_from_the_admitted_ranges():
    mocks, _ = run_openstack(openstack_vm(allowed_cidrs=["192.0.2.0/24"]))
    group = mocks.one("openstack:networking/secGroup:SecGroup").inputs
    assert group["deleteDefaultRules"] is True  # no default allow-all egress
    rules = [r.inputs for r in mocks.by_type(OS_RULE)]
    ingress = [r for r in rules if r["direction"] == "ingress"]
    assert sorted(r["remoteIpPrefix"] for r in ingress) == ["10.40.0.0/16", "192.0.2.0/24"]
    assert {(r["protocol"], r["portRangeMin"], r["portRangeMax"]) for r in ingress} == {
        ("tcp", 6820, 6820)
    }
    egress = {(r["protocol"], r["portRangeMin"]) for r in rules if r["direction"] == "egress"}
    assert egress == {("tcp", 80), ("tcp", 443), ("tcp", 5000), ("tcp", 9311), ("udp", 53)}


def test_an_openstack_vm_reads_its_secrets_from_barbican_with_a_credential_scoped_to_them():
    from datetime import UTC, datetime

    mocks, _ = run_openstack(openstack_vm())
    stored = {r.inputs["name"]: r for r in mocks.by_type(BARBICAN)}
    assert sorted(stored) == [
        f"fedeploy-hpc-test-bridge-{n}" for n in ("ca.crt", "jwt.key", "tls.crt", "tls.key")
    ]
    assert all(is_secret(r.inputs["payload"]) for r in stored.values())
    jwt_key = next(r for r in mocks.resources if r.name == "hpc-test-bridge-jwt-key")
    key_value = hashlib.sha256(jwt_key.name.encode()).hexdigest()[:64]
    assert reveal(stored["fedeploy-hpc-test-bridge-jwt.key"].inputs["payload"]) == key_value

    credential = mocks.one(APP_CREDENTIAL).inputs
    assert credential["unrestricted"] is False
    refs = [hashlib.sha256(r.name.encode()).hexdigest()[:32] for r in mocks.by_type(BARBICAN)]
    paths = sorted(rule["path"] for rule in credential["accessRules"])
    assert len(paths) == 4 and all(p.startswith("/v1/secrets/") for p in paths)
    assert all(p.endswith("/payload") for p in paths)
    assert {p.split("/")[3].replace("-", "") for p in paths} == set(refs)
    assert {(r["service"], r["method"]) for r in credential["accessRules"]} == {
        ("key-manager", "GET")
    }
    expires = datetime.strptime(credential["expiresAt"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    minutes = (expires - datetime.now(UTC)).total_seconds() / 60
    # Valid for the boot window only (boot_window_minutes, 30, from now, to the minute).
    assert 29 <= minutes <= 31
    assert is_secret(credential["secret"])


def test_an_openstack_vm_user_data_holds_no_bridge_secret_only_the_root_only_credential():
    mocks, _ = run_openstack(openstack_vm())
    instance = mocks.one(OS_INSTANCE).inputs
    assert is_secret(instance["userData"])  # the boot credential is in it: kept out of plans
    document = reveal(instance["userData"])
    assert document.startswith("#cloud-config\n")
    assert len(base64.b64encode(document.encode())) <= 65535  # Nova's user data limit
    cloud = yaml.safe_load(document)
    files = {f["path"]: f for f in cloud["write_files"]}
    text = {p: base64.b64decode(f["content"]).decode() for p, f in files.items()}
    jwt_key = next(r for r in mocks.resources if r.name == "hpc-test-bridge-jwt-key")
    key_value = hashlib.sha256(jwt_key.name.encode()).hexdigest()[:64]
    assert key_value not in document and "BEGIN TEST" not in document
    assert all(key_value not in t and "BEGIN TEST" not in t for t in text.values())

    credential = files["/root/fedeploy-bridge/credential.json"]
    assert (credential["permissions"], credential["owner"]) == ("0600", "root:root")
    boot = json.loads(text["/root/fedeploy-bridge/credential.json"])
    assert boot["auth_url"] == "https://keystone.cloudferro.com:5000/v3"
    assert boot["id"] == f"{mocks.one(APP_CREDENTIAL).name}-id"
    # Only root reaches the metadata service (user data) from the first boot on.
    assert "meta skuid != 0" in text["/etc/fedeploy-imds-guard.nft"]
    command = cloud["runcmd"][-1][-1]
    assert "fetch-secrets-openstack.py /root/fedeploy-bridge/credential.json" in command
    assert command.count("/v1/secrets/") == 4 and "setup.sh" in command


def test_an_openstack_vm_gets_a_new_credential_when_its_configuration_changes():
    def credential(config: BridgeConfig) -> Recorded:
        return run_openstack(config)[0].one(APP_CREDENTIAL)

    first = credential(openstack_vm())
    assert first.name == credential(openstack_vm()).name  # same file: same credential
    assert first.inputs["name"].startswith("fedeploy-hpc-test-bridge-boot-")
    for changed in (
        openstack_vm(image_id="7f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b"),
        openstack_vm(credential_generation=2),
        openstack_vm(allowed_cidrs=["192.0.2.0/24"]),
    ):
        assert credential(changed).name != first.name
