"""WIS2 notification model, integrity check and the guarded download of the canonical link."""

from __future__ import annotations

import base64
import hashlib

import httpx
import pytest
from fedeploy_ingestion.decoding import DecodeLimits
from fedeploy_ingestion.download_safety import AddressGuard, DownloadPolicy
from fedeploy_ingestion.observation import InvalidObservation
from fedeploy_ingestion.wis2 import (
    TransientDownload,
    check_integrity,
    download,
    parse_notification,
)

from services.ingestion.tests.wis2_build import notification, payload

DATA = b"BUFR-bytes-for-the-test"
HREF = "https://data.example.org/synop/a.bufr4"
LIMITS = DecodeLimits(max_bytes=64 * 1024)


def parse(document: dict) -> object:
    return parse_notification(payload(document), LIMITS)


def test_a_notification_built_as_the_specification_says_is_accepted() -> None:
    document = notification(DATA, HREF)
    parsed = parse(document)
    assert parsed.id == document["id"]
    assert parsed.data_link().href == HREF
    assert parsed.dedupe_keys() == (
        f"id:{document['id']}",
        f"data:{document['properties']['data_id']}@2026-11-30T06:05:00+00:00",
    )


def test_a_time_range_instead_of_datetime_is_accepted_and_neither_is_refused() -> None:
    document = notification(DATA, HREF)
    del document["properties"]["datetime"]
    document["properties"]["start_datetime"] = "2026-11-30T05:00:00Z"
    document["properties"]["end_datetime"] = "2026-11-30T06:00:00Z"
    parse(document)
    del document["properties"]["end_datetime"]
    with pytest.raises(InvalidObservation, match="start_datetime"):
        parse(document)


def _without(path: str) -> dict:
    document = notification(DATA, HREF)
    *parents, last = path.split(".")
    target = document
    for part in parents:
        target = target[part]
    del target[last]
    return document


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda d: d.update(id="not-a-uuid"), "id"),
        (lambda d: d.update(conformsTo=["http://example.org/other"]), "conformsTo"),
        (lambda d: d.update(type="FeatureCollection"), "type"),
        (lambda d: d["properties"].pop("data_id"), "properties.data_id"),
        (lambda d: d["properties"].update(pubtime="1732945500"), "properties.pubtime"),
        (lambda d: d["properties"].pop("integrity"), "properties.integrity"),
        (lambda d: d["properties"]["integrity"].update(method="md5"), "integrity.method"),
        (lambda d: d["properties"]["integrity"].update(value="%%%"), "integrity.value"),
        # Valid base64 of the wrong length for the method can never match: no download.
        (lambda d: d["properties"]["integrity"].update(value="AAAA"), "a sha512 digest is 64"),
        # Other spellings uuid.UUID reads would give one message several dedupe keys.
        (lambda d: d.update(id=f"urn:uuid:{d['id']}"), "8-4-4-4-12"),
        (lambda d: d.update(id="{" + d["id"] + "}"), "8-4-4-4-12"),
        (lambda d: d.update(id=d["id"].replace("-", "")), "8-4-4-4-12"),
        (lambda d: d.update(links=[]), "links"),
        (lambda d: d["links"][0].update(rel="via"), "rel 'canonical' or 'update'"),
        (lambda d: d.update(geometry={"type": "Circle", "coordinates": []}), "geometry"),
    ],
)
def test_notifications_missing_what_the_consumer_relies_on_are_refused_naming_the_field(
    change, where: str
) -> None:
    document = notification(DATA, HREF)
    change(document)
    with pytest.raises(InvalidObservation) as refused:
        parse(document)
    assert refused.value.code == "notification"
    assert where in refused.value.reason


def test_an_upper_case_id_has_the_same_dedupe_key_as_its_lower_case_form() -> None:
    document = notification(DATA, HREF)
    lower = parse(document).dedupe_keys()[0]
    document["id"] = document["id"].upper()
    assert parse(document).dedupe_keys()[0] == lower


def test_an_update_link_is_followed_when_there_is_no_canonical_one() -> None:
    document = notification(DATA, HREF)
    document["links"][0]["rel"] = "update"
    assert parse(document).data_link().href == HREF


def test_payloads_that_are_not_json_keep_their_decoding_codes() -> None:
    with pytest.raises(InvalidObservation) as refused:
        parse_notification(b"\xff\xfe", LIMITS)
    assert refused.value.code == "encoding"


def test_the_integrity_digest_is_checked() -> None:
    parsed = parse(notification(DATA, HREF))
    check_integrity(DATA, parsed.properties.integrity)
    with pytest.raises(InvalidObservation) as refused:
        check_integrity(DATA + b"!", parsed.properties.integrity)
    assert refused.value.code == "digest-mismatch"
    sha256 = base64.b64encode(hashlib.sha256(DATA).digest()).decode()
    document = notification(DATA, HREF)
    document["properties"]["integrity"] = {"method": "sha256", "value": sha256}
    check_integrity(DATA, parse(document).properties.integrity)


# --- the download ---------------------------------------------------------------------


class Recorder:
    """A transport answering from a table and recording every request it is sent."""

    def __init__(self, answers: dict[str, httpx.Response]) -> None:
        self.requests: list[str] = []
        self.answers = answers

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(str(request.url))
        answer = self.answers.get(str(request.url))
        if answer is None:
            raise httpx.ConnectError("connection refused", request=request)
        return answer


