"""Polytope and EODAG sources from the stack file to the service: declared under
`services.ingestion.sentinel` (`polytope` with `polytope_credentials`, `eodag` with
`eodag_image` and `eodag_credentials`), the chart's values and CronJob (env, Secret files,
image), the service's settings, the plan's lines, and the refusals at each step."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from fedeploy.charts import ChartValuesError, pod_template, render_chart
from fedeploy.config.services import PolytopeRequests
from fedeploy.errors import StackConfigError
from fedeploy.offline.engine import plan_stack
from fedeploy.plan.formats import sources
from fedeploy.values.services import image_values
from tests.builders import example_site
from tests.charts.test_agency_sources import spec, values_of
from tests.conftest import STACKS

REQUEST = {
    "class": "d1",
    "dataset": "climate-dt",
    "activity": "ScenarioMIP",
    "experiment": "SSP3-7.0",
    "model": "IFS-NEMO",
    "expver": "0001",
    "param": ["2t", "msl"],
    "date": "20260601",
    "time": "0000",
}
POLYTOPE = {"name": "destine-dt", "requests": [REQUEST], "bbox": [5, 45, 11, 48]}
POLYTOPE_KEY = {"key": {"pending": True}}
EODAG = {
    "name": "esa-s2",
    "provider": "cop_dataspace",
    "collections": ["S2_MSI_L2A"],
    "assets": ["B04"],
    "bbox": [10, 45, 13, 48],
}
EODAG_IMAGE = "registry.example.org/fedeploy/ingestion-eodag:0.1.0"
LOGIN = {"username": {"pending": True}, "password": {"pending": True}}


def _cronjob(charts_dir, values: dict[str, Any]) -> dict[str, Any]:
    manifests = render_chart(charts_dir / "ingestion", values, "ingestion", "fedeploy")
    return next(m for m in manifests if m["kind"] == "CronJob")


def test_polytope_and_eodag_sources_reach_the_services_settings(charts_dir) -> None:
    from fedeploy_ingestion.settings import IngestSettings

    declared = spec(
        polytope=[POLYTOPE],
        polytope_credentials=POLYTOPE_KEY,
        eodag=[EODAG],
        eodag_credentials=LOGIN,
        eodag_image=EODAG_IMAGE,
    )
    values = values_of(
        declared, polytope_secret="polytope-credentials", eodag_secret="eodag-credentials"
    )
    cronjob = _cronjob(charts_dir, values)
    pod = pod_template(cronjob)["spec"]
    [container] = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    settings = IngestSettings(
        polytope_sources=json.loads(env["INGEST_POLYTOPE_SOURCES"]),
        eodag_sources=json.loads(env["INGEST_EODAG_SOURCES"]),
    )
    [polytope], [eodag] = settings.polytope_sources, settings.eodag_sources
    assert polytope.url == "https://polytope.lumi.apps.dte.destination-earth.eu"
    assert polytope.collection == "destination-earth"
    assert polytope.requests == [REQUEST]
    assert polytope.bbox == (5, 45, 11, 48)
    assert (eodag.provider, eodag.collections, eodag.assets) == (
        "cop_dataspace",
        ["S2_MSI_L2A"],
        ["B04"],
    )
    # The CronJob runs the image with EODAG, not the default one.
    assert container["image"] == EODAG_IMAGE
    # The key and the login are files in the settings directory, never variables.
    assert env["INGEST_SETTINGS_DIR"] == "/var/run/secrets/fedeploy"
    assert not any("KEY" in name or "PASSWORD" in name for name in env)
    volume = next(v for v in pod["volumes"] if v["name"] == "credentials")
    projected = [
        (s["secret"]["name"], s["secret"].get("optional", False), s["secret"]["items"])
        for s in volume["projected"]["sources"]
    ]
    assert projected == [
        ("polytope-credentials", False, [{"key": "key", "path": "ingest_polytope_key"}]),
        ("polytope-credentials", True, [{"key": "email", "path": "ingest_polytope_email"}]),
        (
            "eodag-credentials",
            False,
            [
                {"key": "username", "path": "ingest_eodag_username"},
                {"key": "password", "path": "ingest_eodag_password"},
            ],
        ),
    ]


def test_without_eodag_the_cronjob_runs_the_default_image(charts_dir) -> None:
    values = values_of(
        spec(polytope=[POLYTOPE], polytope_credentials=POLYTOPE_KEY),
        polytope_secret="polytope-credentials",
    )
    assert not {"eodagSources", "eodagImage", "eodagCredentialsSecret"} & set(values["sentinel"])
    [container] = pod_template(_cronjob(charts_dir, values))["spec"]["containers"]
    assert container["image"].startswith("ghcr.io/fedeploy/ingestion:")


@pytest.mark.parametrize(
    ("sentinel", "problem"),
    [
        ({"polytope": [POLYTOPE]}, "polytope_credentials"),
        (
            {
                "polytope": [{**POLYTOPE, "requests": [{**REQUEST, "date": "-1"}]}],
                "polytope_credentials": POLYTOPE_KEY,
            },
            r"polytope\.0\.requests\.0\.date\n  -1 is not an absolute date",
        ),
        (
            {
                "polytope": [
                    {**POLYTOPE, "requests": [{k: v for k, v in REQUEST.items() if k != "param"}]}
                ],  # fmt: skip
                "polytope_credentials": POLYTOPE_KEY,
            },
            "names no 'param'",
        ),
        ({"eodag": [EODAG]}, "the default image ghcr.io/fedeploy/ingestion does not carry EODAG"),
        (
            {
                "eodag_image": EODAG_IMAGE,
                "ecmwf": [{"name": "ifs", "steps": [0], "params": ["2t"]}],
            },
            "no `eodag` source",
        ),  # fmt: skip
        (
            {"eodag": [{**EODAG, "datetime": "yesterday"}], "eodag_image": EODAG_IMAGE},
            "is not a time window",
        ),
        ({"eodag": [{**EODAG, "provider": "Bad-Name"}], "eodag_image": EODAG_IMAGE}, "provider"),
    ],
)
def test_a_bad_declaration_is_refused_naming_what(sentinel: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        spec(**sentinel)


def test_the_stack_file_error_names_the_file_and_the_key_path(tmp_path) -> None:
    stacks = tmp_path / "stacks"
    shutil.copytree(STACKS, stacks)
    site = example_site("aws-frankfurt")
    site["services"]["ingestion"]["sentinel"]["eodag"] = [EODAG]
    with pytest.raises(StackConfigError) as caught:
        plan_stack(stacks / "Pulumi.aws-frankfurt.yaml", config_override={"fedeploy:site": site})
    error = caught.value
    assert error.stack_file.endswith("Pulumi.aws-frankfurt.yaml")
    [issue] = [i for i in error.issues if i.path == "site.services.ingestion.sentinel"]
    assert "eodag_image" in str(issue) and "fedeploy-ingestion[eodag]" in str(issue)


def test_the_charts_schema_and_template_refuse_a_cronjob_that_cannot_run(charts_dir) -> None:
    values = values_of(spec(polytope=[POLYTOPE], polytope_credentials=POLYTOPE_KEY))
    with pytest.raises(ChartValuesError, match="polytopeCredentialsSecret"):
        render_chart(charts_dir / "ingestion", values, "ingestion", "fedeploy")
    values = values_of(spec(eodag=[EODAG], eodag_image=EODAG_IMAGE))
    del values["sentinel"]["eodagImage"]
    with pytest.raises(ChartValuesError, match="eodagImage"):
        render_chart(charts_dir / "ingestion", values, "ingestion", "fedeploy")


def test_the_plan_names_each_source_and_what_it_needs() -> None:
    values = values_of(
        spec(
            polytope=[POLYTOPE],
            polytope_credentials=POLYTOPE_KEY,
            eodag=[EODAG],
            eodag_image=EODAG_IMAGE,
        ),
        polytope_secret="polytope-credentials",
    )
    assert sources(SimpleNamespace(values=values)) == [
        "source destine-dt (Polytope, collection destination-earth, 1 request(s), "
        "https://polytope.lumi.apps.dte.destination-earth.eu): key: Secret polytope-credentials "
        "(key, and email where polytope_credentials sets one), sent to "
        "polytope.lumi.apps.dte.destination-earth.eu only",
        "source esa-s2 (EODAG, provider cop_dataspace, S2_MSI_L2A): no credentials set: "
        "Copernicus Data Space downloads need an account (eodag_credentials); runs on "
        "image registry.example.org/fedeploy/ingestion-eodag:0.1.0 (with the eodag extra)",
    ]


@pytest.mark.parametrize(
    ("credentials", "keys"),
    [
        (POLYTOPE_KEY, "key alone, sent as Bearer"),
        (
            {**POLYTOPE_KEY, "email": "someone@example.org"},
            "key and email: an ECMWF key, sent as EmailKey",
        ),
    ],
)
def test_the_plans_polytope_line_names_what_the_stack_file_gives(credentials, keys) -> None:
    """The Secret holds `key`, and `email` only where the stack file sets one (the service then
    sends EmailKey <email>:<key>, else Bearer <key>): the line says which, not both."""
    declared = spec(polytope=[POLYTOPE], polytope_credentials=credentials)
    values = values_of(declared, polytope_secret="polytope-credentials")
    site = SimpleNamespace(services=SimpleNamespace(ingestion=declared))
    [line] = sources(SimpleNamespace(values=values), site)
    assert line.endswith(
        f"key: Secret polytope-credentials ({keys}), sent to "
        "polytope.lumi.apps.dte.destination-earth.eu only"
    ), line


def test_the_example_plans_polytope_line_follows_its_stack_file(example_report) -> None:
    """hpc-kajaani's DestinE key has no email: its plan line says the key alone."""
    from fedeploy.plan.formats import as_text

    [line] = [x for x in as_text(example_report).splitlines() if "(Polytope," in x]
    assert "source destine-climate" in line and "(key alone, sent as Bearer)" in line, line


