"""CA bundles are checked as their consumers load them: as a file, by OpenSSL (review rw33b F1,
F8). A non-ASCII comment (a distro bundle's `# NetLock ... Főtanúsítvány`, an em dash) made
validate and plan stop with an internal TypeError; TRUSTED CERTIFICATE blocks, which the pods'
OpenSSL loads from a file, were refused as "not a certificate"."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from fedeploy.config.bridge import BridgeConfig
from fedeploy.config.loader import check_stack_file
from fedeploy.config.pem import pem_bundle_problem
from fedeploy.config.services import ExternalDatabase, Mqtt
from fedeploy.errors import StackConfigError
from tests.builders import edit_site, example_stacks
from tests.conftest import unavailable
from tests.unit.test_bridge_config import CERT, GATEWAY

SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
KEY_BLOCK = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"
COMMENTS = "# Corp Root CA — 2024\n# NetLock Arany (Class Gold) Főtanúsítvány\n"


@pytest.fixture(scope="module")
def system_bundle() -> str:
    if not SYSTEM_BUNDLE.exists():
        unavailable(f"no {SYSTEM_BUNDLE} (Debian: apt-get install -y ca-certificates)")
    return SYSTEM_BUNDLE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def trusted(tmp_path_factory) -> str:
    """CERT as an OpenSSL TRUSTED CERTIFICATE block (x509 -addtrust serverAuth -trustout)."""
    if shutil.which("openssl") is None:
        unavailable("no openssl (Debian: apt-get install -y openssl)")
    source = tmp_path_factory.mktemp("pem") / "cert.pem"
    source.write_text(CERT)
    made = subprocess.run(
        ["openssl", "x509", "-in", str(source), "-addtrust", "serverAuth", "-trustout"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert made.startswith("-----BEGIN TRUSTED CERTIFICATE-----")
    return made


def _commented(bundle: str) -> str:
    """`bundle` with a UTF-8 `# name` comment above each certificate, as p11-kit extracts."""
    return re.sub(
        r"(?m)^-----BEGIN CERTIFICATE-----", COMMENTS + "-----BEGIN CERTIFICATE-----", bundle
    )


def test_non_ascii_comments_and_crlf_are_taken(system_bundle):
    assert pem_bundle_problem(_commented(system_bundle)) is None
    assert pem_bundle_problem(_commented(system_bundle).replace("\n", "\r\n")) is None
    assert pem_bundle_problem(COMMENTS + CERT) is None
    assert pem_bundle_problem((COMMENTS + CERT).rstrip("\n")) is None


def test_trusted_certificate_blocks_mixed_with_plain_ones_are_taken(system_bundle, trusted):
    assert pem_bundle_problem(trusted) is None
    assert pem_bundle_problem(CERT + COMMENTS + trusted) is None
    assert pem_bundle_problem(system_bundle + trusted) is None


@pytest.mark.parametrize(
    ("bundle", "words"),
    [
        (CERT + KEY_BLOCK, "holds a PEM block that is not a certificate (PRIVATE KEY)"),
        (CERT.replace("MIIB", "MIIé", 1), "holds a character that is not ASCII inside its PEM"),
        ("# only a comment — no block\n", "is not a PEM certificate bundle OpenSSL loads"),
        (CERT.replace("MIIB", "M!!B", 1), "is not a PEM certificate bundle OpenSSL loads"),
        (CERT[:200], "is not a PEM certificate bundle OpenSSL loads"),
    ],
    ids=["private-key", "non-ascii-in-block", "no-block", "bad-base64", "truncated"],
)
def test_what_is_not_a_certificate_is_refused_clearly(bundle, words):
    problem = pem_bundle_problem(bundle)
    assert problem is not None and words in problem, problem
    assert "MIIB" not in problem  # never echoes the value


def test_each_ca_key_takes_the_commented_bundle(trusted):
    bundle = COMMENTS + CERT + trusted
    assert Mqtt(host="broker", ca_certificate=bundle).ca_certificate == bundle
    database = ExternalDatabase(
        host="db.example.eu",
        username="stac",
        password={"secure": "v1:cA==:cA=="},
        ca_certificate=bundle,
    )
    assert database.ca_certificate == bundle
    bridge = BridgeConfig.model_validate({**GATEWAY, "tls": {"ca_certificate": bundle}})
    assert bridge.tls.ca_certificate == bundle
    with pytest.raises(ValidationError, match=r"not a certificate \(PRIVATE KEY\)"):
        Mqtt(host="broker", ca_certificate=bundle + KEY_BLOCK)
    with pytest.raises(ValidationError, match=r"not a certificate \(PRIVATE KEY\)"):
        BridgeConfig.model_validate({**GATEWAY, "tls": {"ca_certificate": bundle + KEY_BLOCK}})


def test_the_stack_file_with_a_non_ascii_ca_comment_validates(tmp_path):
    """The reviewer's stack: ovh-gra's MQTT CA with an em dash in a comment (an internal
    TypeError before, which hid every other stack's result)."""
    stacks = example_stacks(tmp_path / "stacks", ("ovh-gra",))
    path = stacks / "Pulumi.ovh-gra.yaml"

    def edit(site: dict) -> None:
        site["services"]["ingestion"]["stream"]["mqtt"]["ca_certificate"] = COMMENTS + CERT

    edit_site(path, edit)
    check_stack_file(path, check_federation=False)

    def bad(site: dict) -> None:
        mqtt = site["services"]["ingestion"]["stream"]["mqtt"]
        mqtt["ca_certificate"] = COMMENTS + CERT.replace("MIIB", "MIIé", 1)

    edit_site(path, bad)
    with pytest.raises(StackConfigError) as refused:
        check_stack_file(path, check_federation=False)
    text = str(refused.value)
    assert "services.ingestion.stream.mqtt.ca_certificate" in text, text
    assert "not ASCII inside its PEM block 1" in text, text


def test_a_bundle_of_trusted_certificates_only_passes_the_charts_too(trusted):
    """Review rw33c F1: the stack file took a bundle of TRUSTED CERTIFICATE blocks only, which
    the ingestion and catalog charts' caCertificate pattern refused at plan."""
    import json

    bundle = trusted + trusted
    assert pem_bundle_problem(bundle) is None
    root = Path(__file__).resolve().parents[2]
    for chart in ("ingestion", "catalog"):
        text = (root / "charts" / chart / "values.schema.json").read_text()
        patterns = [
            p
            for p in re.findall(r'"pattern": ("(?:[^"\\]|\\.)*")', text)
            if "CERTIFICATE" in json.loads(p)
        ]
        assert patterns, chart
        for pattern in patterns:
            assert re.fullmatch(json.loads(pattern), bundle), (chart, pattern)
