"""Hostile strings in every free-text field of the bridge: refused by the config, and even where
validation is bypassed, every value reaches the node's shell quoted: the scripts parse
(`bash -n`) and, run in a scratch root with the system commands stubbed, touch nothing but the
files they install."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from fedeploy.bridge.firewall import firewall_rules
from fedeploy.bridge.node_config import (
    HEREDOC_END,
    NodeLayout,
    OneNodeSlurm,
    bridge_node,
    secret_stdin,
)
from fedeploy.config.base import SecretValue
from fedeploy.config.bridge import NODE_PATH_PATTERN, BridgeConfig

CANARY = "/tmp/fedeploy-canary-{scratch}"
INJECTIONS = [
    "$(touch {canary})",
    "`touch {canary}`",
    "; touch {canary};",
    "' ; touch {canary} ; '",
    '" ; touch {canary} ; "',
    "\ntouch {canary}\n",
    "&& touch {canary} #",
    "| touch {canary}",
    "${{IFS}}touch${{IFS}}{canary}",
    "$'\\x3b' touch {canary}",
    "\\'; touch {canary}; \\'",
    "*",
    "-rf /",
]
# Printable text without NUL (which no YAML stack file can hold).
FREE_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=24,
)


@st.composite
def hostile(draw: Any) -> str:
    """A template of free text around one injection; `{canary}` is filled in per run."""
    injection = draw(st.sampled_from(INJECTIONS))
    before = draw(FREE_TEXT).replace("{", "{{").replace("}", "}}")
    after = draw(FREE_TEXT).replace("{", "{{").replace("}", "}}")
    return before + injection + after


def _base(mode: str) -> BridgeConfig:
    if mode == "gateway":
        return BridgeConfig(
            mode="gateway",
            host="gw.example.eu",
            ssh_user="ops",
            ssh_private_key=SecretValue("k"),
            partitions=["gpu"],
        )
    return BridgeConfig(
        mode="vm", instance_type="c6i.large", ami="ami-0123456789abcdef0", partitions=["b"]
    )


# --- the config refuses them ---------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(value=hostile(), field=st.sampled_from(["slurm_conf_path", "jwt_key_path"]))
def test_a_path_with_shell_or_config_syntax_is_refused(value: str, field: str) -> None:
    path = "/etc/slurm/" + value.format(canary="/tmp/x")
    with pytest.raises(ValidationError, match=field):
        _base("gateway").model_validate({**_base("gateway").model_dump(), field: path})


@pytest.mark.parametrize("path", ["/etc/../root/x", "/etc//slurm.conf", "/etc/./x", "relative/x"])
def test_a_path_must_be_plain_and_absolute(path: str) -> None:
    with pytest.raises(ValidationError, match="slurm_conf_path"):
        _base("gateway").model_validate({**_base("gateway").model_dump(), "slurm_conf_path": path})


@settings(max_examples=40, deadline=None)
@given(
    value=hostile(),
    field=st.sampled_from(["daemon_user", "slurm_user", "service_user", "host", "partitions"]),
)
def test_names_with_shell_or_config_syntax_are_refused(value: str, field: str) -> None:
    data = _base("gateway").model_dump()
    text = value.format(canary="/tmp/x")
    data[field] = [text] if field == "partitions" else text
    with pytest.raises(ValidationError):
        BridgeConfig.model_validate(data)


@settings(max_examples=40, deadline=None)
@given(
    conf=st.from_regex(NODE_PATH_PATTERN, fullmatch=True),
    key=st.from_regex(NODE_PATH_PATTERN, fullmatch=True),
)
def test_an_accepted_path_is_one_word_in_slurm_conf_and_the_env_file(conf: str, key: str) -> None:
    assume(conf != key)
    try:
        config = BridgeConfig(
            **{
                **_base("vm").model_dump(),
                "slurm_conf_path": conf,
                "jwt_key_path": key,
            }
        )
    except ValidationError:
        return  # '..' or '//' components: refused, nothing rendered
    node = bridge_node(
        config, bridge_name="hpc", firewall=firewall_rules(6820, ["10.0.0.0/8"]), tls_name="t"
    )
    rendered = {f.path: f.content for f in node.files}
    slurm_conf = rendered[conf]
    assert f"AuthAltParameters=jwt_key={key}\n" in slurm_conf
    for line in slurm_conf.splitlines():
        if line and not line.startswith("#"):
            # slurm.conf: space-separated Key=Value words, no comment inside a value.
            words = line.split()
            if words[0] == "Include":
                assert len(words) == 2, line
            else:
                assert all("=" in word for word in words), line
            assert "#" not in line
    env = rendered[NodeLayout().rest_env]
    assert f"SLURM_CONF={conf}\n" in env
    proxy = rendered[NodeLayout().tls_conf]
    for line in proxy.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            assert stripped.endswith((";", "{", "}")), line  # one nginx directive per line


# --- quoting alone holds ---------------------------------------------------------------------

_STUBS = {
    "id": "exit 0",
    "useradd": 'echo "useradd $*" >> "$STUB_LOG"',
    "nft": "exit 0",
    "nginx": "exit 0",
    "slurmrestd": "exit 0",
    "systemctl": 'echo "systemctl $*" >> "$STUB_LOG"',
    "hostname": "echo bridge-node",
    "slurmd": "echo 'NodeName=bridge-node CPUs=2 RealMemory=2000'",
    "scontrol": "echo SLURM_JWT=stub-token",
    # install as a non-root user: the same copy, without the owner and group.
    "install": (
        'args=(); while (($#)); do case "$1" in -o|-g) shift 2;; *) args+=("$1"); shift;; '
        'esac; done; exec /usr/bin/install "${args[@]}"'
    ),
    "curl": (
        'out=""; while (($#)); do case "$1" in --output) out=$2; shift 2;; *) shift;; esac; '
        'done; [[ -n "$out" ]] && printf \'{"errors": [{"error_number": 2017}]}\' > "$out";'
        ' case "$*" in *ping*) ;; esac; printf 200'
    ),
}


def _stub_bin(root: Path) -> Path:
    bin_dir = root / "stub-bin"
    bin_dir.mkdir()
    for name, body in _STUBS.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/bash\n{body}\n")
        path.chmod(0o755)
    return bin_dir


def _files_under(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def _hostile_config(mode: str, values: dict[str, str], root: Path) -> BridgeConfig:
    """Validation bypassed: the hostile values go straight to the templates."""
    file_part = values["path"].replace("/", "_")
    return _base(mode).model_copy(
        update={
            "daemon_user": values["daemon_user"],
            "slurm_user": values["slurm_user"],
            "service_user": values["service_user"],
            "partitions": [values["partition"]],
            "slurm_conf_path": str(root / "etc" / f"slurm{file_part}.conf"),
            "jwt_key_path": str(root / "etc" / f"jwt{file_part}.key"),
        }
    )


@pytest.mark.parametrize("mode", ["gateway", "vm"])
@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    values=st.fixed_dictionaries(
        {
            name: hostile()
            for name in (
                "daemon_user",
                "slurm_user",
                "service_user",
                "partition",
                "path",
                "bridge_name",
                "tls_name",
            )
        }
    )
)
def test_hostile_values_reach_the_shell_quoted(
    mode: str, values: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    bash = shutil.which("bash")
    assert bash is not None
    scratch = tmp_path_factory.mktemp("node")
    canary = Path(CANARY.format(scratch=scratch.name))
    filled = {k: v.format(canary=canary) for k, v in values.items()}
    root = scratch / "root"
    (root / "etc").mkdir(parents=True)
    config = _hostile_config(mode, filled, root)
    layout = NodeLayout(
        config_dir=str(root / "etc" / "fedeploy-bridge"),
        unit_dir=str(root / "etc" / "systemd"),
        run_dir=str(root / "run"),
    )
    (root / "etc" / "systemd").mkdir()

    def render() -> Any:
        return bridge_node(
            config,
            bridge_name=filled["bridge_name"],
            firewall=firewall_rules(6820, ["10.0.0.0/8"]),
            tls_name=filled["tls_name"],
            layout=layout,
            slurm=OneNodeSlurm(node_conf=str(root / "etc" / "node.conf")),
        )

    if any(HEREDOC_END in value for value in filled.values()):
        with pytest.raises(ValueError, match="delimiter"):
            render()  # refused before anything is written
        return
    node = render()
    scripts = {
        "setup": node.setup_script,
        "teardown": node.teardown_script,
        "verify": next(f.content for f in node.files if f.path == layout.verify),
    }
    for name, text in scripts.items():
        check = subprocess.run([bash, "-n"], input=text, capture_output=True, text=True)
        assert check.returncode == 0, f"{name}: {check.stderr}"

    if mode == "gateway":
        Path(config.slurm_conf_path).write_text("ClusterName=centre\n")
    before = _files_under(root)
    work, tmp = scratch / "cwd", scratch / "tmp"
    work.mkdir()
    tmp.mkdir()
    secrets = {"jwt.key": "k", "tls.key": "K", "tls.crt": "C", "ca.crt": "A"}
    if mode == "gateway":
        secrets["token"] = "t"
    env = {
        "PATH": f"{_stub_bin(scratch)}:/usr/bin:/bin",
        "HOME": str(work),
        "TMPDIR": str(tmp),
        "STUB_LOG": str(scratch / "stub.log"),
    }
    (root / "etc" / "setup.sh").write_text(node.setup_script)
    try:
        result = subprocess.run(
            [bash, str(root / "etc" / "setup.sh")],
            input=secret_stdin(secrets),
            capture_output=True,
            text=True,
            cwd=work,
            env=env,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert not canary.exists(), "a hostile value ran as a command"
        installed = {f.path for f in node.files} | {s.path for s in node.secret_files}
        if mode == "vm":
            installed.add(str(root / "etc" / "node.conf"))
        created = _files_under(root) - before - {str(root / "etc" / "setup.sh")}
        assert created <= installed, sorted(created - installed)
        assert not any(work.iterdir()) and not any(tmp.iterdir())
    finally:
        canary.unlink(missing_ok=True)
        os.environ.pop("STUB_LOG", None)
