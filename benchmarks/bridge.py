"""The bridge against a real one-node SLURM, beside sbatch on the same cluster.

Prints, each beside its goal where it has one: submit latency through the client;
submit-to-completion of a trivial job through the client and through `sbatch --wait`; N
submissions through one client, through bare REST posts (the ceiling) and through N `sbatch`
processes (goal: the client within 1.5x of sbatch); then a submission's median cost with 0,
1,000 and 5,000 other users' held jobs on the controller (goal: within 20% of the empty
queue's), beside what one listing of every job costs at each size (the lookup the client
makes only after a lost answer, behind a held twin, or with resume=True). Each Slurm release
in turn (22.05, REST API v0.0.38, on the host; 24.11, v0.0.42, in the root filesystem of
scripts/slurm-rootfs.sh), then the headline figures of both side by side. Needs root and
the peers of the tests (scripts/install-peers.sh).

    .venv/bin/python benchmarks/bridge.py [--count 100] [--repeat 10] [--queues 0,1000,5000]
                                          [--releases 22.05,24.11]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import httpx

from fedeploy.bridge.client import BridgeClient
from fedeploy.bridge.jobs import JobSpec
from fedeploy.bridge.slurm_api import adapter_for

ROOT = Path(__file__).resolve().parents[1]
TRIVIAL = "#!/bin/bash\ntrue\n"
OTHER_USER = "fedeploy-rest"  # the held jobs' owner: a user other than the client's
THROUGHPUT_GOAL = 1.5  # the client's N submissions within this factor of N sbatch calls
PARKED = "batch"  # the harness's second partition, set DOWN while the queue sizes are measured
FLAT_GOAL = 0.20  # a submission's median cost at any queue size within 20% of the empty queue's


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


def bare_body(api_version: str, **job: object) -> dict[str, object]:
    """A submission without the client, in the shapes of the API version (five minutes)."""
    if api_version == "v0.0.38":
        limits = {"time_limit": 5, "environment": {"PATH": "/usr/bin:/bin"}}
        return {"script": TRIVIAL, "job": {**job, **limits}}
    five = {"set": True, "infinite": False, "number": 5}
    limits = {"time_limit": five, "environment": ["PATH=/usr/bin:/bin"], "script": TRIVIAL}
    return {"job": {**job, **limits}}


def controller_rpc_times(cluster) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """slurmctld's average time per RPC type since the last `sdiag --reset`, microseconds."""
    out = subprocess.run(
        cluster.command(["sdiag"]), capture_output=True, text=True, env=cluster.env()
    ).stdout
    return {
        name: int(ave)
        for name, ave in re.findall(
            r"^\s*(REQUEST_\w+)\s+\(\s*\d+\)\s+count:\d+\s+ave_time:(\d+)", out, re.M
        )
    }


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


