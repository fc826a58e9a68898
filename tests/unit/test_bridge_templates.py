"""The bridge node's rendered configuration: what each mode gets, checked by the tools that run it."""

from __future__ import annotations

import base64
import gzip
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from fedeploy.bridge.firewall import firewall_rules
from fedeploy.bridge.node_config import (
    HEREDOC_END,
    NodeLayout,
    bridge_node,
    secret_stdin,
    user_data_base64,
)
from fedeploy.bridge_boot import parameter_name, vm_cloud_init
from fedeploy.config.base import SecretValue
from fedeploy.config.bridge import BridgeConfig

TLS_NAME = "fedeploy-slurm-bridge.fedeploy.svc.cluster.local"


def gateway(**overrides: Any) -> BridgeConfig:
    fields: dict[str, Any] = {
        "mode": "gateway",
        "host": "gw.example.eu",
        "ssh_user": "ops",
        "ssh_private_key": SecretValue("k"),
        "partitions": ["gpu", "cpu"],
    }
    return BridgeConfig(**{**fields, **overrides})


def render(config: BridgeConfig | None = None, cidrs: tuple[str, ...] = ("10.40.0.0/16",)):  # type: ignore[no-untyped-def]
    config = config or gateway()
    return bridge_node(
        config,
        bridge_name="hpc-test",
        firewall=firewall_rules(config.rest_port, cidrs),
        tls_name=TLS_NAME,
    )


def files(node) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {Path(f.path).name: f.content for f in node.files}


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("FEDEPLOY_REQUIRE_INTEGRATION") == "1":
            pytest.fail(f"{tool} is required (FEDEPLOY_REQUIRE_INTEGRATION=1)")
        pytest.skip(f"{tool} is not installed (apt-get install -y {tool})")
    return path


def test_a_gateway_gets_slurmrestd_behind_tls_with_jwt_only():
    rendered = files(render())
    env = rendered["slurmrestd.env"]
    assert "SLURM_JWT=daemon" in env and "SLURMRESTD_AUTH_TYPES=rest_auth/jwt" in env
    assert "SLURMRESTD_LISTEN=127.0.0.1:6821" in env
    assert "SLURM_CONF=/etc/slurm/slurm.conf" in env
    unit = rendered["fedeploy-slurmrestd.service"]
    assert "User=slurmrestd" in unit and "NoNewPrivileges=yes" in unit
    proxy = rendered["tls-proxy.conf"]
    assert "listen 6820 ssl;" in proxy and "server 127.0.0.1:6821;" in proxy
    assert r"location ~ ^/slurm/v0\.0\.38/(ping|jobs|job/submit|job/[0-9]+)$" in proxy
    assert "slurm.conf" not in rendered  # the centre's own stays untouched


def test_the_firewall_admits_only_the_given_ranges_on_the_rest_port():
    nft = files(render(cidrs=("10.40.0.0/16", "fd00::/8")))["firewall.nft"]
    assert "elements = { 10.40.0.0/16 }" in nft and "elements = { fd00::/8 }" in nft
    assert "tcp dport 6820 counter drop" in nft
    assert nft.index("saddr @allowed_ipv4 accept") < nft.index("counter drop")


def test_without_tls_slurmrestd_listens_on_the_rest_port_itself():
    node = render(gateway(tls={"enabled": False}))
    rendered = files(node)
    assert "SLURMRESTD_LISTEN=0.0.0.0:6820" in rendered["slurmrestd.env"]
    assert "tls-proxy.conf" not in rendered
    assert node.secret_names == ("jwt.key", "token")


def test_the_setup_script_reads_its_secrets_from_stdin():
    node = render()
    assert node.secret_names == ("jwt.key", "tls.key", "tls.crt", "ca.crt", "token")
    assert "while IFS=$'\\t' read -r name value" in node.setup_script
    assert "/etc/slurm/jwt_hs256.key 0600 slurm slurm" in node.setup_script


def test_the_content_hash_follows_the_rendered_content_only():
    assert render().content_hash == render().content_hash
    assert render(cidrs=("10.41.0.0/16",)).content_hash != render().content_hash
    assert render(gateway(partitions=["gpu"])).content_hash != render().content_hash


def test_a_vm_runs_its_own_one_node_slurm():
    node = render(
        BridgeConfig(
            mode="vm",
            instance_type="c6i.large",
            ami="ami-0123456789abcdef0",
            partitions=["batch", "debug"],
        )
    )
    conf = files(node)["slurm.conf"]
    assert (
        "AuthAltTypes=auth/jwt" in conf
        and "AuthAltParameters=jwt_key=/etc/slurm/jwt_hs256.key" in conf
    )
    assert "Include /etc/slurm/fedeploy-node.conf" in conf
    assert (
        "PartitionName=batch Nodes=ALL Default=YES" in conf
        and "PartitionName=debug Nodes=ALL Default=NO" in conf
    )
    assert (
        "slurmd -C" in node.setup_script
        and "scontrol token username=fedeploy lifespan" in node.setup_script
    )
    assert node.units[:3] == ("munge.service", "slurmctld.service", "slurmd.service")
    assert "token" not in node.secret_names


