"""A failing least-privilege test explains each request the IAM-enforcing emulator denied."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from loopback.enforcing_s3 import explain_denials


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    denials = getattr(item, "iam_denials", None)
    if denials is None or call.when != "call" or not report.failed:
        return
    server, offset, policy = denials
    denied = server.denied_since(offset)
    if denied:
        report.sections.append(
            ("requests the emulator denied (IAM enforced)", explain_denials(denied, policy))
        )
