"""A stack's program reads only the outputs fedeploy/references.py lists for it: reading another
output of a planned stack is a clear error, whichever StackReference method reads it
(fedeploy/offline/engine.py; review s30b F1/F2)."""

from __future__ import annotations

import pulumi
import pytest

from fedeploy import program
from fedeploy.errors import ProgramError
from fedeploy.offline.engine import plan_stack
from tests.conftest import STACKS

READER = STACKS / "Pulumi.aws-frankfurt.yaml"
LISTED = {"aws-dublin": {"storage": {"bucket": "aws-dublin-data"}}}


def _program_reading(monkeypatch: pytest.MonkeyPatch, read: str, output: str) -> None:
    def build(_stacks_dir: object) -> dict[str, object]:
        peer = pulumi.StackReference("organization/fedeploy/aws-dublin")
        if read == "get_output_details":
            return {"peer": pulumi.Output.from_input(peer.get_output_details(output))}
        return {"peer": getattr(peer, read)(output)}

    monkeypatch.setattr(program, "build", build)


@pytest.mark.parametrize("read", ["get_output", "require_output", "get_output_details"])
def test_an_output_the_list_leaves_out_is_an_error_naming_both_stacks(monkeypatch, read):
    _program_reading(monkeypatch, read, "network")
    with pytest.raises(ProgramError) as raised:
        plan_stack(READER, references=LISTED)
    message = str(raised.value)
    assert "'aws-frankfurt' reads output 'network' of stack 'aws-dublin'" in message
    assert "fedeploy/references.py" in message and "it lists: storage" in message


@pytest.mark.parametrize("read", ["get_output", "require_output"])
def test_a_listed_output_is_read_and_the_guard_is_gone_after_the_plan(monkeypatch, read):
    _program_reading(monkeypatch, read, "storage")
    plan = plan_stack(READER, references=LISTED)
    assert plan.outputs["peer"] == {"bucket": "aws-dublin-data"}
    assert pulumi.StackReference.get_output.__name__ == "get_output"
    assert pulumi.StackReference.require_output.__name__ == "require_output"
