"""Wall time and peak memory of `fedeploy plan`: the example federation against its import
floor, a one-site change planned from the cache, and a synthetic federation of 300 sites.

Each case runs in a fresh process so its peak memory and its imports are its own. Goals (issue
35): the example's plan (no cache) within 2x its import floor, the time a fresh process takes
to import every module the plan loads (workers' modules included); a change to one site, the
rest kept in the cache, under 1.5 s (a fresh process, beside its import floor, and a running
`fedeploy plan --watch`, from the write of the stack file to its report); 300 mixed sites (no
cache) under 90 s and 2 GiB.

    python benchmarks/plan.py                 # every case, the example run 3 times (median)
    python benchmarks/plan.py --example-only --repeat 5
    python benchmarks/plan.py --sites 100     # a smaller synthetic federation
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fedeploy.go_runtime import GO_GC_PERCENT  # noqa: E402

# Every case runs with the Go runtime's GOGC the `fedeploy` command gives itself (it runs itself
# again once with it, about an interpreter start, when GOGC is unset; fedeploy/go_runtime.py).
GO_ENV = {"GOGC": os.environ.get("GOGC", GO_GC_PERCENT)}

CASE = """
import json, resource, sys, time
from pathlib import Path
start = time.perf_counter()
from fedeploy.plan.run import run_plan
from fedeploy.plan.formats import as_json
report = run_plan(Path(sys.argv[1]), jobs=int(sys.argv[2]))
as_json(report)
elapsed = time.perf_counter() - start
own = resource.getrusage(resource.RUSAGE_SELF)
children = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = sum(u.ru_utime + u.ru_stime for u in (own, children))
print(json.dumps({"seconds": elapsed, "cpu": cpu, "peak_kib": own.ru_maxrss,
                  "child_peak_kib": children.ru_maxrss,
                  "sites": len(report.sites), "resources": report.to_dict()["summary"]["resources"],
                  "exit": report.exit_code, "errors": report.errors[:3]}))
"""

# The modules a plan of the example loads, in the order it loads them: one process, no cache,
# no fork (so the workers' modules, Helm and the schemas, are loaded here too).
MODULES_USED = """
import json, sys
from pathlib import Path
from fedeploy.plan.run import run_plan
from fedeploy.plan.formats import as_json
as_json(run_plan(Path(sys.argv[1]), jobs=1))
print(json.dumps(list(sys.modules)))
"""

# The import floor: a fresh process importing those modules, and nothing else.
IMPORT_FLOOR = """
import importlib, json, sys, time
names = json.loads(sys.stdin.read())
start = time.perf_counter()
for name in names:
    if name not in sys.modules:
        try:
            importlib.import_module(name)
        except Exception:
            pass  # a module made at run time, not importable by name
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def import_floor(stacks: Path, repeat: int, cache: str = "off") -> float:
    """The median time a fresh process takes to import every module a plan of `stacks` loads
    (with FEDEPLOY_PLAN_CACHE=`cache`: the modules that planning what the cache lacks loads)."""
    used = (
        subprocess.run(
            [sys.executable, "-c", MODULES_USED, str(stacks)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, **GO_ENV, "FEDEPLOY_PLAN_CACHE": cache},
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    times = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", IMPORT_FLOOR],
            cwd=ROOT,
            input=used,
            capture_output=True,
            text=True,
            check=True,
        )
        times.append(float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"]))
    return statistics.median(times)


def run_case(stacks: Path, jobs: int, cache: str = "off", tree: bool = False) -> dict:
    """One plan in a fresh process with FEDEPLOY_PLAN_CACHE=`cache`: `seconds` from the first
    import to the report, `process` the whole command's wall time (interpreter start and exit
    included, as a user waits for it). With `tree`, also `tree_pss_kib`: the largest sum, over
    the planner and its workers, of their proportional set sizes (shared pages counted once),
    sampled every 0.2 s: what the whole plan holds at once, for a runner's memory limit."""
    import threading

    start = time.perf_counter()
    command = subprocess.Popen(
        [sys.executable, "-c", CASE, str(stacks), str(jobs)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **GO_ENV, "FEDEPLOY_PLAN_CACHE": cache},
    )
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], sum(_pss_kib(pid) for pid in _tree(command.pid)))

    sampler = threading.Thread(target=sample, daemon=True)
    if tree:
        sampler.start()
    stdout, stderr = command.communicate()
    done.set()
    if tree:
        sampler.join()
    if command.returncode != 0:
        raise subprocess.CalledProcessError(command.returncode, command.args, stdout, stderr)
    figures = dict(json.loads(stdout.strip().splitlines()[-1]))
    figures["process"] = time.perf_counter() - start
    if tree:
        figures["tree_pss_kib"] = peak[0]
    return figures


