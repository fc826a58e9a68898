"""Where the model runs: the GPU where there is one and it is allowed, the CPU elsewhere."""

from __future__ import annotations

import torch


class DeviceError(RuntimeError):
    """The requested device cannot be used here."""


def resolve_device(requested: str, cuda_available: bool | None = None) -> torch.device:
    """`auto`: cuda if available else cpu; `cuda`: fails clearly without a GPU; `cpu`: cpu."""
    available = torch.cuda.is_available() if cuda_available is None else cuda_available
    if requested == "cpu":
        return torch.device("cpu")
    if requested == "cuda":
        if not available:
            raise DeviceError(
                "INFER_DEVICE=cuda: no CUDA device is visible to this process "
                "(allowed: auto, cuda, cpu; use auto to fall back to the CPU)"
            )
        return torch.device("cuda")
    if requested == "auto":
        return torch.device("cuda" if available else "cpu")
    raise DeviceError(f"INFER_DEVICE={requested!r}: allowed values are auto, cuda, cpu")
