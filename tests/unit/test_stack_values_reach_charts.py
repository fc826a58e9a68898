"""Every value the stack-file model takes for these keys is one its charts take too (review
sweep33: `storage.region: RegionOne`, a store URL with a path, `catalog.external.name: stac-db`,
`bridge.partitions: [_debug]`, an MQTT CA with a comment line planned clean at config level, then
failed at render with a `VIOLATION [chart-values]` quoting the chart's key instead of the stack
file's; `mqtt.topics` took anything, the MQTT CA any text between the PEM markers).

For each key, a list of candidates, valid and not: each is set in an example stack, planned as
`fedeploy plan` does (fedeploy.offline.engine.plan_stack: the program, fedeploy/values, the
releases' values), and then either the stack file refuses it, naming the key, or every release's
values pass its chart's values.schema.json in Helm itself. Each candidate is also marked with
what it should be, so a rule changed on one side alone fails here: add a key's candidates when
a new stack-file key becomes a chart value."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python
import pytest

from fedeploy.errors import StackConfigError
from fedeploy.offline.engine import plan_stack
from loopback.tls import TestCA
from tests.builders import (
    KUBERNETES_FIXTURE,
    SECURE_PASSWORD,
    SITE_KEY,
    stack_document,
    write_stack_file,
)
from tests.conftest import ROOT

RELEASE = "kubernetes:helm.sh/v3:Release"


@dataclass(frozen=True)
class Key:
    """A stack-file key (a dotted path in `fedeploy:site`), the stack it is set in, and its
    candidates: value -> whether the stack file should take it."""

    path: str
    stack: str | Path
    candidates: list[tuple[Any, bool]]
    # Changes the candidate needs beside it (an external database, a WIS2 block).
    prepare: Callable[[dict[str, Any]], None] = lambda site: None


def _set(site: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = site
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def _external_database(site: dict[str, Any]) -> None:
    catalog = site["services"]["catalog"]
    catalog["database"] = "external"
    catalog["external"] = {
        "host": "db.catalog.example.org",
        "username": "stac",
        "password": SECURE_PASSWORD,
        "ssl_mode": "require",
    }


def _wis2(site: dict[str, Any]) -> None:
    site["services"]["ingestion"]["stream"]["wis2"] = {
        "broker": "mqtts://globalbroker.meteo.fr",
        "topics": ["cache/a/wis2/+/data/core/weather/surface-based-observations/synop"],
        "download_hosts": ["*.meteo.fr"],
    }


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A CA's certificate, a second one, and a private key, as PEM text."""
    folder = tmp_path_factory.mktemp("pem")
    ca, other = TestCA(folder / "one"), TestCA(folder / "two", name="second CA")
    issued = ca.issue("server", ["broker.example.org"])
    return {
        "ca": Path(ca.ca_file).read_text(),
        "other": Path(other.ca_file).read_text(),
        "key": Path(issued.key_file).read_text(),
    }


def _certificates(pem: dict[str, str]) -> list[tuple[Any, bool]]:
    ca, other, key = pem["ca"], pem["other"], pem["key"]
    return [
        (ca, True),
        (ca.rstrip("\n"), True),
        (ca + other, True),
        ("# Corp CA\n" + ca, True),  # a comment line before the block (distro bundles)
        (ca + "# end of bundle\n", True),  # text after it
        ("Certificate:\n    Data: ...\n" + ca, True),  # what `openssl x509 -text` prints
        (ca.replace("\n", "\r\n"), True),
        ("-----BEGIN CERTIFICATE-----\nnot base64 at all!!\n-----END CERTIFICATE-----\n", False),
        ("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", False),
        ("not a certificate", False),
        ("", False),
        (ca + key, False),  # a private key would land in the pods' CA file
        (key, False),
    ]


