"""An existing cluster's GPU nodes (site.cluster.gpu): the node selector and the taint key
become the inference pods' nodeSelector and toleration, which the API server checks as label
names and values; a value it would refuse is refused in the stack file, at its key, instead of
planning clean and failing at `pulumi up`."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedeploy.config.loader import check_stack_file
from fedeploy.errors import StackConfigError
from tests.builders import edit_site, example_stacks


def _gpu(tmp_path: Path, **gpu: object) -> Path:
    stacks = example_stacks(tmp_path / "stacks", ("hpc-kajaani",))
    path = stacks / "Pulumi.hpc-kajaani.yaml"
    edit_site(path, lambda site: site["cluster"]["gpu"].update(gpu))
    return path


@pytest.mark.parametrize(
    ("gpu", "key"),
    [
        ({"taint_key": "nvidia.com/gpu "}, "site.cluster.gpu.taint_key"),
        ({"taint_key": "NVIDIA.com/GPU"}, "site.cluster.gpu.taint_key"),
        ({"taint_key": ""}, "site.cluster.gpu.taint_key"),
        ({"node_selector": {"Bad Key": "x"}}, "site.cluster.gpu.node_selector"),
        (
            {"node_selector": {"node.kubernetes.io/instance-type": "g5.xlarge/2"}},
            "site.cluster.gpu.node_selector.node.kubernetes.io/instance-type",
        ),
        ({"node_selector": {"gpu": "x" * 64}}, "site.cluster.gpu.node_selector.gpu"),
    ],
)
def test_a_taint_key_or_node_label_kubernetes_refuses_is_refused_at_its_key(tmp_path, gpu, key):
    path = _gpu(tmp_path, **gpu)
    with pytest.raises(StackConfigError) as refused:
        check_stack_file(path, check_federation=False)
    text = str(refused.value)
    assert str(path) in text and "Traceback" not in text
    assert any(line.strip().startswith(f"- {key}") for line in text.splitlines()), text


def test_qualified_names_and_label_values_kubernetes_takes_plan_as_given(tmp_path):
    gpu = {
        "taint_key": "nvidia.com/gpu",
        "node_selector": {"node.kubernetes.io/instance-type": "g5.xlarge", "accelerator": ""},
    }
    site = check_stack_file(_gpu(tmp_path, **gpu), check_federation=False).site
    assert site.cluster.gpu.taint_key == "nvidia.com/gpu"
    assert dict(site.cluster.gpu.node_selector) == gpu["node_selector"]


def test_a_refused_taint_key_is_told_in_words_not_a_regex(tmp_path):
    """Review rw33b F9: the message said only the qualified-name regex."""
    path = _gpu(tmp_path, taint_key="nvidia.com/gpu ")
    with pytest.raises(StackConfigError) as refused:
        check_stack_file(path, check_federation=False)
    (line,) = [x for x in str(refused.value).splitlines() if "site.cluster.gpu.taint_key" in x]
    assert "1 to 63 characters of letters, digits" in line and "^(" not in line