@pytest.mark.parametrize(
    "reference",
    [
        "registry.example.org/fedeploy/ingestion-eodag:0.1.0",
        "localhost:5000/ingestion-eodag:0.1.0@sha256:" + "a" * 64,
        "localhost:5000/ingestion-eodag",
    ],
)
def test_the_eodag_image_reference_is_split_as_the_chart_reads_it(reference: str) -> None:
    image = image_values(reference)
    rebuilt = image["repository"] + (f":{image['tag']}" if image["tag"] else "")
    assert rebuilt + (f"@{image['digest']}" if image["digest"] else "") == reference
    assert image["repository"].startswith(("registry.example.org/", "localhost:5000/"))


@pytest.mark.parametrize(
    "request_",
    [
        REQUEST,
        {**REQUEST, "date": "20260601/to/20260603"},
        {**REQUEST, "date": "2026-06-01"},
        {**REQUEST, "date": "-1"},
        {**REQUEST, "date": "0"},
        {**REQUEST, "param": "2t;rm"},
        {**REQUEST, "Param": "2t"},
        {**REQUEST, "feature": {"type": "timeseries", "points": [[45.0, 10.0]]}},
        {**REQUEST, "feature": "timeseries"},
        {k: v for k, v in REQUEST.items() if k not in ("class", "dataset")},
    ],
)
def test_mars_requests_are_refused_by_the_stack_file_exactly_where_the_service_refuses_them(
    request_: dict[str, Any],
) -> None:
    from fedeploy_ingestion.settings import PolytopeSource

    def accepts(model: type, fields: dict[str, Any]) -> bool:
        try:
            model.model_validate(fields)
        except ValidationError:
            return False
        return True

    service = accepts(PolytopeSource, {"name": "destine-dt", "requests": [request_]})
    assert accepts(PolytopeRequests, {"name": "destine-dt", "requests": [request_]}) is service


