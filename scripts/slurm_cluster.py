"""A private one-node SLURM on loopback, configured by the bridge's own rendered templates.

munged, slurmctld, slurmd, slurmrestd and the nginx TLS proxy run from one scratch
directory with free ports; every file they read is rendered by `fedeploy.bridge.node_config`
and installed by the rendered setup script, so the tests exercise what a bridge node gets.
Daemons stop by their pid files, never by name.

    python scripts/slurm_cluster.py start DIR [--release 24.11]  # prints FEDEPLOY_BRIDGE_*
    python scripts/slurm_cluster.py stop DIR [--release 24.11]

Two releases: 22.05 (REST API v0.0.38) is the host's Debian 12 Slurm; 24.11 (v0.0.42) is
Debian 13's, run in the root filesystem scripts/slurm-rootfs.sh builds ($FEDEPLOY_SLURM_ROOTFS,
default /var/cache/fedeploy/slurm-24.11): its daemons and tools run under chroot with this
scratch directory, /proc, /sys, /dev and the host's passwd, group and hosts files bound in at
the same paths, so the rendered files name one path on both sides. The TLS proxy, the setup
and verify scripts run on the host either way.

Needs root (slurmd runs jobs as other users), nginx-light, nftables and curl; for 22.05
Debian's slurmctld, slurmd, slurmrestd, slurm-client, munge and slurm-wlm-jwt-plugin.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedeploy.bridge.firewall import firewall_rules
from fedeploy.bridge.node_config import (
    BridgeNode,
    NodeLayout,
    NodeSpec,
    OneNodeSlurm,
    bridge_node,
    secret_stdin,
)
from fedeploy.bridge.tokens import mint_token
from fedeploy.config.bridge import BridgeConfig

HOST_BINARIES = ("nginx", "nft", "curl")
SLURM_BINARIES = (
    "munged",
    "mungekey",
    "slurmctld",
    "slurmd",
    "slurmrestd",
    "sinfo",
    "scontrol",
)
BINARIES = (*SLURM_BINARIES, *HOST_BINARIES)
# The Slurm releases the harness runs, and the REST API version each bridge node serves.
RELEASES = {"22.05": "v0.0.38", "24.11": "v0.0.42"}
DEFAULT_ROOTFS = "/var/cache/fedeploy/slurm-24.11"
DAEMON_USER = "fedeploy-rest"
SERVICE_USER = "fedeploy-jobs"
PARTITIONS = ["debug", "batch"]
TLS_NAME = "localhost"


class ClusterUnavailable(RuntimeError):
    """The machine cannot run the cluster (not root, packages missing); the reason says which."""


def rootfs_path() -> Path:
    """Where the Slurm 24.11 root filesystem is (scripts/slurm-rootfs.sh builds it)."""
    return Path(os.environ.get("FEDEPLOY_SLURM_ROOTFS") or DEFAULT_ROOTFS)


def missing_prerequisites(release: str = "22.05") -> str | None:
    """Why a cluster of this Slurm release cannot start here, or None."""
    if release not in RELEASES:
        return f"no harness for Slurm {release!r} (it runs {', '.join(RELEASES)})"
    if os.geteuid() != 0:
        return "the SLURM harness needs root (slurmd runs jobs as another user)"
    if release == "22.05":
        missing = [b for b in BINARIES if shutil.which(b) is None]
    else:
        missing = [b for b in HOST_BINARIES if shutil.which(b) is None]
    if missing:
        return (
            f"missing {', '.join(missing)}: apt-get install -y slurmctld slurmd slurmrestd "
            "slurm-client munge slurm-wlm-jwt-plugin nginx-light nftables curl"
        )
    if release != "22.05":
        rootfs = rootfs_path()
        stamp = rootfs / ".fedeploy-rootfs"
        if not stamp.is_file() or not stamp.read_text().startswith(f"slurm {release}."):
            return (
                f"no Slurm {release} root filesystem at {rootfs} (FEDEPLOY_SLURM_ROOTFS): "
                "run scripts/slurm-rootfs.sh (scripts/install-peers.sh does)"
            )
    for user in ("slurm", "munge"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            return f"user {user!r} is missing (the Debian packages create it)"
    return None


def free_ports(count: int) -> list[int]:
    """Ports free on loopback, below the kernel's ephemeral range so that no outgoing
    connection takes one between now and the daemon's bind."""
    low, _ = (int(p) for p in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    held: list[socket.socket] = []
    try:
        while len(held) < count:
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", secrets.randbelow(low - 20000) + 20000))
            except OSError:
                sock.close()
                continue
            held.append(sock)
        return [int(s.getsockname()[1]) for s in held]
    finally:
        for sock in held:
            sock.close()


def ensure_system_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ],
            check=True,
        )


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    # A zombie has exited; where pid 1 does not reap, it lingers in the table.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _exe(pid: int) -> str:
    try:
        return os.path.realpath(f"/proc/{pid}/exe")
    except OSError:
        return ""


