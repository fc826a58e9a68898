"""The bridge against a real one-node SLURM, beside sbatch on the same cluster.

Prints: submit latency through the client; submit-to-completion of a trivial job through
the client and through `sbatch --wait`; N submissions through one client, through bare
REST posts (the ceiling: what the client's idempotency lookup and owner check cost) and
through N `sbatch` processes. Needs root and the Debian SLURM packages, like the tests.

    .venv/bin/python benchmarks/bridge.py [--count 100] [--repeat 10]
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import httpx

from fedeploy.bridge.client import BridgeClient
from fedeploy.bridge.jobs import JobSpec

ROOT = Path(__file__).resolve().parents[1]
TRIVIAL = "#!/bin/bash\ntrue\n"


def load_harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "fedeploy_slurm_cluster", ROOT / "scripts" / "slurm_cluster.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def figures(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"median {statistics.median(ordered) * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms   (n={len(ordered)})"


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


class Bench:
    def __init__(self, cluster, count: int, repeat: int):  # type: ignore[no-untyped-def]
        self.cluster = cluster
        self.count = count
        self.repeat = repeat
        self.work = cluster.jobs_dir / "bench"
        self.work.mkdir(exist_ok=True)
        shutil.chown(self.work, cluster.user, cluster.user)
        self.client = BridgeClient(
            cluster.endpoint, cluster.user, cluster.token(), ca_file=cluster.ca_file
        )

    def spec(self, name: str) -> JobSpec:
        return JobSpec(
            name=name, script=TRIVIAL, time_limit_minutes=5, working_directory=str(self.work)
        )

    def sbatch(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "runuser",
                "-u",
                self.cluster.user,
                "--",
                "sbatch",
                "--parsable",
                "-D",
                str(self.work),
                "-o",
                f"{self.work}/sbatch-%j.out",
                "-t",
                "5",
                *args,
            ],
            input=TRIVIAL,
            capture_output=True,
            text=True,
            check=True,
            env=self.cluster.env(),
        )

    def drain(self) -> float:
        """Seconds until no job is pending or running."""
        started = time.perf_counter()
        while subprocess.run(
            ["squeue", "-h", "-o", "%i"], capture_output=True, text=True, env=self.cluster.env()
        ).stdout.strip():
            time.sleep(0.05)
        return time.perf_counter() - started

    def run(self) -> None:
        self.client.wait(self.client.submit(self.spec("warm-up")), timeout=60, poll=0.05)
        self.drain()

        submit = [
            timed(lambda i=i: self.client.submit(self.spec(f"lat-{i}"))) for i in range(self.repeat)
        ]
        self.drain()
        complete_client = [
            timed(
                lambda i=i: self.client.wait(
                    self.client.submit(self.spec(f"e2e-{i}")), 60, poll=0.02
                )
            )
            for i in range(self.repeat)
        ]
        complete_sbatch = [timed(lambda: self.sbatch("--wait")) for _ in range(self.repeat)]
        self.drain()

        print(f"one job ({self.repeat} runs each, {self.cluster.host}, trivial script)")
        print(
            f"  submit through the client        {figures(submit)}  (lookup by key, post, owner check)"
        )
        print(f"  submit to COMPLETED, client      {figures(complete_client)}")
        print(
            f"  submit to COMPLETED, sbatch --wait {figures(complete_sbatch)}  (sbatch --wait polls, first after 2 s)"
        )

        n = self.count
        each: list[float] = []
        total = timed(
            lambda: each.extend(
                timed(lambda i=i: self.client.submit(self.spec(f"tp-{i}"))) for i in range(n)
            )
        )
        drained = self.drain()
        print(f"{n} submissions")
        print(
            f"  through one client   {total:6.2f} s  ({n / total:6.1f}/s)  each {figures(each)}; queue drained {drained:.1f} s later"
        )

        raw, failed = self._raw_posts(n)
        drained = self.drain()
        print(
            f"  bare REST posts      {raw:6.2f} s  ({n / raw:6.1f}/s)  the ceiling: no idempotency lookup, "
            f"no owner check, no retry ({failed} failed); drained {drained:.1f} s later"
        )

        sbatch = timed(lambda: [self.sbatch() for _ in range(n)])
        drained = self.drain()
        print(
            f"  {n} sbatch processes {sbatch:6.2f} s  ({n / sbatch:6.1f}/s)  drained {drained:.1f} s later"
        )

    def _raw_posts(self, n: int) -> tuple[float, int]:
        context = ssl.create_default_context(cafile=self.cluster.ca_file)
        headers = {
            "X-SLURM-USER-NAME": self.cluster.user,
            "X-SLURM-USER-TOKEN": self.cluster.token(),
        }
        body = {
            "script": TRIVIAL,
            "job": {
                "name": "raw",
                "time_limit": 5,
                "environment": {"PATH": "/usr/bin:/bin"},
                "current_working_directory": str(self.work),
                "standard_output": f"{self.work}/raw-%j.out",
            },
        }
        failed = 0
        with httpx.Client(base_url=self.cluster.endpoint, verify=context, headers=headers) as http:

            def post_all() -> None:
                nonlocal failed
                for _ in range(n):
                    failed += http.post("/slurm/v0.0.38/job/submit", json=body).status_code != 200

            return timed(post_all), failed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100, help="submissions in the throughput runs")
    parser.add_argument("--repeat", type=int, default=10, help="runs of each one-job figure")
    args = parser.parse_args(argv)
    harness = load_harness()
    reason = harness.missing_prerequisites()
    if reason:
        print(f"cannot run the bridge benchmark: {reason}", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="fedeploy-bench-"))
    cluster = harness.LocalSlurm(root)
    started = time.perf_counter()
    try:
        cluster.start()
        print(
            f"SLURM 1 node, 16 advertised CPUs, bridge with TLS: up in {time.perf_counter() - started:.1f} s"
        )
        Bench(cluster, args.count, args.repeat).run()
    finally:
        cluster.stop()
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
