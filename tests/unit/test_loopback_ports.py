"""The loopback peers' ports: never from the kernel's ephemeral range, never one another test
process holds (the browser test once failed on a port an outgoing connection or another test
had taken between bind(0) closing it and nginx binding it)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from loopback import processes
from loopback.nginx import free_port_on


def test_a_peer_port_lies_below_the_ephemeral_range_and_is_not_given_twice():
    low = processes._ephemeral_low()
    if low - processes.LOWEST_PORT < 1000:
        pytest.skip("the ephemeral range leaves no ports below it here")
    ports = [processes.free_port() for _ in range(20)] + [free_port_on("127.0.0.15")]
    assert len(set(ports)) == len(ports)
    assert all(processes.LOWEST_PORT <= p < low for p in ports), ports


def test_a_port_this_process_holds_is_locked_against_another_process(tmp_path, monkeypatch):
    if processes._ephemeral_low() - processes.LOWEST_PORT < 1000:
        pytest.skip("the ephemeral range leaves no ports below it here")
    monkeypatch.setattr(processes, "PORT_LOCKS", tmp_path)
    mine = sorted(processes.free_port() for _ in range(5))
    # Another process takes each port's lock as free_port would: none is to be had.
    child = (
        "import fcntl, os\n"
        "held = []\n"
        f"for port in {mine!r}:\n"
        f"    fd = os.open(os.path.join({str(tmp_path)!r}, f'{{port}}.lock'), os.O_RDWR)\n"
        "    try:\n"
        "        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "        held.append(port)\n"
        "    except OSError:\n"
        "        pass\n"
        "print(held)\n"
    )
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