@dataclass(frozen=True)
class Daemon:
    name: str
    binary: str  # resolved path: /usr/sbin/slurmctld is a symlink to slurmctld-wlm
    pid_file: Path


class LocalSlurm:
    """A one-node SLURM with the bridge in front, rooted in `root`."""

    def __init__(
        self,
        root: Path,
        *,
        min_job_age: int = 300,
        message_timeout: int = 3,
        cpus: int = 16,
        release: str = "22.05",
    ):
        if release not in RELEASES:
            raise ClusterUnavailable(
                f"no harness for Slurm {release!r} (it runs {', '.join(RELEASES)})"
            )
        self.release = release
        self.api_version = RELEASES[release]
        # Slurm runs in this root filesystem (None: the host's own Slurm).
        self.rootfs: Path | None = None if release == "22.05" else rootfs_path()
        self.root = root.resolve()
        self.min_job_age = min_job_age
        self.message_timeout = message_timeout
        self.cpus = cpus
        self.host = socket.gethostname().split(".")[0]
        self.jobs_dir = self.root / "jobs"
        self.key_path = self.root / "slurm" / "jwt_hs256.key"
        self.slurm_conf = self.root / "slurm" / "slurm.conf"
        self.munge_dir = self.root / "munge"
        self.ports = dict(zip(("ctld", "d", "rest", "internal"), free_ports(4), strict=True))
        self.layout = NodeLayout(
            config_dir=str(self.root / "etc"),
            unit_dir=str(self.root / "units"),
            run_dir=str(self.root / "run" / "bridge"),
            access_log=str(self.root / "log" / "tls-access.log"),
            systemd=False,
        )
        self.config = BridgeConfig(
            mode="vm",
            instance_type="t3.small",
            ami="ami-00000000",
            rest_port=self.ports["rest"],
            internal_port=self.ports["internal"],
            daemon_user=DAEMON_USER,
            service_user=SERVICE_USER,
            slurm_conf_path=str(self.slurm_conf),
            jwt_key_path=str(self.key_path),
            partitions=PARTITIONS,
            api_version=self.api_version,
        )
        self.slurm = OneNodeSlurm(
            ctld_port=self.ports["ctld"],
            d_port=self.ports["d"],
            state_dir=str(self.root / "slurm" / "state"),
            spool_dir=str(self.root / "slurm" / "spool"),
            pid_dir=str(self.root / "run"),
            log_dir=str(self.root / "log"),
            munge_socket=str(self.munge_dir / "munge.socket"),
            min_job_age=min_job_age,
            message_timeout=message_timeout,
            def_mem_per_cpu=64,
            node=NodeSpec(self.host, "127.0.0.1", cpus, 4000, cpus_override=True),
        )
        self.jwt_key = ""
        self.ca_pem = ""
        self.node: BridgeNode | None = None
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    # -- paths and identities ----------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        """The TLS listener, as the client reaches it."""
        return f"https://{TLS_NAME}:{self.ports['rest']}"

    @property
    def plain_endpoint(self) -> str:
        """slurmrestd itself on loopback, behind the proxy."""
        return f"http://127.0.0.1:{self.ports['internal']}"

    @property
    def ca_file(self) -> str:
        return self.layout.ca_cert

    @property
    def user(self) -> str:
        return SERVICE_USER

    def command(self, argv: list[str], user: str | None = None) -> list[str]:
        """A Slurm or munge command line of this release, run as root or as `user`."""
        if self.rootfs is None:
            return ["runuser", "-u", user, "--", *argv] if user else list(argv)
        spec = []
        if user:
            entry = pwd.getpwnam(user)
            spec = [f"--userspec={entry.pw_uid}:{entry.pw_gid}"]
        return ["chroot", *spec, str(self.rootfs), *argv]

    def binary(self, name: str) -> str:
        """The resolved path of a program of this release, as /proc/PID/exe shows it."""
        if self.rootfs is None:
            return os.path.realpath(shutil.which(name) or name)
        path = f"/usr/sbin/{name}"
        for _ in range(8):  # absolute links inside the tree (Debian's alternatives)
            target = self.rootfs / path.lstrip("/")
            if not target.is_symlink():
                break
            link = os.readlink(target)
            path = link if link.startswith("/") else os.path.join(os.path.dirname(path), link)
        return str(self.rootfs / path.lstrip("/"))

    def env(self) -> dict[str, str]:
        """The environment SLURM's command-line tools need to reach this cluster."""
        env = {k: v for k, v in os.environ.items() if k != "SLURM_JWT"}
        env["SLURM_CONF"] = str(self.slurm_conf)
        return env

    def token(self, lifetime_hours: int = 2, user: str = SERVICE_USER) -> str:
        return mint_token(self.jwt_key, user, now=time.time(), lifetime_hours=lifetime_hours)

    def daemons(self) -> list[Daemon]:
        run = self.root / "run"
        return [
            Daemon("munged", self.binary("munged"), self.munge_dir / "munged.pid"),
            Daemon("slurmctld", self.binary("slurmctld"), run / "slurmctld.pid"),
            Daemon("slurmd", self.binary("slurmd"), run / "slurmd.pid"),
            Daemon("slurmrestd", self.binary("slurmrestd"), run / "slurmrestd.pid"),
            Daemon(
                "nginx",
                os.path.realpath(shutil.which("nginx") or "nginx"),
                Path(self.layout.run_dir) / "tls-proxy.pid",
            ),
        ]

    # -- start ----------------------------------------------------------------------------------
    def start(self) -> None:
        reason = missing_prerequisites(self.release)
        if reason:
            raise ClusterUnavailable(reason)
        for user in (DAEMON_USER, SERVICE_USER):
            ensure_system_user(user)
        self._directories()
        self._mount()
        self._keys()
        self._install()
        self._start_munge()
        self._start_slurm()
        self._start_rest()
        self._verify()

    def _directories(self) -> None:
        # munged refuses a log or socket under a directory another user owns.
        self.root.mkdir(parents=True, exist_ok=True)
        os.chown(self.root, 0, 0)
        self.root.chmod(0o755)
        slurm = pwd.getpwnam("slurm")
        munge = pwd.getpwnam("munge")
        for sub in ("slurm", "slurm/state", "slurm/spool", "log", "run"):
            path = self.root / sub
            path.mkdir(parents=True, exist_ok=True)
            os.chown(path, slurm.pw_uid, slurm.pw_gid)
            path.chmod(0o755)
        self.munge_dir.mkdir(exist_ok=True)
        os.chown(self.munge_dir, munge.pw_uid, munge.pw_gid)
        self.munge_dir.chmod(0o755)
        jobs = pwd.getpwnam(SERVICE_USER)
        self.jobs_dir.mkdir(exist_ok=True)
        os.chown(self.jobs_dir, jobs.pw_uid, jobs.pw_gid)
        self.jobs_dir.chmod(0o755)
        # systemd's RuntimeDirectory= for the TLS proxy.
        daemon = pwd.getpwnam(DAEMON_USER)
        run_dir = Path(self.layout.run_dir)
        run_dir.mkdir(exist_ok=True)
        os.chown(run_dir, daemon.pw_uid, daemon.pw_gid)
        run_dir.chmod(0o700)
        access_log = Path(self.layout.access_log)
        access_log.touch()
        os.chown(access_log, daemon.pw_uid, daemon.pw_gid)
        for sub in ("etc", "units"):
            (self.root / sub).mkdir(exist_ok=True)

    def _mount(self) -> None:
        """Bind what the chroot's daemons need into the release's root filesystem: this
        directory at its own path, the kernel's file systems, and the host's users and hosts
        (the rendered files name host users and host paths)."""
        if self.rootfs is None:
            return
        binds = [(Path(p), Path(p)) for p in ("/proc", "/sys", "/dev")]
        binds += [(Path(p), Path(p)) for p in ("/etc/passwd", "/etc/group", "/etc/hosts")]
        binds.append((self.root, self.root))
        for source, inside in binds:
            target = self.rootfs / str(inside).lstrip("/")
            if source.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.touch(exist_ok=True)
            if os.path.ismount(target) and source != self.root:
                continue  # another cluster of this tree bound it already
            subprocess.run(["mount", "--bind", str(source), str(target)], check=True)
            with self._mount_record.open("a") as record:  # for `stop` from another process
                record.write(f"{target}\n")
        # No cgroup file system in this sandbox: slurmd of 24.11 dies without this.
        cgroup = self.slurm_conf.parent / "cgroup.conf"
        cgroup.write_text("CgroupPlugin=disabled\n")
        cgroup.chmod(0o644)

    @property
    def _mount_record(self) -> Path:
        return self.root / "mounts"

    def _unmount(self) -> None:
        if not self._mount_record.exists():
            return
        for target in reversed(self._mount_record.read_text().split()):
            subprocess.run(["umount", "--lazy", target], capture_output=True)
        self._mount_record.unlink()
        if self.rootfs is not None:  # the scratch directory's empty mount point in the tree
            with contextlib.suppress(OSError):
                (self.rootfs / str(self.root).lstrip("/")).rmdir()

    def _keys(self) -> None:
        # As pulumi_random's RandomPassword(length=64, special=False) makes it.
        alphabet = string.ascii_letters + string.digits
        self.jwt_key = "".join(secrets.choice(alphabet) for _ in range(64))
        key = self.munge_dir / "munge.key"
        subprocess.run(
            self.command(["mungekey", "--create", f"--keyfile={key}", "--force"]), check=True
        )
        munge = pwd.getpwnam("munge")
        os.chown(key, munge.pw_uid, munge.pw_gid)
        key.chmod(0o600)
        self.ca_pem, self.cert_pem, self.tls_key_pem = make_tls([TLS_NAME], ["127.0.0.1"])

    def _install(self) -> None:
        self.node = bridge_node(
            self.config,
            bridge_name="itest",
            firewall=firewall_rules(self.config.rest_port, ["127.0.0.0/8"]),
            tls_name=TLS_NAME,
            layout=self.layout,
            slurm=self.slurm,
            probe_timeout=15,
        )
        self.run_setup(self.node)

    def secrets_stdin(self) -> str:
        """The setup script's standard input: the secrets the rendered node asks for."""
        assert self.node is not None
        available = {
            "jwt.key": self.jwt_key,
            "tls.key": self.tls_key_pem,
            "tls.crt": self.cert_pem,
            "ca.crt": self.ca_pem,
            "token": self.token(),
        }
        return secret_stdin({name: available[name] for name in self.node.secret_names})

    def run_setup(self, node: BridgeNode) -> str:
        """Run a rendered setup script as a deployment would; its output lists what changed."""
        setup = self.root / "setup.sh"
        setup.write_text(node.setup_script)
        result = subprocess.run(
            ["bash", str(setup)],
            input=self.secrets_stdin(),
            capture_output=True,
            text=True,
            env=self.env(),
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"setup script failed ({result.returncode}): {result.stderr}{result.stdout}"
            )
        return result.stdout

    def _start_munge(self) -> None:
        munge = self.munge_dir
        subprocess.run(
            self.command(
                [
                    "munged",
                    f"--key-file={munge / 'munge.key'}",
                    f"--socket={munge / 'munge.socket'}",
                    f"--pid-file={munge / 'munged.pid'}",
                    f"--seed-file={munge / 'munge.seed'}",
                    f"--log-file={munge / 'munged.log'}",
                ],
                user="munge",
            ),
            check=True,
        )
        _wait_for(lambda: (munge / "munge.socket").exists(), 10, "munged's socket")

    def _start_slurm(self) -> None:
        env = self.env()
        subprocess.run(self.command(["slurmctld", "-f", str(self.slurm_conf)]), check=True, env=env)
        subprocess.run(self.command(["slurmd", "-f", str(self.slurm_conf)]), check=True, env=env)
        self.wait_idle()

    def start_controller(self) -> None:
        """Start slurmctld again (after stop_controller), keeping its saved state."""
        subprocess.run(
            self.command(["slurmctld", "-f", str(self.slurm_conf)]), check=True, env=self.env()
        )
        self.wait_idle()

    def stop_controller(self) -> None:
        self._stop(self.daemons()[1])

    def wait_idle(self, timeout: float = 30) -> None:
        def idle() -> bool:
            result = subprocess.run(
                self.command(["sinfo", "-h", "-o", "%t"]),
                capture_output=True,
                text=True,
                env=self.env(),
            )
            return result.returncode == 0 and result.stdout.strip() in ("idle", "mix", "alloc")

        _wait_for(idle, timeout, "the SLURM node to be idle")

    def _start_rest(self) -> None:
        units = Path(self.layout.unit_dir)
        self._spawn_unit(
            units / "fedeploy-slurmrestd.service", self.daemons()[3].pid_file, slurm=True
        )
        _wait_for(lambda: _port_open(self.ports["internal"]), 15, "slurmrestd")
        self._spawn_unit(units / "fedeploy-bridge-tls.service", None)
        _wait_for(lambda: _port_open(self.ports["rest"]), 15, "the TLS proxy")

    def _spawn_unit(self, unit_file: Path, pid_file: Path | None, *, slurm: bool = False) -> None:
        """Start a rendered unit's ExecStart as its User=, with its environment, as systemd would
        (a Slurm unit of 24.11 in its root filesystem)."""
        unit = parse_unit(unit_file)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        for env_file in unit.get("EnvironmentFile", []):
            env.update(parse_env_file(Path(env_file.lstrip("-"))))
        user: dict[str, Any] = {
            "user": unit["User"][0],
            "group": unit["Group"][0],
            "extra_groups": [],
        }

        def argv(line: str) -> list[str]:
            words = expand_exec(line, env)
            return self.command(words, user=unit["User"][0]) if chrooted else words

        chrooted = slurm and self.rootfs is not None
        if chrooted:
            user = {}  # chroot needs root; it drops to the unit's user itself
        for pre in unit.get("ExecStartPre", []):
            check = subprocess.run(argv(pre), env=env, capture_output=True, text=True, **user)
            if check.returncode != 0:
                raise RuntimeError(f"{unit_file.name}: ExecStartPre {pre!r} failed: {check.stderr}")
        log = open(self.root / "log" / f"{unit_file.stem}.log", "ab")  # noqa: SIM115 - kept by the daemon
        proc = subprocess.Popen(
            argv(unit["ExecStart"][0]),
            env=env,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            **user,
        )
        self._children[proc.pid] = proc
        if pid_file is not None:
            pid_file.write_text(f"{proc.pid}\n")

    @contextlib.contextmanager
    def rest_for(self, api_version: str) -> Iterator[str]:
        """A second slurmrestd, started as the rendered unit starts it but from the settings a
        node declaring `api_version` gets (its rendered slurmrestd.env), on a free loopback
        port: its plain URL while the context lasts."""
        assert self.node is not None
        declared = self.config.model_copy(update={"api_version": api_version})
        port = free_ports(1)[0]
        rendered = bridge_node(
            declared,
            bridge_name="itest",
            firewall=firewall_rules(port, ["127.0.0.0/8"]),
            tls_name=TLS_NAME,
            layout=self.layout,
            slurm=self.slurm,
        )
        env_text = next(f.content for f in rendered.files if f.path == self.layout.rest_env)
        env_file = self.root / "etc" / f"slurmrestd-{api_version}.env"
        env_file.write_text(
            env_text.replace(f"127.0.0.1:{self.ports['internal']}", f"127.0.0.1:{port}")
        )
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **parse_env_file(env_file)}
        unit = parse_unit(Path(self.layout.unit_dir) / "fedeploy-slurmrestd.service")
        log = open(self.root / "log" / f"slurmrestd-{api_version}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            self.command(expand_exec(unit["ExecStart"][0], env), user=unit["User"][0]),
            env=env,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            _wait_for(lambda: _port_open(port), 15, f"slurmrestd for {api_version}")
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=15)
            log.close()

    def _verify(self) -> None:
        result = subprocess.run(
            ["bash", self.layout.verify], input=self.token(), capture_output=True, text=True
        )
        if result.returncode != 0:
            raise RuntimeError(f"the rendered verify script failed: {result.stderr}{result.stdout}")

    # -- stop -----------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop every daemon this cluster started, newest first, by its pid file.

        Jobs are cancelled first and waited for: a job step whose slurmd is gone lingers,
        retrying to report its end."""
        self._drain()
        for daemon in reversed(self.daemons()):
            self._stop(daemon)
        self._unmount()

    def _drain(self, timeout: float = 15) -> None:
        ctld = self.daemons()[1]
        if not ctld.pid_file.exists():
            return
        env = self.env()
        listed = subprocess.run(
            self.command(["squeue", "-h", "-o", "%i"]), capture_output=True, text=True, env=env
        )
        jobs = listed.stdout.split() if listed.returncode == 0 else []
        if jobs:
            subprocess.run(self.command(["scancel", *jobs]), capture_output=True, env=env)

        def settled() -> bool:
            active = subprocess.run(
                self.command(["squeue", "-h", "-t", "R,CG,S", "-o", "%i"]),
                capture_output=True,
                text=True,
                env=env,
            )
            return active.returncode != 0 or not active.stdout.strip()

        # Stop the daemons regardless; a stray job step shows in slurmd's log.
        with contextlib.suppress(RuntimeError):
            _wait_for(settled, timeout, "the jobs to end")

    def _stop(self, daemon: Daemon) -> None:
        try:
            pid = int(daemon.pid_file.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return
        # A pid file outlives its process; never signal a stranger that reused the pid.
        if not _alive(pid) or _exe(pid) != daemon.binary:
            daemon.pid_file.unlink(missing_ok=True)
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        child = self._children.pop(pid, None)
        if child is not None:
            child.wait(timeout=5)  # reap our own child
        daemon.pid_file.unlink(missing_ok=True)


# -- helpers --------------------------------------------------------------------------------------
def parse_unit(path: Path) -> dict[str, list[str]]:
    """The [Service] keys of a systemd unit (each key's values in order)."""
    section = ""
    values: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]" and "=" in line:
            key, value = line.split("=", 1)
            values.setdefault(key, []).append(value)
    return values


