"""modelgif.devices: the one rule by which the stages and the library pick a device."""

import pytest
import torch

from modelgif.devices import resolve_device
from modelgif.errors import InputError

CUDA = torch.cuda.is_available()


def test_auto_is_cuda_where_torch_sees_one_else_the_cpu_or_the_numpy_path():
    expected = torch.device("cuda") if CUDA else torch.device("cpu")
    assert resolve_device() == resolve_device("auto") == expected
    assert resolve_device(None, numpy=True) == resolve_device("auto", numpy=True) == (
        torch.device("cuda") if CUDA else None)
    assert resolve_device("numpy", numpy=True) is None
    assert resolve_device("cpu") == resolve_device("cpu", numpy=True) == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_an_unknown_device_or_a_missing_gpu_is_named():
    with pytest.raises(InputError, match=r"^unknown device 'gpu9'"):
        resolve_device("gpu9")
    with pytest.raises(InputError, match=r"^unknown device 'numpy'"):  # only where the caller has a numpy path
        resolve_device("numpy")
    if CUDA:
        assert resolve_device("cuda:0") == torch.device("cuda:0")
    else:
        with pytest.raises(InputError, match=r"^device 'cuda:0' asked for, but CUDA is not available$"):
            resolve_device("cuda:0")
