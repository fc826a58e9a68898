"""The storage Secret of a site with static keys: one `credentials` key, boto3's shared
credentials file, a Pulumi secret; keys that would break the INI file are refused by name."""

from __future__ import annotations

import configparser
from typing import Any

import pulumi
import pytest

from fedeploy.values.storage_credentials import (
    LEGACY_KEYS,
    SECRET_KEY,
    shared_credentials_file,
    storage_secret_data,
)

ACCESS, SECRET = "AKIA0123456789ABCDEF", "wJalr/XUtnFEMI+K7MDENG=bPxRfiCYEXAMPLEKEY"


class _Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> Any:
        raise AssertionError(f"no provider function is called, got {args.token}")


def test_the_file_is_a_default_profile_boto3_reads() -> None:
    parser = configparser.ConfigParser()
    parser.read_string(shared_credentials_file(ACCESS, SECRET))
    assert parser.sections() == ["default"]
    assert dict(parser["default"]) == {
        "aws_access_key_id": ACCESS,
        "aws_secret_access_key": SECRET,
    }


@pytest.mark.parametrize(
    ("access", "secret", "field"),
    [
        ("", SECRET, "access_key_id"),
        (ACCESS, "abc\naws_session_token = x", "secret_access_key"),
        (ACCESS, "has space", "secret_access_key"),
        ("AKIA\u00e9", SECRET, "access_key_id"),
        (ACCESS, "abc\r[evil]", "secret_access_key"),
        ("AKIA\t", SECRET, "access_key_id"),
    ],
)
def test_keys_that_would_break_the_file_are_refused_by_field(
    access: str, secret: str, field: str
) -> None:
    with pytest.raises(ValueError, match=f"storage {field}") as caught:
        shared_credentials_file(access, secret)
    if secret != SECRET:
        assert secret not in str(caught.value)


def _resolved(data: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """Each value of Secret data and whether it is secret, under fresh mocks."""
    pulumi.runtime.set_mocks(_Mocks(), project="fedeploy", stack="test", preview=False)
    seen: dict[str, tuple[str, bool]] = {}

    @pulumi.runtime.test
    def program() -> Any:
        outputs = []
        for key, value in data.items():
            assert isinstance(value, pulumi.Output), key
            outputs.append(
                pulumi.Output.all(value, value.is_secret()).apply(  # type: ignore[arg-type]
                    lambda args, key=key: seen.__setitem__(key, (args[0], args[1]))
                )
            )
        return pulumi.Output.all(*outputs)

    program()
    return seen


@pytest.mark.parametrize("wrap", [pulumi.Output.secret, lambda v: v], ids=["secret", "plain"])
def test_the_secret_data_is_the_file_and_stays_secret(wrap: Any) -> None:
    pulumi.runtime.set_mocks(_Mocks(), project="fedeploy", stack="test", preview=False)
    data = storage_secret_data(wrap(ACCESS), wrap(SECRET))
    # The file, and the keys under the names the previous release's pods read (upgrade window).
    assert list(data) == [SECRET_KEY, *LEGACY_KEYS]
    assert SECRET_KEY == "credentials"
    assert LEGACY_KEYS == ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    assert _resolved(data) == {
        SECRET_KEY: (shared_credentials_file(ACCESS, SECRET), True),
        LEGACY_KEYS[0]: (ACCESS, True),
        LEGACY_KEYS[1]: (SECRET, True),
    }


@pytest.mark.parametrize(
    "secret",
    [
        "a%(x)s%%b",  # configparser's interpolation: botocore's parser is raw
        "=[default]=",  # a delimiter and a section header inside the value
        "#no-comment;either:",  # comment prefixes and the other delimiter
        "k" * 4096,  # far longer than any store's key
    ],
    ids=["percent", "delimiters", "comment-prefixes", "long"],
)
def test_botocore_reads_every_printable_key_back_verbatim(
    secret: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import botocore.session

    path = tmp_path / "credentials"
    path.write_text(shared_credentials_file(f"AK{secret}", secret))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(path))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    found = botocore.session.Session().get_credentials()
    assert found is not None
    frozen = found.get_frozen_credentials()
    assert (frozen.access_key, frozen.secret_key) == (f"AK{secret}", secret)
