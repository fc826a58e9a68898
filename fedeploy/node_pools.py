"""How provisioned node groups are marked on every provider: labels, taints, Magnum labels.

GPU nodes carry the same label and taint on every kind (the aws kind's), so the inference chart
schedules the same way wherever it runs."""

from __future__ import annotations

from dataclasses import dataclass

GPU_LABEL_KEY = "fedeploy.io/accelerator"
GPU_LABEL_VALUE = "nvidia"
GPU_TAINT_KEY = "nvidia.com/gpu"
NODE_GROUP_LABEL = "fedeploy.io/node-group"


@dataclass(frozen=True)
class Taint:
    """A Kubernetes node taint: key, value and effect (NoSchedule, PreferNoSchedule, NoExecute)."""

    key: str
    value: str
    effect: str


GPU_TAINT = Taint(GPU_TAINT_KEY, "present", "NoSchedule")


def node_labels(group: str, *, gpu: bool) -> dict[str, str]:
    """The Kubernetes labels of the nodes of one group."""
    labels = {NODE_GROUP_LABEL: group}
    if gpu:
        labels[GPU_LABEL_KEY] = GPU_LABEL_VALUE
    return labels


def node_taints(*, gpu: bool) -> list[Taint]:
    """The taints of the nodes of one group: GPU nodes admit only pods that tolerate them."""
    return [GPU_TAINT] if gpu else []


def kubelet_options(labels: dict[str, str], taints: list[Taint]) -> str:
    """Kubelet flags that register a node with its labels and taints (Magnum's
    `kubelet_options` label), e.g. `--node-labels=a=b --register-with-taints=k=v:NoSchedule`."""
    flags = []
    if labels:
        flags.append("--node-labels=" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())))
    if taints:
        flags.append(
            "--register-with-taints=" + ",".join(f"{t.key}={t.value}:{t.effect}" for t in taints)
        )
    return " ".join(flags)


def magnum_template_labels(
    extra: dict[str, str], *, kube_tag: str, api_cidrs: list[str]
) -> dict[str, str]:
    """The cluster template's Magnum labels: the user's, the Kubernetes release, and the CIDRs
    the API's load balancer admits (never the whole internet: Magnum's default)."""
    return {
        **extra,
        "kube_tag": kube_tag,
        "master_lb_allowed_cidrs": ",".join(api_cidrs),
    }


def magnum_group_labels(group: str, *, gpu: bool) -> dict[str, str]:
    """A node group's Magnum labels: its kubelet registers the fedeploy labels and taints."""
    return {"kubelet_options": kubelet_options(node_labels(group, gpu=gpu), node_taints(gpu=gpu))}


def ovh_node_template(group: str, *, gpu: bool) -> dict[str, object]:
    """An OVHcloud node pool's template (metadata labels, spec taints) in its API's shape."""
    return {
        "metadata": {"annotations": {}, "finalizers": [], "labels": node_labels(group, gpu=gpu)},
        "spec": {
            "taints": [
                {"key": t.key, "value": t.value, "effect": t.effect} for t in node_taints(gpu=gpu)
            ],
            "unschedulable": False,
        },
    }
