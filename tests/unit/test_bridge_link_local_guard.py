"""The metadata guard of every vm bridge, loaded into a real kernel's nftables in a network
namespace of its own: a process that is not root reaches no link-local destination (IPv4
169.254.0.0/16, IPv6 fe80::/10: Nova serves metadata at fe80::a9fe:a9fe too), root still does,
and other destinations stay open. Listing addresses let a SLURM job read the user data over
IPv6 and take the boot credential."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fedeploy.bridge.node_config import render

REQUIRE = os.environ.get("FEDEPLOY_REQUIRE_INTEGRATION") == "1"

# Run inside `unshare -n` as root: addresses on the namespace's own loopback, the guard loaded,
# a listener per address, then connections as root and as nobody; prints what each reached.
PROBE = textwrap.dedent(
    """
    import json, os, socket, subprocess, sys

    ADDRESSES = {
        "ipv4 link-local": ("169.254.5.5", socket.AF_INET),
        "metadata ipv4": ("169.254.169.254", socket.AF_INET),
        "metadata ipv6 (nova)": ("fe80::a9fe:a9fe", socket.AF_INET6),
        "ipv6 link-local": ("fe80::5", socket.AF_INET6),
        "private ipv4": ("10.9.9.9", socket.AF_INET),
    }

    def run(*args):
        subprocess.run(args, check=True, capture_output=True)

    run("ip", "link", "set", "lo", "up")
    for name, (address, family) in ADDRESSES.items():
        if family == socket.AF_INET:
            run("ip", "addr", "add", address + "/32", "dev", "lo")
        else:
            run("ip", "-6", "addr", "add", address + "/128", "dev", "lo", "nodad")
    run("nft", "-f", sys.argv[1])
    listeners = {}
    for name, (address, family) in ADDRESSES.items():
        server = socket.socket(family)
        target = (address, 0, 0, 1) if family == socket.AF_INET6 else (address, 0)
        server.bind(target)
        server.listen(8)
        listeners[name] = (server, family, server.getsockname())

    def reach():
        reached = {}
        for name, (_, family, where) in listeners.items():
            client = socket.socket(family)
            client.settimeout(3)
            try:
                client.connect(where)
                reached[name] = True
            except OSError:
                reached[name] = False
            finally:
                client.close()
        return reached

    as_root = reach()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read)
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
        os.write(write, json.dumps(reach()).encode())
        os._exit(0)
    os.close(write)
    as_nobody = json.loads(os.read(read, 65536))
    os.waitpid(child, 0)
    print(json.dumps({"root": as_root, "nobody": as_nobody}))
    """
)


def _probe(guard: Path, tmp_path: Path) -> dict[str, dict[str, bool]]:
    tools = [shutil.which(t) for t in ("unshare", "nft", "ip")]
    if None in tools or os.geteuid() != 0:
        if REQUIRE:
            pytest.fail("the guard test needs root, unshare, nft and ip")
        pytest.skip("the guard test needs root, unshare, nft and ip")
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    done = subprocess.run(
        ["unshare", "-n", sys.executable, str(script), str(guard)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0 and "unshare failed" in done.stderr and not REQUIRE:
        pytest.skip(f"no network namespace here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_no_process_but_roots_reaches_a_link_local_address(tmp_path: Path) -> None:
    guard = tmp_path / "guard.nft"
    guard.write_text(render("imds-guard.nft.j2"))
    reached = _probe(guard, tmp_path)
    assert reached["root"] == dict.fromkeys(reached["root"], True)
    assert reached["nobody"] == {
        "ipv4 link-local": False,
        "metadata ipv4": False,
        "metadata ipv6 (nova)": False,
        "ipv6 link-local": False,
        "private ipv4": True,
    }


def test_without_the_guard_the_probe_reaches_everything(tmp_path: Path) -> None:
    # The control: the namespace itself refuses nothing, so the refusals above are the guard's.
    empty = tmp_path / "empty.nft"
    empty.write_text("table inet fedeploy_probe {\n}\n")
    reached = _probe(empty, tmp_path)
    assert all(reached["nobody"].values()) and all(reached["root"].values())