def test_an_existing_bridge_has_no_node():
    config = BridgeConfig(
        mode="existing", endpoint="https://x.example.eu", token=SecretValue("t"), partitions=["p"]
    )
    with pytest.raises(ValueError, match="no node to configure"):
        render(config)


def test_a_file_that_would_end_the_heredoc_is_refused(monkeypatch):
    import fedeploy.bridge.node_config as node_config

    real = node_config.render
    monkeypatch.setattr(
        node_config,
        "render",
        lambda t, **c: real(t, **c) + (HEREDOC_END + "\n" if t == "slurmrestd.env.j2" else ""),
    )
    with pytest.raises(ValueError, match="contains the setup script's delimiter"):
        render()


def test_secrets_travel_as_named_base64_lines():
    text = secret_stdin({"token": "a.b.c", "jwt.key": b"\x00\xff"})
    assert text == "jwt.key\tAP8=\ntoken\tYS5iLmM=\n"
    with pytest.raises(ValueError, match="unknown bridge secret 'ssh'"):
        secret_stdin({"ssh": "x"})


def test_cloud_init_fetches_the_secrets_from_ssm_and_fits_ec2():
    node = render(
        BridgeConfig(
            mode="vm", instance_type="c6i.large", ami="ami-0123456789abcdef0", partitions=["batch"]
        )
    )
    parameters = {n: parameter_name("hpc-test", n) for n in node.secret_names}
    document = vm_cloud_init(node, parameters, {n: 1 for n in parameters})
    cloud = yaml.safe_load(document)
    assert "nginx-light" in cloud["packages"] and "python3-boto3" in cloud["packages"]
    files = {f["path"]: base64.b64decode(f["content"]).decode() for f in cloud["write_files"]}
    assert files["/root/fedeploy-bridge/setup.sh"] == node.setup_script
    assert "ssm" in files["/root/fedeploy-bridge/fetch-secrets.py"]
    assert "meta skuid != 0" in files["/etc/fedeploy-imds-guard.nft"]
    # The guard is up before the secrets are fetched; the secrets go through a pipe only.
    assert cloud["runcmd"][1] == ["systemctl", "enable", "--now", "fedeploy-imds-guard.service"]
    command = cloud["runcmd"][2][2]
    assert command.startswith("set -o pipefail; python3 /root/fedeploy-bridge/fetch-secrets.py")
    assert "jwt.key=/fedeploy/hpc-test/bridge/jwt.key" in command
    assert command.endswith("| /root/fedeploy-bridge/setup.sh")
    assert "secrets" not in files and not any("BEGIN" in text for text in files.values())
    with pytest.raises(ValueError, match="without an SSM parameter: jwt.key"):
        vm_cloud_init(node, {k: v for k, v in parameters.items() if k != "jwt.key"}, {})
    packed = user_data_base64(document)
    assert gzip.decompress(base64.b64decode(packed)).decode() == document
    assert user_data_base64(document) == packed  # same bytes every run
    with pytest.raises(ValueError, match="above EC2's 16384"):
        user_data_base64(os.urandom(40_000).hex())


@pytest.mark.parametrize("script", ["setup_script", "teardown_script"])
@pytest.mark.parametrize("mode", ["gateway", "vm"])
def test_the_scripts_pass_shellcheck(script, mode, tmp_path):
    shellcheck = require("shellcheck")
    config = (
        gateway()
        if mode == "gateway"
        else BridgeConfig(
            mode="vm", instance_type="c6i.large", ami="ami-0123456789abcdef0", partitions=["b"]
        )
    )
    node = render(config)
    scripts = {script: getattr(node, script), "verify.sh": files(node)["verify.sh"]}
    for name, text in scripts.items():
        path = tmp_path / f"{name}.sh"
        path.write_text(text)
        result = subprocess.run(
            [shellcheck, "-s", "bash", str(path)], capture_output=True, text=True
        )
        assert result.returncode == 0, f"{name}:\n{result.stdout}"


def test_the_firewall_passes_nft_check(tmp_path):
    nft = require("nft")
    if os.geteuid() != 0:
        pytest.skip("nft -c needs root")
    path = tmp_path / "firewall.nft"
    path.write_text(files(render(cidrs=("10.40.0.0/16", "fd00::/8")))["firewall.nft"])
    result = subprocess.run([nft, "-c", "-f", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_cloud_config_passes_cloud_init_schema(tmp_path):
    tool = require("cloud-init")
    node = render(
        BridgeConfig(
            mode="vm", instance_type="c6i.large", ami="ami-0123456789abcdef0", partitions=["batch"]
        )
    )
    path = tmp_path / "user-data.yaml"
    path.write_text(vm_cloud_init(node, {n: parameter_name("t", n) for n in node.secret_names}, {}))
    result = subprocess.run([tool, "schema", "-c", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_layout_moves_every_path():
    layout = NodeLayout(config_dir="/srv/b", unit_dir="/srv/u", run_dir="/srv/r", systemd=False)
    node = bridge_node(
        gateway(),
        bridge_name="t",
        firewall=firewall_rules(6820, ["10.0.0.0/8"]),
        tls_name=TLS_NAME,
        layout=layout,
    )
    assert all(f.path.startswith(("/srv/b/", "/srv/u/")) for f in node.files)
    assert "systemctl" not in node.setup_script