def _keys(pem: dict[str, str]) -> list[Key]:
    region = [
        ("RegionOne", True),  # OpenStack's default region
        ("GRA", True),  # OVHcloud
        ("gra", True),
        ("waw3-1", True),
        ("us-east-1", True),
        ("default", True),
        ("a", True),
        ("1a", True),
        ("r" * 32, True),
        ("r" * 33, False),
        ("my_region.1", False),  # botocore: InvalidRegionError
        ("eu_west", False),
        ("eu.west", False),
        ("123", False),
        ("-gra", False),
        ("gra-", False),
        ("", False),
        (" gra", False),
    ]
    endpoint = [
        ("https://s3.waw3-1.cloudferro.com", True),
        ("https://s3.waw3-1.cloudferro.com/", True),
        ("https://s3.waw3-1.cloudferro.com/bucketpath", True),  # a store behind a proxy path
        ("https://s3.example.eu:9000/s3/v1/", True),
        ("https://S3.Example.EU", True),
        ("https://10.0.0.5:9000", True),
        ("https://[2001:db8::1]:9000", False),  # the NetworkPolicies admit IPv4 ranges only
        ("https://[2001:db8::1]", False),
        ("https://s3.example.eu:0", False),
        ("https://s3.example.eu:70000", False),
        ("https://s3.example.eu/a%20b", False),
        ("https://s3.example.eu/a b", False),
        ("https://s3.example.eu//x", False),
        ("https://s3.example.eu/?x=1", False),
        ("https://s3.example.eu/x#f", False),
        ("https://s3_x.example.eu", False),
        ("https://10.0.0.256", False),
    ]
    topics = [
        (["fedeploy/+/stations/+/observations"], True),
        (["a/b"], True),
        (["#"], True),
        (["a/#"], True),
        (["+"], True),
        (["/a"], True),
        (["a//b"], True),
        (["$share/consumers/a/+"], True),
        (["a/+/b", "c/#"], True),
        ([], False),
        ([""], False),
        (["a/b c/+"], False),
        (["a,b"], False),
        ([" a"], False),
        (["a\tb"], False),
        (["a/#/b"], False),  # '#' not last
        (["a/b#"], False),  # '#' not a whole level
        (["a/b+"], False),  # '+' not a whole level
        (["a+/b"], False),
        (["x/y", "x/y"], False),  # listed twice
    ]
    wis2_topics = [
        (["cache/a/wis2/+/data/core/weather/surface-based-observations/synop"], True),
        (["origin/a/wis2/#"], True),
        (["cache/a/wis2/de-dwd-gts-to-wis2/#", "origin/a/wis2/+/data/#"], True),
        (["cache/a/wis2/#/x"], False),
        (["cache/a/wis2/x#"], False),
        (["cache/a/wis2/a+b"], False),
        (["cache/a/wis2/a,b"], False),
        (["cache/a/wis2/a b"], False),
        (["origin/a/wis2/#", "origin/a/wis2/#"], False),
        (["foo/a/wis2/x"], False),
    ]
    database = [
        ("postgis", True),
        ("stac-db", True),  # valid in PostgreSQL, quoted
        ("stac_db", True),
        ("_db", True),
        ("2024db", True),
        ("stac.db", True),
        ("d" * 63, True),
        ("d" * 64, False),  # NAMEDATALEN - 1
        ("", False),
        ("stac db", False),
        ("stac/db", False),
        ("db?sslmode=disable", False),
        ("stac%db", False),
        ("-db", False),
        (".db", False),
    ]
    partitions = [
        (["standard-g", "small-g"], True),
        (["_debug", "small-g"], True),  # slurm.conf takes a leading '_'
        ([".small"], True),
        (["-x"], True),
        (["gpu.a100"], True),
        (["p" * 64], True),
        (["p" * 65], False),
        (["DEFAULT"], False),  # slurm.conf's record of defaults, no partition
        (["default"], False),
        (["a b"], False),
        (["a,b"], False),
        ([""], False),
        (["small-g", "small-g"], False),
    ]
    certificates = _certificates(pem)
    return [
        Key("storage.region", "cf-waw", region),
        Key("storage.region", "ovh-gra", region),
        Key("storage.endpoint", "cf-waw", endpoint),
        Key("storage.endpoint", "ewc-bologna", endpoint),
        Key("services.ingestion.stream.mqtt.topics", "cf-waw", topics),
        Key("services.ingestion.stream.wis2.topics", "cf-waw", wis2_topics, _wis2),
        Key("services.ingestion.stream.mqtt.ca_certificate", "cf-waw", certificates),
        Key("services.catalog.external.name", KUBERNETES_FIXTURE, database, _external_database),
        Key(
            "services.catalog.external.ca_certificate",
            KUBERNETES_FIXTURE,
            certificates,
            _external_database,
        ),
        Key("bridge.partitions", "hpc-kajaani", partitions),
    ]


KEY_IDS = [
    "storage.region@cf-waw",
    "storage.region@ovh-gra",
    "storage.endpoint@cf-waw",
    "storage.endpoint@ewc-bologna",
    "mqtt.topics",
    "wis2.topics",
    "mqtt.ca_certificate",
    "external.name",
    "external.ca_certificate",
    "bridge.partitions",
]


@functools.cache
def _chart(chart: str) -> Any:
    return helm_python.Chart.load(str(ROOT / chart))


def _schema_problem(chart: str, values: dict[str, Any]) -> str | None:
    """What Helm says of `values` against the chart's values.schema.json, coalesced with its
    defaults as an install does (None: they pass)."""
    try:
        _chart(chart).validate_schema(values)
    except helm_python.HelmError as error:
        return str(error)
    return None


@pytest.mark.parametrize("index", range(len(KEY_IDS)), ids=KEY_IDS)
def test_a_value_the_stack_file_takes_passes_its_charts_schema(
    index: int, pem: dict[str, str], tmp_path: Path
) -> None:
    key = _keys(pem)[index]
    document = stack_document(key.stack)
    name = key.stack.name if isinstance(key.stack, Path) else f"Pulumi.{key.stack}.yaml"
    key.prepare(document["config"][SITE_KEY])
    failures = []
    for number, (value, valid) in enumerate(key.candidates):
        changed = copy.deepcopy(document)
        _set(changed["config"][SITE_KEY], key.path, value)
        folder = tmp_path / str(number)
        folder.mkdir()
        stack_file = write_stack_file(folder / name, changed)
        shown = repr(value)[:70]
        try:
            plan = plan_stack(stack_file)
        except StackConfigError as error:
            if valid:
                failures.append(f"{shown}: refused by the stack file, should be taken: {error}")
            elif f"site.{key.path}" not in str(error):
                failures.append(f"{shown}: refused, but not at site.{key.path}: {error}")
            continue
        if not valid:
            failures.append(f"{shown}: taken by the stack file, should be refused")
        for release in plan.by_type(RELEASE):
            problem = _schema_problem(release.inputs["chart"], release.inputs["values"])
            if problem:
                failures.append(
                    f"{shown}: taken by the stack file ({name}), refused by "
                    f"{release.inputs['chart']}: {problem.strip()}"
                )
    assert not failures, f"site.{key.path}:\n" + "\n".join(failures)
