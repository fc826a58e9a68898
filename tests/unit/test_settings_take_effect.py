"""Stack-file settings that plan clean but do nothing, or break later (review sweep33 F14, F12,
F5, F16, F15): each is refused at its own key path, saying why, and what works still plans.

- cron schedules that never fire under Kubernetes' CronJob reading (robfig/cron): 30 February,
  31 April (a day of month no listed month has, the day of week a star); 29 February fires;
- services.inference.version naming a UTC time that never was;
- services.namespace that Kubernetes keeps (default, kube-*) or that is the controller's;
- exposure.tls.cert_manager_issuer_kind beside tls.secret;
- services.catalog.backup.object_lock on kubernetes and hpc sites;
- URL ports outside 1-65535 (catalog.url, browser url, source urls, the WIS2 broker);
- IPv6 addresses in mqtt.host and catalog.external.host (their NetworkPolicies admit IPv4);
- Polytope request errors at site.<...>.polytope.N.requests.M.<key>;
- the advisory on a Keycloak issuer written with a trailing slash.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from fedeploy.config.loader import validate_site
from fedeploy.config.services import ExternalDatabase, Wis2, cron_problem
from fedeploy.errors import StackConfigError
from fedeploy.plan.run import run_plan
from tests.builders import SECURE_PASSWORD, edit_site, example_site, example_stacks


def _set(site: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    site = copy.deepcopy(site)
    node = site
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if isinstance(node, list):
        node[int(parts[-1])] = value
    else:
        node[parts[-1]] = value
    return site


def _issues(stack: str, changes: dict[str, Any]) -> dict[str, str]:
    """{key path: message} of the problems of the example `stack` with `changes`; {} if valid."""
    site = example_site(stack)
    for path, value in changes.items():
        site = _set(site, path, value)
    try:
        validate_site(site, stack_file=f"Pulumi.{stack}.yaml", stack=stack)
    except StackConfigError as err:
        return {issue.path: issue.message for issue in err.issues}
    return {}


def _refused(stack: str, changes: dict[str, Any], path: str, *words: str) -> str:
    issues = _issues(stack, changes)
    assert path in issues, issues
    for word in words:
        assert word in issues[path], issues[path]
    return issues[path]


# ---- F14 (a): cron schedules that never fire --------------------------------------------------

SCHEDULES = [
    ("eu-hub", "services.harvest_schedule"),
    ("aws-frankfurt", "services.ingestion.sentinel.schedule"),
    ("cf-waw", "services.catalog.backup.drill.schedule"),
]


@pytest.mark.parametrize(("stack", "key"), SCHEDULES)
@pytest.mark.parametrize(
    ("schedule", "words"),
    [
        ("0 0 30 2 *", ["never fires", "February has no day 30"]),
        ("0 0 31 4 *", ["never fires", "April has no day 31"]),
        ("0 0 31 4,6,9,11 *", ["none of its months (April, June, September, November)"]),
        ("0 0 30,31 FEB *", ["(February) has any of the days 30, 31"]),
        ("0 0 31 4 ?", ["April has no day 31"]),
        ("0 0 30/5 2 *", ["February has no day 30"]),  # 30/5 is 30-31/5: the 30th
    ],
)
def test_a_schedule_that_never_fires_is_refused_at_its_key(
    stack: str, key: str, schedule: str, words: list[str]
) -> None:
    _refused(stack, {key: schedule}, f"site.{key}", repr(schedule), *words)


@pytest.mark.parametrize(("stack", "key"), SCHEDULES)
@pytest.mark.parametrize(
    "schedule",
    [
        "0 0 29 2 *",  # leap years
        "0 0 30 2 1",  # both restricted: any Monday of February fires
        "0 0 31 4 */2",  # a stepped weekday is no star: either matching fires
        "0 0 31 4,5 *",  # 31 May
        "0 0 30,31 2,4 *",  # 30 April
        "0 0 31 */2 *",  # January, March, ...
        "17 3 * * 0",
    ],
)
def test_a_schedule_that_fires_plans(stack: str, key: str, schedule: str) -> None:
    assert not _issues(stack, {key: schedule})


def test_the_day_of_week_is_0_to_6_as_kubernetes_reads_it() -> None:
    # robfig/cron's standard parser (the API server's CronJob validation) refuses 7.
    assert "outside 0 to 6" in (cron_problem("0 0 * * 7") or "")
    assert "outside 0 to 6" in (cron_problem("0 0 * * 5-7") or "")
    assert cron_problem("0 0 * * 0-6") is None
    assert cron_problem("0 0 * * SUN,sat") is None


# ---- F14 (b): a version naming no real UTC time -----------------------------------------------


@pytest.mark.parametrize(
    ("version", "why"),
    [
        ("20251399T999999Z-deadbeef", "month must be in 1..12"),
        ("20250229T120000Z-deadbeef", "day is out of range for month"),
        ("20250431T120000Z-deadbeef", "day is out of range for month"),
        ("20250101T240000Z-deadbeef", "hour must be in 0..23"),
        ("20250101T006000Z-deadbeef", "minute must be in 0..59"),
        ("20250101T000060Z-deadbeef", "second must be in 0..59"),
    ],
)
def test_a_version_of_a_time_that_never_was_is_refused(version: str, why: str) -> None:
    _refused(
        "hpc-kajaani",
        {"services.inference.version": version},
        "site.services.inference.version",
        version,
        "is no UTC time",
        why,
    )


@pytest.mark.parametrize(
    "version", ["latest", "20240229T235959Z-deadbeef", "20261207T000000Z-0a1b2c3d"]
)
def test_a_real_version_plans(version: str) -> None:
    assert not _issues("hpc-kajaani", {"services.inference.version": version})


# ---- F14 (c): the services' namespace ------------------------------------------------------------


@pytest.mark.parametrize("stack", ["cf-waw", "eu-hub"])
@pytest.mark.parametrize("namespace", ["kube-system", "kube-public", "kube-node-lease", "default"])
def test_a_namespace_kubernetes_keeps_is_refused(stack: str, namespace: str) -> None:
    _refused(
        stack,
        {"services.namespace": namespace},
        "site.services.namespace",
        "is not a namespace for the services",
        "restricted Pod",
    )


@pytest.mark.parametrize("stack", ["cf-waw", "eu-hub", "ovh-gra"])
def test_the_controllers_namespace_is_refused(stack: str) -> None:
    controller = example_site(stack)["services"]["catalog"]["exposure"]["controller_namespace"]
    _refused(
        stack,
        {"services.namespace": controller},
        "site.services.namespace",
        "is also services.catalog.exposure.controller_namespace",
        "auth proxy",
    )


def test_a_namespace_of_their_own_plans() -> None:
    assert not _issues("cf-waw", {"services.namespace": "eofed-services"})


# ---- F14 (d): an issuer kind beside an existing Secret ---------------------------------------------


def test_an_issuer_kind_with_a_secret_is_refused_at_the_kind() -> None:
    exposure = "services.catalog.exposure.tls"
    assert example_site("hpc-kajaani")["services"]["catalog"]["exposure"]["tls"]["secret"]
    _refused(
        "hpc-kajaani",
        {f"{exposure}.cert_manager_issuer_kind": "Issuer"},
        f"site.{exposure}.cert_manager_issuer_kind",
        "existing Secret 'catalog-kajaani-tls'",
        "remove cert_manager_issuer_kind",
    )
    # With cert-manager, the kind is its issuer's.
    assert not _issues("cf-waw", {f"{exposure}.cert_manager_issuer_kind": "Issuer"})


# ---- F12: object lock where the store is the site's own -------------------------------------------


@pytest.mark.parametrize("stack", ["cf-waw", "hpc-kajaani"])
@pytest.mark.parametrize("mode", ["governance", "compliance"])
def test_an_object_lock_on_a_kubernetes_or_hpc_store_is_refused(stack: str, mode: str) -> None:
    kind = example_site(stack)["kind"]
    message = _refused(
        stack,
        {"services.catalog.backup.object_lock": mode},
        "site.services.catalog.backup.object_lock",
        f"given {mode!r}",
        f"on a {kind} site",
        "not fedeploy's to lock",
        "versioning only",
        f"{mode.upper()} retention of 16 days",
        "remove object_lock",
    )
    assert "storage.buckets.raw" in message


@pytest.mark.parametrize("stack", ["cf-waw", "hpc-kajaani"])
def test_object_lock_off_plans_there(stack: str) -> None:
    assert not _issues(stack, {"services.catalog.backup.object_lock": "off"})


# ---- F5: URL ports ------------------------------------------------------------------------------


@pytest.mark.parametrize("port", ["0", "00", "65536", "99999"])
@pytest.mark.parametrize(
    ("stack", "key", "url"),
    [
        ("cf-waw", "services.catalog.url", "https://catalog.waw.eofed.example.eu:{port}"),
        (
            "hpc-kajaani",
            "services.ingestion.sentinel.polytope.0.url",
            "https://polytope.example.eu:{port}",
        ),
        (
            "aws-frankfurt",
            "services.ingestion.sentinel.sources.0.url",
            "https://stac.example.eu:{port}/v1",
        ),
    ],
)
def test_a_url_port_outside_1_to_65535_is_refused_at_its_key(
    port: str, stack: str, key: str, url: str
) -> None:
    _refused(stack, {key: url.format(port=port)}, f"site.{key}", f"the port {port!r}", "1 to 65535")


def test_a_url_port_within_range_plans() -> None:
    assert not _issues(
        "cf-waw", {"services.catalog.url": "https://catalog.waw.eofed.example.eu:8443"}
    )


@pytest.mark.parametrize("port", ["0", "99999"])
def test_the_wis2_broker_port_is_1_to_65535_at_its_key(port: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Wis2(
            broker=f"mqtts://globalbroker.example.org:{port}",
            topics=["cache/a/wis2/+/data/core/weather/#"],
            download_hosts=["example.org"],
        )
    [error] = caught.value.errors()
    assert error["loc"] == ("broker",) and f"the port {port!r}" in error["msg"]


def test_a_url_with_a_password_is_not_echoed_by_the_port_check() -> None:
    issues = _issues("cf-waw", {"services.catalog.url": "https://u:hunter2@catalog.example.eu:0"})
    assert issues and not any("hunter2" in m for m in issues.values()), issues


# ---- F16: IPv6 addresses where the NetworkPolicies admit IPv4 ------------------------------------


def test_an_ipv6_broker_is_refused_saying_why() -> None:
    key = "services.ingestion.stream.mqtt.host"
    for host in ("fd00::1", "[fd00::1]", "2001:db8::7"):
        _refused(
            "cf-waw",
            {key: host},
            f"site.{key}",
            "IPv6 addresses are not supported here",
            "over IPv4 only",
        )
    assert not _issues("cf-waw", {key: "10.20.0.5"})


def test_an_ipv6_external_database_is_refused_saying_why() -> None:
    given = {"username": "stac", "password": SECURE_PASSWORD, "ssl_mode": "require"}
    with pytest.raises(ValidationError) as caught:
        ExternalDatabase.model_validate({**given, "host": "fd00::5"})
    [error] = caught.value.errors()
    assert error["loc"] == ("host",)
    assert "IPv6 addresses are not supported here" in error["msg"]
    assert "NetworkPolicies admit the external database over IPv4 only" in error["msg"]
    assert ExternalDatabase.model_validate({**given, "host": "10.20.0.6"}).host == "10.20.0.6"


# ---- F15: Polytope request errors at their key path -----------------------------------------------


def test_a_polytope_request_error_names_its_key_path() -> None:
    base = "services.ingestion.sentinel.polytope.0"
    site = example_site("hpc-kajaani")
    assert site["services"]["ingestion"]["sentinel"]["polytope"][0]["requests"][0]["param"]
    issues = _issues("hpc-kajaani", {f"{base}.requests.0.param": "2t,tp"})
    assert list(issues) == [f"site.{base}.requests.0.param"], issues
    assert issues[f"site.{base}.requests.0.param"].startswith("'2t,tp' holds characters")
    issues = _issues("hpc-kajaani", {f"{base}.requests.0.levtyp": "sfc"})
    assert "did you mean 'levtype'" in issues[f"site.{base}.requests.0.levtyp"], issues
    issues = _issues("hpc-kajaani", {f"{base}.requests.0.date": "-1"})
    assert "is not an absolute date" in issues[f"site.{base}.requests.0.date"], issues


# ---- the advisory on a Keycloak issuer with a trailing slash ---------------------------------------

ISSUER = "https://login.eofed.example.eu/realms/eofed"


def _issuer_findings(tmp_path: Path, issuer: str) -> list[Any]:
    stacks = example_stacks(tmp_path / "stacks", ["cf-waw"])
    edit_site(
        stacks / "Pulumi.cf-waw.yaml",
        lambda site: site["services"]["catalog"]["exposure"]["oidc"].update(issuer=issuer),
    )
    report = run_plan(stacks, ["cf-waw"], jobs=1, cache=None)
    assert not report.errors, report.errors
    _, findings = report.federation.checked["cf-waw"]
    return [f for f in findings if f.rule == "exposure-issuer-slash"]


@pytest.mark.parametrize(
    "issuer",
    [
        ISSUER,  # Keycloak
        "https://eofed.okta.com/oauth2/default",  # Okta (review rw33b F2)
        "https://accounts.google.com",
        "https://gitlab.example.eu",
    ],
)
def test_an_issuer_with_a_stray_trailing_slash_plans_with_an_advisory(tmp_path, issuer) -> None:
    """fedeploy used to drop the slash, so these worked; compared byte for byte, they do not."""
    [found] = _issuer_findings(tmp_path, issuer + "/")
    assert found.enforcement == "advisory"
    assert f"iss {issuer!r}" in found.message
    assert "Copy `iss` exactly" in found.message


@pytest.mark.parametrize(
    "issuer",
    ["https://eofed.eu.auth0.com", "https://sts.windows.net/0b7a3c1e-1f7d-4d9c-9f00-5d6e1c2a9b01"],
)
def test_a_provider_whose_iss_ends_in_a_slash_written_without_it_gets_an_advisory(
    tmp_path, issuer
) -> None:
    [found] = _issuer_findings(tmp_path, issuer)
    assert "has no trailing slash, but this provider's tokens end in one" in found.message


@pytest.mark.parametrize(
    "issuer",
    [
        ISSUER,
        "https://eofed.eu.auth0.com/",
        "https://sts.windows.net/0b7a3c1e-1f7d-4d9c-9f00-5d6e1c2a9b01/",
        "https://auth.eofed.example.eu/application/o/eofed/",  # Authentik
        "https://eofed.b2clogin.com/0b7a3c1e-1f7d-4d9c-9f00-5d6e1c2a9b01/v2.0/",  # Azure B2C
        "https://login.microsoftonline.com/0b7a3c1e-1f7d-4d9c-9f00-5d6e1c2a9b01/v2.0",
    ],
)
def test_an_issuer_as_its_tokens_name_it_gets_no_advisory(tmp_path, issuer: str) -> None:
    assert not _issuer_findings(tmp_path, issuer)


def test_the_example_stacks_need_no_change() -> None:
    stacks = Path(__file__).resolve().parents[2] / "stacks"
    for path in sorted(stacks.glob("Pulumi.*.yaml")):
        stack = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
        assert not _issues(stack, {}), stack