def _tree(root: int) -> list[int]:
    """`root` and every process descended from it (from /proc/*/stat's parent ids)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found = [root]
    for pid in found:
        found.extend(child for child, parent in parents.items() if parent == pid)
    return found


def _pss_kib(pid: int) -> int:
    """A process's proportional set size (KiB, /proc/<pid>/smaps_rollup), 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def example_case(
    jobs: int, repeat: int, stacks: Path = ROOT / "stacks", cache: str = "off"
) -> dict:
    """A plan of `stacks` `repeat` times: the median run, with the fastest and slowest."""
    runs = sorted((run_case(stacks, jobs, cache) for _ in range(repeat)), key=_seconds)
    median = dict(runs[len(runs) // 2])
    median["spread"] = (runs[0]["seconds"], runs[-1]["seconds"])
    median["seconds"] = statistics.median(_seconds(r) for r in runs)
    median["process"] = statistics.median(float(r["process"]) for r in runs)
    median["cpu"] = statistics.median(float(r["cpu"]) for r in runs)
    return median


def _seconds(run: dict) -> float:
    return float(run["seconds"])


def _copy_stacks(folder: Path) -> Path:
    stacks = folder / "stacks"
    stacks.mkdir(parents=True)
    for path in (ROOT / "stacks").glob("Pulumi.*.yaml"):
        (stacks / path.name).write_text(path.read_text())
    return stacks


def _changed_catalog(original: str, host: str) -> str:
    """The stack file with its catalog's URL on another host (so its outputs change)."""
    document = yaml.safe_load(original)
    catalog = document["config"]["fedeploy:site"]["services"]["catalog"]
    catalog["url"] = catalog["url"].replace("https://catalog.", f"https://{host}.")
    return yaml.safe_dump(document, sort_keys=False)


def one_site_change(jobs: int, repeat: int, folder: Path) -> dict:
    """A copy of the example federation planned once into a fresh cache; then one member's
    catalog URL changes (so its outputs change, and the hub that reads them is replanned too):
    the median of `repeat` plans of that change, each from the cache as the first plan left it.
    `floor`: the import floor of the modules such a plan loads."""
    stacks = _copy_stacks(folder)
    changed = stacks / f"Pulumi.{CHANGED_SITE}.yaml"
    original = changed.read_text()
    floor_cache = str(folder / "cache-floor")
    run_case(stacks, jobs, floor_cache)
    runs = []
    for run in range(repeat):
        cache = folder / f"cache-{run}"
        run_case(stacks, jobs, str(cache))  # every stack planned and kept
        changed.write_text(_changed_catalog(original, "stac"))
        try:
            runs.append(run_case(stacks, jobs, str(cache)))
        finally:
            changed.write_text(original)
    changed.write_text(_changed_catalog(original, "stac"))
    try:  # the modules that plan loads, from a cache as the first plan left it
        floor = import_floor(stacks, repeat, floor_cache)
    finally:
        changed.write_text(original)
    runs.sort(key=_seconds)
    median = dict(runs[len(runs) // 2])
    median["spread"] = (runs[0]["seconds"], runs[-1]["seconds"])
    median["cpu"] = statistics.median(float(r["cpu"]) for r in runs)
    median["floor"] = floor
    return median


def _cpu_of(pid: int) -> float:
    """CPU seconds of a process and its reaped children (user and system), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def _last_json(text: str) -> dict:
    """The last of the JSON documents `text` holds one after the other ({} if none)."""
    decoder = json.JSONDecoder()
    last: dict = {}
    at = 0
    while text[at:].strip():
        at += len(text[at:]) - len(text[at:].lstrip())
        last, at = decoder.raw_decode(text, at)
    return last


def watch_change(repeat: int, folder: Path) -> dict:
    """`fedeploy plan --watch` on a copy of the example federation (its own cache): once its
    first report is out, the same change as one_site_change is written `2 * repeat` times (a
    new catalog host each time, so each is planned, never a cache hit); each time, the seconds
    from just before the write to the watcher's status line after its report (the median, the
    fastest and slowest), and the watcher's CPU seconds (its children's included) in between."""
    import queue
    import threading

    stacks = _copy_stacks(folder)
    changed = stacks / f"Pulumi.{CHANGED_SITE}.yaml"
    original = changed.read_text()
    reports = folder / "reports.json"
    command = [sys.executable, "-m", "fedeploy", "plan", "--watch", "--format", "json"]
    env = {**os.environ, "FEDEPLOY_PLAN_CACHE": str(folder / "cache")}  # GOGC as the command sets
    with reports.open("w") as out:
        watcher = subprocess.Popen(
            [*command, "--stacks-dir", str(stacks)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
        )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert watcher.stderr is not None
        for line in watcher.stderr:
            lines.put(line)

    def status() -> str:
        got = ""
        while not (line := lines.get(timeout=600)).startswith("watching "):
            got += line
        return got

    threading.Thread(target=read, daemon=True).start()
    times: list[float] = []
    cpus: list[float] = []
    errors: list[str] = []
    try:
        status()  # the first plan: every stack
        for step in range(2 * repeat):
            text = _changed_catalog(original, f"stac{step}")
            cpu = _cpu_of(watcher.pid)
            start = time.perf_counter()
            changed.write_text(text)
            said = status()
            times.append(time.perf_counter() - start)
            cpus.append(_cpu_of(watcher.pid) - cpu)
            if f"planned {CHANGED_SITE}, eu-hub;" not in said:
                errors.append(said.strip())
    finally:
        watcher.terminate()
        watcher.wait(timeout=60)
    summary = _last_json(reports.read_text()).get("summary", {})
    return {
        "seconds": statistics.median(times),
        "process": statistics.median(times),
        "cpu": statistics.median(cpus),
        "spread": (min(times), max(times)),
        "runs": len(times),
        "peak_kib": 0,
        "child_peak_kib": 0,
        "sites": summary.get("sites", 0),
        "resources": summary.get("resources", 0),
        "exit": watcher.returncode,
        "errors": errors,
    }


CHANGED_SITE = "cf-waw"


def main() -> None:
    from benchmarks.synthetic import make_federation

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each small case (median)")
    parser.add_argument("--example-only", action="store_true", help="skip the synthetic case")
    parser.add_argument("--sites", type=int, default=300, help="sites of the synthetic case")
    args = parser.parse_args()
    repeat = max(1, args.repeat)

    jobs = 2
    floor = import_floor(ROOT / "stacks", repeat)
    example = example_case(jobs, repeat)
    rows: list[tuple[str, dict, str, float | None]] = [
        ("example, no cache", example, f"<= {2 * floor:.2f} (2x floor)", None),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "example-cache"
        run_case(ROOT / "stacks", jobs, str(cache))
        rows.append(
            ("example, all cached", example_case(jobs, repeat, cache=str(cache)), "-", None)
        )
        one = one_site_change(jobs, repeat, Path(tmp) / "one")
        rows.append(("one site changed", one, f"< 1.5 (floor {one['floor']:.2f})", None))
        watch = watch_change(repeat, Path(tmp) / "watch")
        rows.append(("one site changed, --watch", watch, "< 1.5", None))
        if not args.example_only:
            stacks = make_federation(Path(tmp) / f"f{args.sites}", args.sites)
            rows.append(
                (f"{args.sites} sites + hub", run_case(stacks, jobs, tree=True), "< 90", 2048.0)
            )
    print(
        f"fedeploy plan, {jobs} worker processes, {os.cpu_count()} CPUs, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end"
    )
    print(
        f"import floor of the example's modules: {floor:.2f} s (median of {repeat}); "
        f"example / floor = {example['seconds'] / floor:.2f}x (goal <= 2x)"
    )
    print(
        f"{'case':<26} {'sites':>5} {'resources':>9} {'wall s':>8} {'process s':>9} {'cpu s':>7} {'goal s':>20} {'peak MiB':>9} {'goal MiB':>9} exit"
    )
    for name, r, goal, mib in rows:
        peak = max(r["peak_kib"], r["child_peak_kib"]) / 1024
        print(
            f"{name:<26} {r['sites']:>5} {r['resources']:>9} {r['seconds']:>8.2f} {r['process']:>9.2f} {r['cpu']:>7.2f} "
            f"{goal:>20} {(f'{peak:.0f}' if peak else '-'):>9} {(f'< {mib:g}' if mib else '-'):>9} {r['exit']}"
        )
        if "spread" in r:
            low, high = r["spread"]
            runs = r.get("runs", repeat)
            print(f"   median of {runs} runs; fastest {low:.2f} s, slowest {high:.2f} s")
        if "tree_pss_kib" in r:
            tree_mib = r["tree_pss_kib"] / 1024
            print(
                f"   the planner and its workers together: {tree_mib:.0f} MiB at most (PSS, "
                f"shared pages once; goal < {mib:g} MiB)"
            )
        if r["errors"]:
            print("   errors:", [str(e)[:300] for e in r["errors"]])
    print(
        "wall s: from the first import to the report; process s: the whole command, interpreter\n"
        "start and exit included; cpu s: the CPU time of the planning process and its workers\n"
        "(user and system: what the plan costs, whatever else the machine runs). peak MiB: the\n"
        "larger of the planning process and its largest worker (each worker is a fork).\n"
        f"one site changed: {CHANGED_SITE}'s catalog URL, so it and the hub that reads its outputs\n"
        "are planned, the other stacks come from the cache; floor: the import floor of the modules\n"
        "that plan loads (a fresh process pays it before planning anything). --watch: the same\n"
        "change written under a running `fedeploy plan --watch --format json` (imports done once),\n"
        "from just before the write to its status line after the report; cpu s: the watcher's and\n"
        "its forked planner's, per change; exit: the watcher's on SIGTERM."
    )


if __name__ == "__main__":
    main()
