"""What YAML made of an unquoted key or number is said as written, in one line, with how to
write it (review sweep33 F13): a key YAML 1.1 reads as a boolean, number or null (`on:`,
`no:`, `1.10:`, `null:`) is named by its text with the hint to quote it, not by what YAML made
of it (`site.tags.1`, `site.tags.1.1`, `site.tags.None`); a number that YAML 1.1 reads as text
and Pulumi and YAML 1.2 readers as a number (`1e9`, `1.0e3`, `09`) is refused saying so, as
`010` is; `zone: 0123` gets one line (quote it), not two contradictory ones."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fedeploy.config.loader import check_stack_file
from fedeploy.errors import StackConfigError
from tests.builders import SITE_KEY, stack_document, write_stack_file

# A stand-in the test writes where the stack file gets the unquoted text (yaml.safe_dump would
# quote `on`, `1e9` or `0123`).
HOLE = "HOLE-WRITTEN-BY-THE-TEST"


def _stack_file(
    tmp_path: Path, stack: str, edit: Callable[[dict[str, Any]], Any], written: str
) -> Path:
    """The example stack file `stack` with `edit` applied to its site, HOLE then replaced by
    `written` as it is (unquoted)."""
    document = stack_document(stack)
    edit(document["config"][SITE_KEY])
    path = write_stack_file(tmp_path / f"Pulumi.{stack}.yaml", document)
    text = path.read_text()
    assert text.count(HOLE) == 1, text
    path.write_text(text.replace(HOLE, written))
    return path


def _lines(path: Path) -> list[str]:
    with pytest.raises(StackConfigError) as refused:
        check_stack_file(path, check_federation=False)
    return [str(issue) for issue in refused.value.issues]


def _tag(key: str = HOLE, value: str = "call") -> Callable[[dict[str, Any]], Any]:
    return lambda site: site["tags"].__setitem__(key, value)


def _bucket(settings: dict[str, Any]) -> Callable[[dict[str, Any]], Any]:
    return lambda site: site["storage"]["buckets"].__setitem__(HOLE, settings)


@pytest.mark.parametrize(
    ("edit", "written", "line"),
    [
        (
            _tag(),
            "on",
            "site.tags.on: the unquoted key on is read as a boolean by YAML 1.1 (fedeploy), "
            "not as the name 'on': quote it, \"on\":",
        ),
        (
            _bucket({}),
            "no",
            "site.storage.buckets.no: the unquoted key no is read as a boolean by YAML 1.1 "
            "(fedeploy), not as the name 'no': quote it, \"no\":",
        ),
        (
            _tag(),
            "1.10",
            "site.tags.1.10: the unquoted key 1.10 is read as a number by YAML 1.1 (fedeploy), "
            "not as the name '1.10': quote it, \"1.10\":",
        ),
        (
            _tag(),
            "null",
            "site.tags.null: the unquoted key null is read as null by YAML 1.1 (fedeploy), "
            "not as the name 'null': quote it, \"null\":",
        ),
        (
            _bucket({}),
            "1.10",
            "site.storage.buckets.1.10: the name '1.10' is not allowed: must match pattern "
            "'^[a-z][a-z0-9-]{0,14}[a-z0-9]$'",
        ),
        (
            lambda site: site.__setitem__(HOLE, "x"),
            "on",
            "site.on: unknown key 'on'; allowed: bridge, cluster, environment, kind, monitoring, "
            "services, storage, tags",
        ),
    ],
)
def test_a_key_yaml_did_not_read_as_text_is_named_as_written(tmp_path, edit, written, line):
    """Before: site.tags.1 (the name 1 ...), site.storage.buckets.0, site.tags.1.1,
    site.tags.None, site.1, each with `must be a valid string` and no hint."""
    assert _lines(_stack_file(tmp_path, "cf-waw", edit, written)) == [line]


def test_a_key_path_under_such_a_key_is_as_written(tmp_path) -> None:
    """A bucket `no:` with a bad setting: the setting's path names the bucket `no`, not 0."""
    path = _stack_file(tmp_path, "cf-waw", _bucket({"versioning": "maybe"}), "no")
    assert _lines(path) == [
        "site.storage.buckets.no: the unquoted key no is read as a boolean by YAML 1.1 "
        "(fedeploy), not as the name 'no': quote it, \"no\":",
        "site.storage.buckets.no.versioning: given 'maybe'; allowed: must be a valid boolean, "
        "unable to interpret input",
    ]