SPELLINGS = [
    REQUEST,
    {**REQUEST, "area": "70.1/19.0/59.5/31.6"},
    {**REQUEST, "area": "70.1/31.6/59.5/19.0"},
    {**REQUEST, "area": [70.10, 19, 59.5, 31.6], "grid": "0.25/0.1"},
    {**REQUEST, "date": "2026-06-01/to/2026-06-03", "param": ["MSL/2T"], "levelist": 1000.0},
    {**REQUEST, "feature": {"type": "timeseries", "points": [[45.0, 10.0]], "axes": "step"}},
]


@pytest.mark.parametrize("request_", SPELLINGS)
def test_the_plan_computes_the_identity_the_service_does(request_: dict[str, Any]) -> None:
    from fedeploy_ingestion.polytope_plan import digest

    from fedeploy.config.services import mars_identity

    assert mars_identity("destination-earth", request_) == digest("destination-earth", request_)


def test_the_plan_refuses_two_requests_with_one_identity() -> None:
    finland = {**REQUEST, "area": "70.1/19.0/59.5/31.6"}
    swapped = {**REQUEST, "area": "70.1/31.6/59.5/19.0"}  # other data: two products
    spec(polytope=[{**POLYTOPE, "requests": [finland, swapped]}], polytope_credentials=POLYTOPE_KEY)
    respelt = {**finland, "date": "2026-06-01", "param": "MSL/2T"}
    with pytest.raises(
        ValidationError,
        match=r"polytope\.0\.requests\.1\n  is the same request as polytope\.0\.requests\.0 ",
    ):
        spec(
            polytope=[{**POLYTOPE, "requests": [finland, respelt]}],
            polytope_credentials=POLYTOPE_KEY,
        )
    other = {**POLYTOPE, "name": "other-dt", "url": "https://polytope.example.org"}
    with pytest.raises(
        ValidationError,
        match=r"polytope\.1\.requests\.0\n  is the same request as polytope\.0\.requests\.0 \(source destine-dt's\)",
    ):
        spec(polytope=[POLYTOPE, other], polytope_credentials=POLYTOPE_KEY)