def policy(table: dict[str, list[str]] | None = None) -> DownloadPolicy:
    addresses = {"data.example.org": ["93.184.216.34"], **(table or {})}
    guard = AddressGuard.build(resolver=lambda host, port: addresses.get(host, ["93.184.216.35"]))
    return DownloadPolicy("wis2", ("data.example.org",), frozenset({"https"}), guard)


def client(recorder: Recorder) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(recorder), follow_redirects=False)


def test_the_canonical_link_is_downloaded() -> None:
    recorder = Recorder({HREF: httpx.Response(200, content=DATA)})
    assert download(HREF, policy(), client(recorder), 1024) == DATA


@pytest.mark.parametrize(
    ("href", "table"),
    [
        ("http://169.254.169.254/latest/meta-data/", {}),
        ("https://127.0.0.1:9999/a.bufr4", {}),
        ("https://other.example.org/a.bufr4", {}),
        ("http://data.example.org/a.bufr4", {}),
        ("https://data.example.org/a.bufr4", {"data.example.org": ["169.254.169.254"]}),
        ("https://data.example.org/a.bufr4", {"data.example.org": ["10.0.0.7"]}),
        ("file:///etc/passwd", {}),
    ],
    ids=[
        "metadata",
        "loopback-port",
        "other-host",
        "http",
        "resolves-link-local",
        "private",
        "file",
    ],
)
def test_a_forbidden_canonical_link_is_refused_before_any_request(href: str, table) -> None:
    recorder = Recorder({})
    with pytest.raises(InvalidObservation) as refused:
        download(href, policy(table), client(recorder), 1024)
    assert refused.value.code == "forbidden-link"
    assert recorder.requests == []


def test_a_redirect_to_a_forbidden_address_is_refused_before_it_is_followed() -> None:
    recorder = Recorder(
        {HREF: httpx.Response(302, headers={"location": "http://169.254.169.254/x"})}
    )
    with pytest.raises(InvalidObservation) as refused:
        download(HREF, policy(), client(recorder), 1024)
    assert refused.value.code == "forbidden-link"
    assert recorder.requests == [HREF]


@pytest.mark.parametrize("status", [404, 403, 410])
def test_a_4xx_answer_is_a_permanent_failure(status: int) -> None:
    recorder = Recorder({HREF: httpx.Response(status)})
    with pytest.raises(InvalidObservation) as refused:
        download(HREF, policy(), client(recorder), 1024)
    assert refused.value.code == "download"


@pytest.mark.parametrize("status", [500, 503, 429, 408])
def test_5xx_429_408_and_connection_failures_are_transient(status: int) -> None:
    with pytest.raises(TransientDownload):
        download(HREF, policy(), client(Recorder({HREF: httpx.Response(status)})), 1024)
    with pytest.raises(TransientDownload):
        download(HREF, policy(), client(Recorder({})), 1024)


def test_data_larger_than_the_limit_is_refused() -> None:
    recorder = Recorder({HREF: httpx.Response(200, content=b"x" * 2048)})
    with pytest.raises(InvalidObservation) as refused:
        download(HREF, policy(), client(recorder), 1024)
    assert refused.value.code == "download"
    assert "1024" in refused.value.reason


def _reference_message(**times: str) -> dict:
    """A notification as pywis-pubsub (the WIS2 reference client) builds it."""
    from pywis_pubsub.publish import create_message

    return create_message(
        topic="origin/a/wis2/xx-test/data/core/weather/surface-based-observations/synop",
        content_type="application/bufr",
        url_info={
            "url": HREF,
            "filename": "a.bufr4",
            "checksum_type": "sha512",
            "checksum_value": base64.b64encode(hashlib.sha512(DATA).digest()).decode(),
            "size": len(DATA),
        },
        identifier="5f0e7ac5-8f07-4c3c-9c5c-0e4d8c4b6d1a",
        geometry=[5.0, 50.0],
        **times,  # type: ignore[arg-type]
    )


def test_messages_of_the_reference_client_pywis_pubsub_are_accepted() -> None:
    message = _reference_message(datetime_="2026-11-30T06:00:00Z")
    parsed = parse(message)
    assert parsed.data_link().href == HREF
    check_integrity(DATA, parsed.properties.integrity)


def test_the_reference_clients_endstart_datetime_typo_is_refused_and_its_fix_accepted() -> None:
    message = _reference_message(
        start_datetime="2026-11-30T05:00:00Z", end_datetime="2026-11-30T06:00:00Z"
    )
    with pytest.raises(InvalidObservation, match="start_datetime"):
        parse(message)  # pywis-pubsub 0.12.0 writes `endstart_datetime`
    properties = message["properties"]
    properties["end_datetime"] = properties.pop("endstart_datetime")
    parse(message)


@pytest.mark.parametrize("fraction", ["1234567", "12345678", "123456789"])
def test_a_pubtime_with_more_than_six_fractional_digits_is_valid_rfc3339(fraction: str) -> None:
    document = notification(DATA, HREF, pubtime=f"2026-11-30T06:05:00.{fraction}Z")
    parsed = parse(document)
    assert parsed.properties.pubtime.isoformat() == "2026-11-30T06:05:00.123456+00:00"  # type: ignore[attr-defined]
