"""The cross-site checks of the stack files (fedeploy.config.loader: catalog URLs and hosts,
physical bucket names, address ranges, hub membership, reference cycles) index the federation
once: checking each of N sites looks up what it must be unique against, so the work grows
linearly with N. Counted in operations (how often a site's values are read), not in time."""

from __future__ import annotations

import collections
import sys
from pathlib import Path

import pytest

from fedeploy.config import loader

ROOT = Path(__file__).resolve().parents[2]
SITES = 300
# What a cross-site check reads from one site; each is read a few times per site at most.
COUNTED = (
    "_catalog_url",
    "_browser_host",
    "_catalog_host",
    "physical_buckets",
    "address_ranges",
    "references",
)


@pytest.fixture(scope="module")
def federation(tmp_path_factory) -> Path:
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks.synthetic import make_federation
    finally:
        sys.path.remove(str(ROOT))
    stacks = make_federation(tmp_path_factory.mktemp("federation"), SITES)
    loader.sibling_sites(stacks)  # validate every file once, outside the count
    return stacks


def test_checking_every_site_reads_each_site_a_constant_number_of_times(federation, monkeypatch):
    calls: collections.Counter[str] = collections.Counter()
    for name in COUNTED:
        original = getattr(loader, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(loader, name, counted)
    if hasattr(loader, "_index"):
        loader._index.cache_clear()
    sites = loader.sibling_sites(federation)
    assert len(sites) == SITES + 1
    for stack, sibling in sites.items():
        assert sibling.site is not None
        assert loader.federation_issues(sibling.site, federation, stack) == []
        loader.site_notes(sibling.site, federation, stack)
    # Quadratic checks read every other site for each site: about 90,000 reads each here.
    assert calls["references"] > 0
    for name in COUNTED:
        assert calls[name] <= 4 * (SITES + 1), (name, calls[name])


def test_loading_the_federation_lists_the_stacks_folder_once(federation, monkeypatch):
    # The plan report: _files_signature listed all 301 files for each file (602 listings).
    from fedeploy.offline.federation import load_federation

    listings = collections.Counter[str]()
    original = Path.glob

    def glob(self: Path, pattern: str, *args, **kwargs):
        if pattern == "Pulumi.*.yaml":
            listings[str(self)] += 1
        return original(self, pattern, *args, **kwargs)

    monkeypatch.setattr(Path, "glob", glob)
    loader._index.cache_clear()
    loader._read_sites.cache_clear()
    plan = load_federation(federation)
    assert not plan.errors
    assert len(plan.sites) == SITES + 1
    assert listings[str(federation)] <= 2, listings