class CountingTransport(httpx.HTTPTransport):
    """httpx's transport, counting the requests the client makes."""

    def __init__(self, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.requests = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return super().handle_request(request)


class Bench:
    def __init__(self, cluster, count: int, repeat: int):  # type: ignore[no-untyped-def]
        self.cluster = cluster
        self.count = count
        self.repeat = repeat
        self.work = cluster.jobs_dir / "bench"
        self.work.mkdir(exist_ok=True)
        shutil.chown(self.work, cluster.user, cluster.user)
        self.transport = CountingTransport(
            verify=ssl.create_default_context(cafile=cluster.ca_file)
        )
        self.client = BridgeClient(
            cluster.endpoint, cluster.user, cluster.token(), transport=self.transport
        )
        self.submit_path = adapter_for(cluster.api_version).submit_path
        # The headline figures, for the releases' side-by-side table.
        self.summary: dict[str, float] = {}
        self.http = httpx.Client(
            base_url=cluster.endpoint,
            verify=ssl.create_default_context(cafile=cluster.ca_file),
            headers={"X-SLURM-USER-NAME": cluster.user, "X-SLURM-USER-TOKEN": cluster.token()},
        )

    def spec(self, name: str) -> JobSpec:
        return JobSpec(
            name=name, script=TRIVIAL, time_limit_minutes=5, working_directory=str(self.work)
        )

    def timed_submit(self, name: str, *, wait: bool = False, partition: str | None = None) -> float:
        """Seconds one submission through the client takes (to COMPLETED with `wait`)."""
        spec = self.spec(name).model_copy(update={"partition": partition})
        started = time.perf_counter()
        job_id = self.client.submit(spec)
        if wait:
            self.client.wait(job_id, 60, poll=0.02)
        return time.perf_counter() - started

    def sbatch(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.cluster.command(
                [
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
                user=self.cluster.user,
            ),
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
            self.cluster.command(["squeue", "-h", "-u", self.cluster.user, "-o", "%i"]),
            capture_output=True,
            text=True,
            env=self.cluster.env(),
        ).stdout.strip():
            time.sleep(0.05)
        return time.perf_counter() - started

    def run(self) -> None:
        self.client.wait(self.client.submit(self.spec("warm-up")), timeout=60, poll=0.05)
        self.drain()

        submit = [self.timed_submit(f"lat-{i}") for i in range(self.repeat)]
        self.drain()
        complete_client = [self.timed_submit(f"e2e-{i}", wait=True) for i in range(self.repeat)]
        complete_sbatch = [timed(lambda: self.sbatch("--wait")) for _ in range(self.repeat)]
        self.drain()

        self.summary["submit_ms"] = statistics.median(submit) * 1000
        print(f"one job ({self.repeat} runs each, {self.cluster.host}, trivial script)")
        print(
            f"  submit through the client        {figures(submit)}  (post, read back: owner, twin, reason)"
        )
        print(f"  submit to COMPLETED, client      {figures(complete_client)}")
        print(
            f"  submit to COMPLETED, sbatch --wait {figures(complete_sbatch)}  (sbatch --wait polls, first after 2 s)"
        )

        n = self.count
        each: list[float] = []
        total = timed(lambda: each.extend(self.timed_submit(f"tp-{i}") for i in range(n)))
        drained = self.drain()
        print(f"{n} submissions")
        print(
            f"  through one client   {total:6.2f} s  ({n / total:6.1f}/s)  each {figures(each)}; queue drained {drained:.1f} s later"
        )

        raw, failed = self._raw_posts(n)
        drained = self.drain()
        print(
            f"  bare REST posts      {raw:6.2f} s  ({n / raw:6.1f}/s)  the ceiling: no read-back, "
            f"no retry ({failed} failed); drained {drained:.1f} s later"
        )

        sbatch = timed(lambda: [self.sbatch() for _ in range(n)])
        drained = self.drain()
        print(
            f"  {n} sbatch processes {sbatch:6.2f} s  ({n / sbatch:6.1f}/s)  drained {drained:.1f} s later"
        )
        ratio = total / sbatch
        self.summary.update(client_s=total, sbatch_s=sbatch, ratio=ratio)
        print(
            f"  client / sbatch      {ratio:6.2f}x   goal <= {THROUGHPUT_GOAL:.1f}x   "
            f"{'met' if ratio <= THROUGHPUT_GOAL else 'NOT MET'}"
        )

    def queue_sizes(self, sizes: list[int], samples: int, reference: Bench) -> None:
        """A submission's median cost with `size` held jobs of another user on the controller,
        against the same submission to `reference`, a second cluster whose queue stays empty.

        Submissions alternate between the two, so both see the same load of a shared machine
        at the same moments: the paired ratio is the queue's effect alone. The sampled jobs go
        to a partition set DOWN on both, so they stay pending: what is measured is the
        submission, not the controller launching the previous sample's job."""
        print(
            f"queue size ({samples} submissions each, alternating with an identical cluster whose "
            f"queue stays empty; load average {os.getloadavg()[0]:.1f})"
        )
        for bench in (self, reference):
            bench.park(True)
        held = 0
        env = self.cluster.env()
        pair: float | None = None  # the two clusters' ratio with both queues empty
        pairs0: tuple[float, float] | None = None  # the same for a bare post and an sbatch
        try:
            for size in sizes:
                filled = 0.0
                if size > held:
                    started = time.perf_counter()
                    self._hold(size - held)
                    filled, held = time.perf_counter() - started, size
                for i in range(5):
                    self.timed_submit(f"w{size}-{i}", partition=PARKED)
                    reference.timed_submit(f"w{size}-{i}", partition=PARKED)
                before = self.transport.requests
                subprocess.run(
                    self.cluster.command(["sdiag", "--reset"]), capture_output=True, env=env
                )
                busy, empty = [], []
                for i in range(samples):
                    first, second = (self, reference) if i % 2 else (reference, self)
                    a = first.timed_submit(f"q{size}-{i}", partition=PARKED)
                    b = second.timed_submit(f"q{size}-{i}", partition=PARKED)
                    busy.append(a if first is self else b)
                    empty.append(b if first is self else a)
                requests = (self.transport.requests - before) / samples
                rpc = controller_rpc_times(self.cluster)
                # The same pairing for what the client does not control: slurmctld's own cost.
                posts = self._paired(reference, samples // 2, lambda b: b.timed_post(PARKED))
                sbatches = self._paired(
                    reference, samples // 5, lambda b: timed(lambda: b.sbatch("-p", PARKED))
                )
                listing = [timed(lambda: self.client.find("no-such-key")) for _ in range(3)]
                ratio = statistics.median(x / y for x, y in zip(busy, empty, strict=True))
                pair = ratio if pair is None else pair
                change = ratio / pair - 1
                verdict = "met" if abs(change) <= FLAT_GOAL else "NOT MET"
                self.summary[f"queue_{size}"] = change
                print(
                    f"  {size:5d} held  submit {figures(busy)}  {requests:.1f} requests each;  "
                    f"empty queue, same moments: median {statistics.median(empty) * 1000:.1f} ms"
                )
                print(
                    f"         paired ratio {ratio:5.2f} (both empty: {pair:.2f}): {change:+6.1%} vs "
                    f"the empty queue (goal within {FLAT_GOAL:.0%}: {verdict});  one listing of every job "
                    f"{statistics.median(listing) * 1000:.1f} ms  (held jobs queued in {filled:.1f} s)"
                )
                pairs0 = (posts, sbatches) if pairs0 is None else pairs0
                print(
                    f"         same pairing without the client (slurmctld's share): a bare REST post "
                    f"{posts / pairs0[0] - 1:+6.1%}, an sbatch {sbatches / pairs0[1] - 1:+6.1%} "
                    "vs the empty queue"
                )
                print(
                    "         slurmctld's own average per RPC: "
                    + ", ".join(
                        f"{name} {rpc[name] / 1000:.2f} ms"
                        for name in ("REQUEST_SUBMIT_BATCH_JOB", "REQUEST_JOB_INFO_SINGLE")
                        if name in rpc
                    )
                )
        finally:
            subprocess.run(
                self.cluster.command(["scancel", "-u", OTHER_USER]), capture_output=True, env=env
            )
            for bench in (self, reference):
                bench.park(False)

    def _paired(self, other: Bench, count: int, action: Callable[[Bench], float]) -> float:
        """Median ratio of `action` here to `action` on `other`, alternating which goes first."""
        ratios = []
        for i in range(count):
            if i % 2:
                mine, theirs = action(self), action(other)
            else:
                theirs, mine = action(other), action(self)
            ratios.append(mine / theirs)
        return statistics.median(ratios)

    def timed_post(self, partition: str) -> float:
        """Seconds of one bare REST submission (no read-back, no dependency)."""
        body = bare_body(
            self.cluster.api_version,
            name="bare",
            partition=partition,
            current_working_directory=str(self.work),
            standard_output=f"{self.work}/bare-%j.out",
        )
        return timed(lambda: self.http.post(self.submit_path, json=body))

    def park(self, down: bool) -> None:
        """Set the parked partition DOWN (samples stay pending) or, after, cancel them and UP."""
        env = self.cluster.env()
        if not down:
            subprocess.run(
                self.cluster.command(["scancel", "-u", self.cluster.user, "-p", PARKED]),
                capture_output=True,
                env=env,
            )
        state = f"State={'DOWN' if down else 'UP'}"
        subprocess.run(
            self.cluster.command(["scontrol", "update", f"PartitionName={PARKED}", state]),
            check=True,
            env=env,
        )

    def _hold(self, count: int) -> None:
        """Queue `count` held jobs as another user, over the REST API in a few threads
        (as `sbatch --hold` would, faster)."""
        token = self.cluster.token(user=OTHER_USER)
        context = ssl.create_default_context(cafile=self.cluster.ca_file)
        body = bare_body(
            self.cluster.api_version,
            name="held",
            hold=True,
            current_working_directory="/tmp",
            standard_output="/dev/null",
        )
        headers = {"X-SLURM-USER-NAME": OTHER_USER, "X-SLURM-USER-TOKEN": token}

        def post(share: int) -> None:
            with httpx.Client(
                base_url=self.cluster.endpoint, verify=context, headers=headers, timeout=60
            ) as http:
                for _ in range(share):
                    for attempt in range(5):  # a busy slurmrestd may answer 502 through nginx
                        answer = http.post(self.submit_path, json=body)
                        if answer.status_code == 200 and '"job_id"' in answer.text:
                            break
                        time.sleep(0.2 * (attempt + 1))
                    else:
                        raise RuntimeError(
                            f"queueing a held job failed: HTTP {answer.status_code} {answer.text[:300]}"
                        )

        workers = 2
        shares = [count // workers + (1 if i < count % workers else 0) for i in range(workers)]
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(post, shares))

    def _raw_posts(self, n: int) -> tuple[float, int]:
        context = ssl.create_default_context(cafile=self.cluster.ca_file)
        headers = {
            "X-SLURM-USER-NAME": self.cluster.user,
            "X-SLURM-USER-TOKEN": self.cluster.token(),
        }
        body = bare_body(
            self.cluster.api_version,
            name="raw",
            current_working_directory=str(self.work),
            standard_output=f"{self.work}/raw-%j.out",
        )
        failed = 0
        with httpx.Client(base_url=self.cluster.endpoint, verify=context, headers=headers) as http:

            def post_all() -> None:
                nonlocal failed
                for _ in range(n):
                    failed += http.post(self.submit_path, json=body).status_code != 200

            return timed(post_all), failed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100, help="submissions in the throughput runs")
    parser.add_argument("--repeat", type=int, default=10, help="runs of each one-job figure")
    parser.add_argument(
        "--queues", default="0,1000,5000", help="held jobs on the controller, ascending from 0"
    )
    parser.add_argument("--samples", type=int, default=100, help="submissions per queue size")
    parser.add_argument(
        "--releases", default="22.05,24.11", help="the Slurm releases to measure, in turn"
    )
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.queues.split(",") if n]
    if sizes and (sizes[0] != 0 or sizes != sorted(sizes)):
        parser.error(f"--queues {args.queues}: ascending, starting with 0 (the pair's baseline)")
    harness = load_harness()
    releases = [r for r in args.releases.split(",") if r]
    for release in releases:
        reason = harness.missing_prerequisites(release)
        if reason:
            print(f"cannot run the bridge benchmark on Slurm {release}: {reason}", file=sys.stderr)
            return 2
    results = {}
    for release in releases:
        print(f"== Slurm {release} (REST API {harness.RELEASES[release]})")
        results[release] = measure(harness, release, args, sizes)
    side_by_side(results, sizes, args.count)
    return 0


def measure(harness, release: str, args: argparse.Namespace, sizes: list[int]) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """One release's figures, printed as they come; the headline ones returned."""
    roots = [Path(tempfile.mkdtemp(prefix="fedeploy-bench-")) for _ in range(3)]
    # One cluster for the throughput figures; two fresh, identical ones for the queue sizes
    # (the first holds hundreds of finished jobs for MinJobAge after its run).
    first, busy, empty = (harness.LocalSlurm(root, release=release) for root in roots)
    started = time.perf_counter()
    summary: dict[str, float] = {}
    try:
        first.start()
        print(
            f"SLURM 1 node, 16 advertised CPUs, bridge with TLS: up in {time.perf_counter() - started:.1f} s"
        )
        bench = Bench(first, args.count, args.repeat)
        bench.run()
        summary.update(bench.summary)
        first.stop()
        if sizes:
            busy.start()
            empty.start()
            queued = Bench(busy, args.count, args.repeat)
            queued.queue_sizes(sizes, args.samples, Bench(empty, args.count, args.repeat))
            summary.update(queued.summary)
    finally:
        for cluster in (empty, busy, first):
            cluster.stop()
    for root in roots:
        shutil.rmtree(root, ignore_errors=True)
    return summary


def side_by_side(results: dict[str, dict[str, float]], sizes: list[int], count: int) -> None:
    """The headline figures of each release in one table, beside their goals."""
    releases = list(results)
    print("== side by side")
    print(f"  {'':44s}" + "".join(f"{r:>12s}" for r in releases) + "   goal")

    def row(label: str, key: str, form: str, goal: str) -> None:
        cells = "".join(
            f"{format(results[r][key], form):>12s}" if key in results[r] else f"{'-':>12s}"
            for r in releases
        )
        print(f"  {label:44s}{cells}   {goal}")

    row("one submission through the client, median ms", "submit_ms", ".1f", "")
    row(f"{count} submissions through the client, s", "client_s", ".2f", "")
    row(f"{count} sbatch processes, s", "sbatch_s", ".2f", "")
    row("client / sbatch", "ratio", ".2f", f"<= {THROUGHPUT_GOAL:.1f}")
    for size in sizes[1:]:
        row(
            f"a submission with {size} held jobs vs none",
            f"queue_{size}",
            "+.1%",
            f"within {FLAT_GOAL:.0%}",
        )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
