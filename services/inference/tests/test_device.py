"""Device choice: the GPU where there is one and it is allowed, a clear error where required."""

import pytest
import torch
from fedeploy_inference.device import DeviceError, resolve_device


@pytest.mark.parametrize(
    ("requested", "cuda", "expected"),
    [("auto", True, "cuda"), ("auto", False, "cpu"), ("cpu", True, "cpu"), ("cuda", True, "cuda")],
)
def test_device_resolution(requested, cuda, expected):
    assert resolve_device(requested, cuda_available=cuda).type == expected


def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(DeviceError, match="INFER_DEVICE=cuda: no CUDA device"):
        resolve_device("cuda", cuda_available=False)


def test_unknown_device_names_the_allowed_values():
    with pytest.raises(DeviceError, match="auto, cuda, cpu"):
        resolve_device("tpu", cuda_available=False)


def test_auto_here_matches_what_torch_sees():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