def parse_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile= reads them (quotes stripped)."""
    env = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, value = line.split("=", 1)
        env[key] = " ".join(shlex.split(value))
    return env


def expand_exec(command: str, env: dict[str, str]) -> list[str]:
    """systemd's ExecStart expansion: $VAR splits into words, ${VAR} stays one word."""
    argv: list[str] = []
    for word in shlex.split(command):
        if word.startswith("${") and word.endswith("}"):
            argv.append(env[word[2:-1]])
        elif word.startswith("$"):
            argv.extend(env[word[1:]].split())
        else:
            argv.append(word)
    return argv


def make_tls(dns_names: list[str], ip_addresses: list[str]) -> tuple[str, str, str]:
    """A private CA and a server certificate for the names (CA PEM, cert PEM, key PEM)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fedeploy bridge test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return ca.public_bytes(pem).decode(), cert.public_bytes(pem).decode(), key_pem.decode()


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_for(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


def main(argv: list[str]) -> int:
    release = "22.05"
    if len(argv) == 4 and argv[2] == "--release":
        release, argv = argv[3], argv[:2]
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print("usage: slurm_cluster.py start|stop DIR [--release 22.05|24.11]", file=sys.stderr)
        return 2
    root = Path(argv[1])
    cluster = LocalSlurm(root, release=release)
    if argv[0] == "start":
        try:
            cluster.start()
        except BaseException:
            cluster.stop()
            raise
        (root / "token").write_text(cluster.token(lifetime_hours=24))
        (root / "token").chmod(0o600)
        print(f"export SLURM_CONF={cluster.slurm_conf}")
        print(f"export FEDEPLOY_BRIDGE_URL={cluster.endpoint}")
        print(f"export FEDEPLOY_BRIDGE_USER={cluster.user}")
        print(f"export FEDEPLOY_BRIDGE_CA={cluster.ca_file}")
        print(f"export FEDEPLOY_BRIDGE_TOKEN=$(cat {root / 'token'})")
        return 0
    cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