def test_the_quoted_key_is_taken(tmp_path) -> None:
    path = _stack_file(tmp_path, "cf-waw", _tag(), '"on"')
    checked = check_stack_file(path, check_federation=False)
    assert checked.site.tags["on"] == "call"


def _max_size(site: dict[str, Any]) -> None:
    site["cluster"]["node_groups"]["system"]["max_size"] = HOLE


def _threshold(site: dict[str, Any]) -> None:
    site["monitoring"]["alerts"] = {"rules": {"CatalogLatencyHigh": {"threshold": HOLE}}}


def _noncurrent(site: dict[str, Any]) -> None:
    site["storage"]["buckets"]["raw"]["lifecycle"] = {"noncurrent_expire_after_days": HOLE}


def _zone(site: dict[str, Any]) -> None:
    site["monitoring"]["selector_labels"]["zone"] = HOLE


@pytest.mark.parametrize(
    ("stack", "edit", "written", "line"),
    [
        (
            "cf-waw",
            _threshold,
            "1e9",
            "site.monitoring.alerts.rules.CatalogLatencyHigh.threshold: the unquoted 1e9 is read "
            "as the text '1e9' by YAML 1.1 (fedeploy), as the number 1000000000 by Pulumi and "
            "YAML 1.2 readers: write the plain decimal number you mean, 1000000000",
        ),
        (
            "cf-waw",
            _noncurrent,
            "1.0e3",
            "site.storage.buckets.raw.lifecycle.noncurrent_expire_after_days: the unquoted 1.0e3 "
            "is read as the text '1.0e3' by YAML 1.1 (fedeploy), as the number 1000 by Pulumi "
            "and YAML 1.2 readers: write the plain decimal number you mean, 1000",
        ),
        (
            "aws-dublin",
            _max_size,
            "09",
            "site.cluster.node_groups.system.max_size: the unquoted 09 is read as the text '09' "
            "by YAML 1.1 (fedeploy), as the number 9 by Pulumi and YAML 1.2 readers: write the "
            "plain decimal number you mean, 9",
        ),
        (
            "aws-dublin",
            _max_size,
            "010",
            "site.cluster.node_groups.system.max_size: the unquoted 010 is read as 8 by YAML 1.1 "
            "(fedeploy) and Pulumi (octal), as 10 by YAML 1.2 readers (decimal): write the plain "
            "decimal number you mean, without the leading zero",
        ),
        (
            "aws-dublin",
            _max_size,
            "04",
            "site.cluster.node_groups.system.max_size: the unquoted 04 has leading zeros, which "
            "YAML readers read apart (octal in YAML 1.1 (fedeploy) and Pulumi, decimal in YAML "
            "1.2: here both give 4, but 010 would not): write the plain decimal number you mean, "
            "without the leading zeros",
        ),
        (
            "cf-waw",
            _zone,
            "0123",
            "site.monitoring.selector_labels.zone: the unquoted 0123 is read as 83 by YAML 1.1 "
            "(fedeploy) and Pulumi (octal), as 123 by YAML 1.2 readers (decimal): quote it, "
            'zone: "0123"',
        ),
        (
            "cf-waw",
            _tag("owner", HOLE),
            "09",
            "site.tags.owner: the unquoted 09 is read as the text '09' by YAML 1.1 (fedeploy), "
            'as the number 9 by Pulumi and YAML 1.2 readers: quote it, owner: "09"',
        ),
    ],
)
def test_a_number_the_readers_disagree_on_gets_one_line(tmp_path, stack, edit, written, line):
    """Before: `1e9`/`1.0e3` got `must be a valid number` (integer) with no hint, `max_size: 09`
    was taken as 9 (and a tag `09` as the text), `zone: 0123` got two contradictory lines."""
    assert _lines(_stack_file(tmp_path, stack, edit, written)) == [line]


@pytest.mark.parametrize("written", ["1000000000", "1.0e+9"])
def test_a_number_every_reader_reads_alike_is_taken(tmp_path, written) -> None:
    path = _stack_file(tmp_path, "cf-waw", _threshold, written)
    checked = check_stack_file(path, check_federation=False)
    assert checked.site.monitoring.alerts.rules.CatalogLatencyHigh.threshold == 1e9
