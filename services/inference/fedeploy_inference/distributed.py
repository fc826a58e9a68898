"""A process group when launched by torchrun (WORLD_SIZE > 1), none otherwise."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist


@contextmanager
def process_group_if_launched() -> Iterator[bool]:
    """Initialise (and later destroy) the process group torchrun's environment describes."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        yield False
        return
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    try:
        yield True
    finally:
        dist.destroy_process_group()
