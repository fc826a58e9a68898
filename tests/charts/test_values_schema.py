"""values.schema.json rejects wrong values, naming the key; values.yaml documents every value."""

from __future__ import annotations

import json
import re

import pytest

from fedeploy.charts import ChartValuesError, render_chart

CHARTS = ("catalog", "ingestion", "inference")
_SOURCE = {
    "name": "s2",
    "collections": ["sentinel-2-l2a"],
    "bbox": [5, 45, 11, 48],
    "datetime": "P1D",
}

# (chart, base site, fragment merged into the site's values, key path the error must name)
BAD_VALUES = [
    ("catalog", "kubernetes", {"site": {"name": "Site_A"}}, "/site/name"),
    ("catalog", "kubernetes", {"site": {"name": "a-site-name-longer-than-24"}}, "/site/name"),
    (
        "catalog",
        "hub",
        {"federation": {"sites": [{"name": "1st", "url": "https://a.org"}]}},
        "/federation/sites/0/name",
    ),
    ("catalog", "kubernetes", {"site": {"kind": "gcp"}}, "/site/kind"),
    ("catalog", "kubernetes", {"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ("catalog", "kubernetes", {"image": {"tag": "7.2.0 latest"}}, "/image/tag"),
    ("catalog", "kubernetes", {"replicaCount": 0}, "/replicaCount"),
    ("catalog", "kubernetes", {"service": {"port": 70000}}, "/service/port"),
    ("catalog", "kubernetes", {"database": {"mode": "rds"}}, "/database/mode"),
    ("catalog", "kubernetes", {"database": {"mode": "external"}}, "/database/host"),
    (
        "catalog",
        "kubernetes",
        {"database": {"mode": "external", "host": "db.example.org", "existingSecret": ""}},
        "/database/existingSecret",
    ),
    ("catalog", "kubernetes", {"database": {"sslMode": "on"}}, "/database/sslMode"),
    ("catalog", "kubernetes", {"database": {"password": "hunter2"}}, "password"),
    ("catalog", "kubernetes", {"database": {"name": "pg stac"}}, "/database/name"),
    ("catalog", "kubernetes", {"migration": {"pgstacVersion": "0.10"}}, "/migration/pgstacVersion"),
    (
        "catalog",
        "kubernetes",
        {"federation": {"enabled": True, "sites": [{"name": "a", "url": "https://a.example.org"}]}},
        "/site/kind",
    ),
    ("catalog", "hub", {"federation": {"sites": []}}, "/federation/sites"),
    ("catalog", "hub", {"federation": {"schedule": "every hour"}}, "/federation/schedule"),
    (
        "catalog",
        "hub",
        {"federation": {"sites": [{"name": "a", "url": "ftp://a.example.org"}]}},
        "/federation/sites/0/url",
    ),
    (
        "catalog",
        "hub",
        {"federation": {"harvester": {"tag": "bad tag"}}},
        "/federation/harvester/tag",
    ),
    (
        "catalog",
        "kubernetes",
        {"securityContext": {"readOnlyRootFilesystem": False}},
        "/securityContext/readOnlyRootFilesystem",
    ),
    (
        "catalog",
        "kubernetes",
        {"securityContext": {"allowPrivilegeEscalation": True}},
        "/securityContext/allowPrivilegeEscalation",
    ),
    (
        "catalog",
        "kubernetes",
        {"securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}},
        "/securityContext/capabilities/add",
    ),
    (
        "catalog",
        "kubernetes",
        {"podSecurityContext": {"runAsUser": 0}},
        "/podSecurityContext/runAsUser",
    ),
    (
        "catalog",
        "kubernetes",
        {"podSecurityContext": {"runAsNonRoot": False}},
        "/podSecurityContext/runAsNonRoot",
    ),
    (
        "catalog",
        "kubernetes",
        {"resources": {"limits": {"memory": "lots"}}},
        "/resources/limits/memory",
    ),
    ("catalog", "kubernetes", {"resources": {"requests": None}}, "requests"),
    (
        "catalog",
        "kubernetes",
        {"networkPolicy": {"allowedNamespaces": ["Bad NS"]}},
        "/networkPolicy/allowedNamespaces/0",
    ),
    (
        "catalog",
        "kubernetes",
        {"networkPolicy": {"databaseCIDRs": ["10.0.0.0"]}},
        "/networkPolicy/databaseCIDRs/0",
    ),
    ("catalog", "kubernetes", {"replicas": 3}, "replicas"),
    ("ingestion", "kubernetes", {"storage": {"endpoint": "s3.example.org"}}, "/storage/endpoint"),
    ("ingestion", "kubernetes", {"storage": {"accessKey": "AKIAEXAMPLE"}}, "accessKey"),
    ("ingestion", "kubernetes", {"storage": {"existingSecret": ""}}, "/storage/existingSecret"),
    ("ingestion", "kubernetes", {"storage": {"bucket": ""}}, "/storage/bucket"),
    ("ingestion", "kubernetes", {"storage": {"bucket": "Bad_Bucket"}}, "/storage/bucket"),
    ("ingestion", "kubernetes", {"catalog": {"url": "catalog:8080"}}, "/catalog/url"),
    ("ingestion", "kubernetes", {"sentinel": {"sources": []}}, "/sentinel/sources"),
    ("ingestion", "kubernetes", {"sentinel": {"schedule": "0 0 * *"}}, "/sentinel/schedule"),
    ("ingestion", "kubernetes", {"sentinel": {"parallelism": 0}}, "/sentinel/parallelism"),
    (
        "ingestion",
        "kubernetes",
        {"sentinel": {"sources": [{**_SOURCE, "bbox": [5, 45, 11]}]}},
        "/sentinel/sources/0/bbox",
    ),
    (
        "ingestion",
        "kubernetes",
        {"sentinel": {"sources": [{**_SOURCE, "bbox": [5, 95, 11, 48]}]}},
        "/sentinel/sources/0/bbox/1",
    ),
    (
        "ingestion",
        "kubernetes",
        {"sentinel": {"sources": [{**_SOURCE, "maxCloudCover": 120}]}},
        "/sentinel/sources/0/maxCloudCover",
    ),
    (
        "ingestion",
        "kubernetes",
        {"sentinel": {"sources": [{**_SOURCE, "datetime": "yesterday"}]}},
        "/sentinel/sources/0/datetime",
    ),
    (
        "ingestion",
        "kubernetes",
        {"sentinel": {"sources": [{**_SOURCE, "collections": []}]}},
        "/sentinel/sources/0/collections",
    ),
    (
        "ingestion",
        "kubernetes",
        {"sentinel": {"sources": [{**_SOURCE, "password": "x"}]}},
        "password",
    ),
    (
        "ingestion",
        "kubernetes",
        {"sentinel": {"sources": [{k: v for k, v in _SOURCE.items() if k != "assets"}]}},
        "assets",
    ),
    (
        "ingestion",
        "kubernetes",
        {"sentinel": {"sources": [{**_SOURCE, "name": "S2"}]}},
        "/sentinel/sources/0/name",
    ),
    ("ingestion", "kubernetes", {"stream": {"mqtt": {"host": ""}}}, "/stream/mqtt/host"),
    ("ingestion", "kubernetes", {"stream": {"mqtt": {"tls": "yes"}}}, "/stream/mqtt/tls"),
    ("ingestion", "kubernetes", {"stream": {"mqtt": {"topics": ["a,b"]}}}, "/stream/mqtt/topics/0"),
    ("ingestion", "kubernetes", {"stream": {"mqtt": {"password": "x"}}}, "password"),
    ("ingestion", "kubernetes", {"stream": {"replicas": 0}}, "/stream/replicas"),
    ("ingestion", "kubernetes", {"stream": {"windowSeconds": "600"}}, "/stream/windowSeconds"),
    ("inference", "kubernetes", {"model": {"name": ""}}, "/model/name"),
    ("inference", "kubernetes", {"model": {"version": "v 1"}}, "/model/version"),
    ("inference", "kubernetes", {"model": {"version": "1.2.0"}}, "/model/version"),
    ("inference", "kubernetes", {"model": {"name": "Now_Cast"}}, "/model/name"),
    ("inference", "kubernetes", {"gpu": {"enabled": True, "count": 0}}, "/gpu/count"),
    ("inference", "kubernetes", {"resources": {"limits": {"nvidia.com/gpu": 1}}}, "nvidia.com/gpu"),
    ("inference", "kubernetes", {"bridge": {"enabled": True}}, "/bridge/endpoint"),
    (
        "inference",
        "kubernetes",
        {"bridge": {"enabled": True, "endpoint": "https://bridge.example.org"}},
        "/bridge/existingSecret",
    ),
    ("inference", "kubernetes", {"bridge": {"token": "x"}}, "token"),
    (
        "inference",
        "kubernetes",
        {"autoscaling": {"targetCPUUtilizationPercentage": 150}},
        "/autoscaling/targetCPUUtilizationPercentage",
    ),
    ("inference", "kubernetes", {"storage": {"existingSecret": ""}}, "/storage/existingSecret"),
    ("inference", "aws", {"storage": {"region": ""}}, "/storage/region"),
]


@pytest.mark.parametrize(
    ("chart", "site", "fragment", "key"),
    BAD_VALUES,
    ids=[f"{chart}:{key}" for chart, _site, _fragment, key in BAD_VALUES],
)
def test_schema_rejects_bad_values_naming_the_key(
    charts_dir, site_values, merge, chart, site, fragment, key
):
    values = merge(site_values(site, chart), fragment)
    with pytest.raises(ChartValuesError) as raised:
        render_chart(charts_dir / chart, values, chart, "fedeploy")
    assert key in str(raised.value)


@pytest.mark.parametrize("chart", CHARTS)
def test_schema_is_a_valid_draft_7_schema_that_closes_every_object(charts_dir, chart):
    import jsonschema

    schema = json.loads((charts_dir / chart / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["additionalProperties"] is False


def _documented_keys(text):
    """Yield (line number, key path) for each key with no `##` line above it or above an ancestor.

    A key needs its own `##` line unless it sits inside a value that has one (the keys of a
    documented `resources` block, say); sections (`site:`, `image:`) document each child instead.
    """
    stack: list[tuple[int, str, bool]] = []  # (indent, key, documented)
    previous = ""
    for number, line in enumerate(text.splitlines(), start=1):
        match = re.match(r"^(\s*)([A-Za-z0-9_.\-/]+):", line)
        if match is None or line.lstrip().startswith("#"):
            if line.strip():
                previous = line
            continue
        indent, key = len(match[1]), match[2]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        documented = previous.strip().startswith("## ")
        if not documented and not any(d for _i, _k, d in stack):
            yield number, ".".join([k for _i, k, _d in stack] + [key]), line.rstrip().endswith(":")
        stack.append((indent, key, documented))
        previous = line


@pytest.mark.parametrize("chart", CHARTS)
def test_every_value_is_documented_in_values_yaml(charts_dir, chart):
    undocumented = [
        f"line {number}: {path}"
        for number, path, is_section in _documented_keys(
            (charts_dir / chart / "values.yaml").read_text()
        )
        if not is_section
    ]
    assert undocumented == []


def test_the_documentation_check_finds_an_undocumented_value():
    text = "site:\n  ## The name.\n  name: x\n  kind: y\n## A block.\nresources:\n  cpu: 1\n"
    found = [(path, section) for _n, path, section in _documented_keys(text)]
    assert found == [("site", True), ("site.kind", False)]