@pytest.mark.parametrize(
    ("sentinel", "problem"),
    [
        (
            {"eodag": [{**EODAG, "provider": "cop_dataspce"}], "eodag_image": EODAG_IMAGE},
            "provider 'cop_dataspce' is not one of EODAG 4.10's providers "
            r"\(did you mean 'cop_dataspace'\?\)",
        ),
        (
            {"eodag": [EODAG], "eodag_image": "ghcr.io/fedeploy/ingestion-eodag"},
            "names no tag or digest",
        ),
        (
            {
                "polytope": [{**POLYTOPE, "requests": [{**REQUEST, "levtyp": "sfc"}]}],
                "polytope_credentials": POLYTOPE_KEY,
            },
            r"'levtyp' is not a MARS or DestinE request key \(did you mean 'levtype'\?\)",
        ),
        (
            {
                "polytope": [{**POLYTOPE, "requests": [{**REQUEST, "date": dt.date(2030, 1, 1)}]}],
                "polytope_credentials": POLYTOPE_KEY,
            },
            r"requests\.0\.date\n  an unquoted yyyy-mm-dd is read as a date by YAML: quote it",
        ),
        (
            {"polytope": [{**POLYTOPE, "poll_seconds": 2}], "polytope_credentials": POLYTOPE_KEY},
            "`poll_seconds` is not set in the stack file: the service's default applies",
        ),
        (
            {
                "polytope": [{**POLYTOPE, "max_wait_minutes": 600}],
                "polytope_credentials": POLYTOPE_KEY,
            },
            "less than or equal to 300",
        ),
    ],
)
def test_review_slips_are_refused_with_a_hint(sentinel: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem) as caught:
        spec(**sentinel)
    assert len(caught.value.errors()) == 1  # one message, not a union's five


def test_a_url_provider_may_have_any_name_and_a_tagged_or_pinned_image_passes() -> None:
    url_provider = {**EODAG, "provider": "my_stac", "url": "https://stac.example.org"}
    spec(eodag=[url_provider], eodag_image=EODAG_IMAGE)
    spec(eodag=[EODAG], eodag_image="localhost:5000/ingestion-eodag@sha256:" + "a" * 64)


def test_a_decrypted_polytope_key_that_is_not_one_printable_line_is_refused_unshown() -> None:
    from fedeploy.config.services import PolytopeKey

    decrypted = {"secrets_decrypted": True}
    for key in ('{\n "user_key": "abc123"\n}', "destine-key\nX-Leak: 1"):
        with pytest.raises(ValidationError) as caught:
            PolytopeKey.model_validate({"key": key}, context=decrypted)
        [error] = caught.value.errors(include_input=False)
        assert "bare key on one line" in error["msg"]
        assert "abc123" not in error["msg"] and "Leak" not in error["msg"]
    assert PolytopeKey.model_validate({"key": "destine-key-01\n"}, context=decrypted).key.known
