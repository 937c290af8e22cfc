"""Sliding-window inference: stitching equals a whole-volume pass, cancel, out-of-memory."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from workstation.core.errors import Cancelled  # noqa: E402
from workstation.core.tasks import CancelToken  # noqa: E402
from workstation.inference.device import InferenceError  # noqa: E402
from workstation.inference.sliding_window import (  # noqa: E402
    WindowRun,
    gaussian_importance,
    sliding_window_inference,
    window_starts,
)

RF_RADIUS = 2  # two 3×3×3 convs


def conv_net(seed: int = 0) -> torch.nn.Module:
    """A tiny translation-equivariant conv net: receptive-field radius 2, 2 output channels."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv3d(1, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv3d(4, 2, 3, padding=1),
    ).eval()


class Counting(torch.nn.Module):
    """Wraps a network; counts windows and can cancel a token after ``cancel_after`` windows."""

    def __init__(self, net: torch.nn.Module, token: CancelToken | None = None, cancel_after=0):
        super().__init__()
        self.net, self.token, self.cancel_after, self.windows = net, token, cancel_after, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.windows += x.shape[0]
        if self.token is not None and self.windows >= self.cancel_after:
            self.token.cancel("user cancelled")
        return self.net(x)


class OomAbove(torch.nn.Module):
    """Raises a CUDA-style out-of-memory error for batches larger than ``limit``."""

    def __init__(self, net: torch.nn.Module, limit: int) -> None:
        super().__init__()
        self.net, self.limit, self.batches = net, limit, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(x.shape[0])
        if x.shape[0] > self.limit:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.net(x)


@pytest.fixture
def volume() -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(1).normal(size=(1, 1, 21, 26, 17))).float()


def test_window_starts_cover_the_axis() -> None:
    assert window_starts(10, 16, 8) == [0]
    assert window_starts(20, 8, 4) == [0, 4, 8, 12]
    assert window_starts(21, 8, 4) == [0, 4, 8, 12, 13]


def test_gaussian_importance_peaks_in_the_centre() -> None:
    w = gaussian_importance((9, 8, 7))
    assert w.shape == (9, 8, 7) and w.dtype == np.float32
    assert w[4, 3:5, 3].max() == pytest.approx(1.0, abs=1e-2)
    assert w.min() > 0 and w[0, 0, 0] < 0.01


@pytest.mark.parametrize("batch_size", [1, 3])
def test_stitched_output_equals_whole_volume_pass(volume: torch.Tensor, batch_size: int) -> None:
    net = conv_net()
    with torch.inference_mode():
        whole = net(volume)
        run = WindowRun()
        stitched = sliding_window_inference(
            volume, net, (8, 10, 8), overlap=0.5, batch_size=batch_size, margin=RF_RADIUS, run=run
        )
    assert stitched.shape == whole.shape
    assert run.windows > 8
    torch.testing.assert_close(stitched, whole, atol=1e-5, rtol=1e-5)


def test_gaussian_blending_without_margin_is_close_to_the_whole_pass(
    volume: torch.Tensor,
) -> None:
    net = conv_net()
    with torch.inference_mode():
        whole = net(volume)
        stitched = sliding_window_inference(volume, net, (12, 12, 12), overlap=0.5)
    # Window borders get small Gaussian weights: errors stay rare and small (no margin trim).
    error = (stitched - whole).abs()
    assert float(error.mean()) < 0.05 * float(whole.abs().max())
    assert float(error.median()) < 0.01 * float(whole.abs().max())


def test_volume_smaller_than_patch_keeps_its_shape() -> None:
    x = torch.ones((1, 1, 5, 6, 7))
    with torch.inference_mode():
        out = sliding_window_inference(x, conv_net(), (8, 8, 8))
    assert out.shape == (1, 2, 5, 6, 7)


def test_cancel_stops_within_one_window(volume: torch.Tensor) -> None:
    token = CancelToken()
    net = Counting(conv_net(), token, cancel_after=3)
    reports: list[tuple[int, int]] = []
    with pytest.raises(Cancelled), torch.inference_mode():
        sliding_window_inference(
            volume,
            net,
            (8, 8, 8),
            batch_size=1,
            cancel=token,
            progress=lambda d, t, m="": reports.append((d, t)),
        )
    assert net.windows == 3
    total = reports[0][1]
    assert total > 3 and all(d < total for d, _ in reports)


def test_out_of_memory_halves_the_batch(volume: torch.Tensor) -> None:
    base = conv_net()
    net = OomAbove(base, limit=1)
    run = WindowRun()
    with torch.inference_mode():
        out = sliding_window_inference(
            volume, net, (8, 10, 8), batch_size=4, margin=RF_RADIUS, run=run
        )
        whole = base(volume)
    assert net.batches[:3] == [4, 2, 1]
    assert run.batch_size == 1 and len(run.messages) == 2
    assert "out of memory" in run.messages[0]
    torch.testing.assert_close(out, whole, atol=1e-5, rtol=1e-5)


def test_out_of_memory_on_the_cpu_is_a_clear_error(volume: torch.Tensor) -> None:
    with pytest.raises(InferenceError, match="out of memory on the CPU"), torch.inference_mode():
        sliding_window_inference(volume, OomAbove(conv_net(), limit=0), (8, 8, 8))


def test_other_runtime_errors_propagate(volume: torch.Tensor) -> None:
    net = torch.nn.Conv3d(2, 2, 3)  # wrong channel count
    with pytest.raises(RuntimeError), torch.inference_mode():
        sliding_window_inference(volume, net, (8, 8, 8))


def test_network_that_changes_the_size_is_refused(volume: torch.Tensor) -> None:
    with pytest.raises(InferenceError, match="spatial size"), torch.inference_mode():
        sliding_window_inference(volume, torch.nn.Conv3d(1, 1, 3), (8, 8, 8))


def test_out_of_memory_on_a_gpu_at_batch_one_moves_to_the_cpu() -> None:
    from workstation.inference.sliding_window import _fall_back

    net, run = conv_net(), WindowRun()
    batch, device = _fall_back(net, torch.device("cuda", 0), 1, run)
    assert (batch, device) == (1, torch.device("cpu"))
    assert "continuing on the CPU" in run.messages[0]
    assert next(net.parameters()).device.type == "cpu"
