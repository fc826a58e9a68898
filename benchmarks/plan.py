"""Wall time and peak memory of `fedeploy plan`: the example federation and synthetic ones.

Each case runs in a fresh process so its peak memory is its own. Targets: the example
federation under 5 s on two cores; 100 sites under 60 s and under 2 GiB.

    python benchmarks/plan.py                 # every case, the example run 3 times (median)
    python benchmarks/plan.py --example-only --repeat 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CASE = """
import json, resource, sys, time
from pathlib import Path
start = time.perf_counter()
from fedeploy.plan.run import run_plan
from fedeploy.plan.formats import as_json
report = run_plan(Path(sys.argv[1]), jobs=int(sys.argv[2]))
as_json(report)
elapsed = time.perf_counter() - start
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"seconds": elapsed, "peak_kib": own, "child_peak_kib": children,
                  "sites": len(report.sites), "resources": report.to_dict()["summary"]["resources"],
                  "exit": report.exit_code, "errors": report.errors[:3]}))
"""


def run_case(stacks: Path, jobs: int) -> dict:
    """One plan in a fresh process: `seconds` from the first import to the report, `process` the
    whole command's wall time (interpreter start and exit included, as a user waits for it)."""
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CASE, str(stacks), str(jobs)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    figures = dict(json.loads(out.stdout.strip().splitlines()[-1]))
    figures["process"] = time.perf_counter() - start
    return figures


def example_case(jobs: int, repeat: int) -> dict:
    """The example federation `repeat` times: the median run, with the fastest and slowest."""
    runs = sorted((run_case(ROOT / "stacks", jobs) for _ in range(repeat)), key=_seconds)
    median = dict(runs[len(runs) // 2])
    median["spread"] = (runs[0]["seconds"], runs[-1]["seconds"])
    median["seconds"] = statistics.median(_seconds(r) for r in runs)
    median["process"] = statistics.median(float(r["process"]) for r in runs)
    return median


def _seconds(run: dict) -> float:
    return float(run["seconds"])


def main() -> None:
    from benchmarks.synthetic import make_federation

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of the example (median)")
    parser.add_argument("--example-only", action="store_true", help="skip the synthetic cases")
    args = parser.parse_args()

    jobs = 2
    rows: list[tuple[str, dict, float | None, float | None]] = [
        ("example federation", example_case(jobs, max(1, args.repeat)), 5.0, None)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for sites in () if args.example_only else (10, 50, 100):
            stacks = make_federation(Path(tmp) / f"f{sites}", sites)
            ceiling = 60.0 if sites == 100 else None
            rows.append(
                (
                    f"{sites} sites + hub",
                    run_case(stacks, jobs),
                    ceiling,
                    2048.0 if sites == 100 else None,
                )
            )
    print(f"fedeploy plan, {jobs} worker processes")
    print(
        f"{'case':<22} {'sites':>5} {'resources':>9} {'wall s':>8} {'process s':>9} {'target s':>8} {'peak MiB':>9} {'target MiB':>10} exit"
    )
    for name, r, seconds, mib in rows:
        peak = max(r["peak_kib"], r["child_peak_kib"]) / 1024
        print(
            f"{name:<22} {r['sites']:>5} {r['resources']:>9} {r['seconds']:>8.2f} {r['process']:>9.2f} "
            f"{(f'< {seconds:g}' if seconds else '-'):>8} {peak:>9.0f} {(f'< {mib:g}' if mib else '-'):>10} {r['exit']}"
        )
        if "spread" in r:
            low, high = r["spread"]
            print(f"   median of {args.repeat} runs; fastest {low:.2f} s, slowest {high:.2f} s")
        if r["errors"]:
            print("   errors:", r["errors"])
    print(
        "wall s: from the first import to the report; process s: the whole command, interpreter\n"
        "start and exit included. peak MiB: the larger of the planning process and its largest\n"
        "worker (each worker is a fork)."
    )


if __name__ == "__main__":
    main()
