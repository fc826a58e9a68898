"""The kubeconfig of an EKS cluster: tokens come from `aws eks get-token`, never a static secret."""

from __future__ import annotations

import yaml


def eks_kubeconfig(*, name: str, endpoint: str, certificate_authority: str, region: str) -> str:
    """A kubeconfig for one EKS cluster, authenticating with the caller's AWS identity."""
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {
                    "server": endpoint,
                    "certificate-authority-data": certificate_authority,
                },
            }
        ],
        "users": [
            {
                "name": name,
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": "aws",
                        "args": ["eks", "get-token", "--cluster-name", name, "--region", region],
                        "interactiveMode": "Never",
                    }
                },
            }
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }
    return yaml.safe_dump(document, sort_keys=True)
