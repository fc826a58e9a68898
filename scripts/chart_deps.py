"""Package the library chart into the charts that depend on it (`make chart-deps`).

charts/catalog, charts/ingestion and charts/inference depend on charts/fedeploy-common as
`file://../fedeploy-common`. Its packaged copy (charts/<chart>/charts/fedeploy-common-<v>.tgz)
and Chart.lock are committed, so Helm, Pulumi's Helm Release, `helm lint` and a copy of one chart
directory find it without `helm dependency update` (docs/charts.md). This refreshes the copies
whose content differs from the library's source, with Helm's own dependency update
(helm-python-sdk); `--check` only reports them and exits 1. tests/charts/test_library_chart.py
runs the same check.
"""

from __future__ import annotations

import argparse
import io
import sys
import tarfile
from pathlib import Path, PurePosixPath

import yaml

ROOT = Path(__file__).resolve().parents[1]
CHARTS_DIR = ROOT / "charts"
FILE_REPOSITORY = "file://"


def local_dependencies(chart: Path) -> list[tuple[str, str, Path]]:
    """(name, version, source directory) of each dependency `chart` takes from a file:// path."""
    metadata = yaml.safe_load((chart / "Chart.yaml").read_text()) or {}
    return [
        (d["name"], str(d["version"]), (chart / d["repository"][len(FILE_REPOSITORY) :]).resolve())
        for d in metadata.get("dependencies") or []
        if str(d.get("repository", "")).startswith(FILE_REPOSITORY)
    ]


def _source_files(source: Path) -> dict[str, bytes]:
    return {
        path.relative_to(source).as_posix(): path.read_bytes()
        for path in sorted(source.rglob("*"))
        if path.is_file()
    }


def _archive_files(archive: Path) -> dict[str, bytes]:
    files = {}
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            extracted = tar.extractfile(member) if member.isfile() else None
            if extracted is not None:
                files[PurePosixPath(*PurePosixPath(member.name).parts[1:]).as_posix()] = (
                    extracted.read()
                )
    return files


def _same(name: str, packaged: bytes, source: bytes) -> bool:
    # Helm writes Chart.yaml anew from the parsed metadata when it packages a chart.
    if name == "Chart.yaml":
        return yaml.safe_load(io.BytesIO(packaged)) == yaml.safe_load(io.BytesIO(source))
    return packaged == source


def problems(chart: Path) -> list[str]:
    """Why the packaged copies of `chart`'s file:// dependencies are not its sources; empty when
    each is present once, at the version Chart.yaml asks, with the source's content."""
    found = []
    for name, version, source in local_dependencies(chart):
        where = f"{chart.name}: {name}"
        source_version = str(
            (yaml.safe_load((source / "Chart.yaml").read_text()) or {}).get("version")
        )
        if source_version != version:
            found.append(f"{where}: Chart.yaml asks {version}, {source.name} is {source_version}")
        archive = chart / "charts" / f"{name}-{version}.tgz"
        others = sorted(p.name for p in (chart / "charts").glob(f"{name}-*.tgz") if p != archive)
        if others:
            found.append(f"{where}: stale archives {', '.join(others)}")
        if not archive.is_file():
            found.append(f"{where}: charts/{archive.name} is missing")
            continue
        packaged, expected = _archive_files(archive), _source_files(source)
        differ = sorted(
            n
            for n in packaged.keys() | expected.keys()
            if n not in packaged or n not in expected or not _same(n, packaged[n], expected[n])
        )
        if differ:
            found.append(f"{where}: charts/{archive.name} differs from the source in {differ}")
    return found


def refresh(chart: Path) -> None:
    """Package `chart`'s file:// dependencies anew into its charts/ (and Chart.lock)."""
    import helm_python

    for name, _version, _source in local_dependencies(chart):
        for old in (chart / "charts").glob(f"{name}-*.tgz"):
            old.unlink()
    helm_python.dependency_update(str(chart), skip_refresh=True)


def dependent_charts(charts_dir: Path = CHARTS_DIR) -> list[Path]:
    """The charts under `charts_dir` that take a dependency from a file:// path."""
    return [
        chart.parent
        for chart in sorted(charts_dir.glob("*/Chart.yaml"))
        if local_dependencies(chart.parent)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report stale copies, change nothing")
    args = parser.parse_args(argv)
    stale = 0
    for chart in dependent_charts():
        found = problems(chart)
        if not found:
            continue
        stale += 1
        if args.check:
            print("\n".join(found), file=sys.stderr)
        else:
            refresh(chart)
            print(f"chart-deps: packaged the library into charts/{chart.name}/charts")
    if args.check and stale:
        print("run `make chart-deps` and commit charts/*/charts and Chart.lock", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
