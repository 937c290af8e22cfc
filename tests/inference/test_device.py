"""Device choice, autocast and out-of-memory detection."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from workstation.inference.device import (  # noqa: E402
    DeviceChoice,
    autocast_context,
    choose_device,
    is_out_of_memory,
)

needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")


@needs_no_cuda
def test_auto_picks_the_cpu_here_and_says_why() -> None:
    choice = choose_device()
    if choice.type == "mps":  # pragma: no cover - Apple silicon
        pytest.skip("MPS present")
    assert choice.device == "cpu" and choice.type == "cpu"
    assert "CUDA is not available" in choice.reason
    assert choice.torch_device() == torch.device("cpu")


@needs_no_cuda
def test_asking_for_cuda_without_a_gpu_falls_back_to_the_cpu() -> None:
    choice = choose_device("cuda:0")
    assert choice.device == "cpu" and "CUDA" in choice.reason


def test_cpu_on_request() -> None:
    assert choose_device("CPU") == DeviceChoice("cpu", "the CPU was asked for", "cpu")


@pytest.mark.parametrize("bad", ["gpu", "cpu:1", "cuda:x"])
def test_unknown_preference_is_an_error(bad: str) -> None:
    with pytest.raises(ValueError, match="device preference"):
        choose_device(bad)


def test_autocast_is_a_no_op_on_the_cpu() -> None:
    a = torch.ones(4, 4)
    with autocast_context("cpu"):
        assert (a @ a).dtype == torch.float32


@needs_cuda
def test_cuda_is_chosen_and_autocast_lowers_precision() -> None:  # pragma: no cover - GPU only
    choice = choose_device()
    assert choice.type == "cuda" and "works" in choice.reason
    a = torch.ones(8, 8, device=choice.device)
    with autocast_context(choice):
        assert (a @ a).dtype in (torch.bfloat16, torch.float16)
    with autocast_context(choice, enabled=False):
        assert (a @ a).dtype == torch.float32


def test_out_of_memory_errors_are_recognised() -> None:
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("out of memory"))
    assert is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("shapes do not match"))
    assert not is_out_of_memory(ValueError("out of memory"))
