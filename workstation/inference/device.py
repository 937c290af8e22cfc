"""Device choice, mixed precision and out-of-memory detection for local inference.

:func:`choose_device` prefers CUDA when a GPU is present *and works* (a tiny kernel runs and
returns the right answer), then Apple MPS, then the CPU, and says why. :func:`autocast_context`
gives bf16 (or fp16) autocast on CUDA and does nothing elsewhere. :func:`is_out_of_memory`
recognises the ways torch reports an exhausted device so callers can retry smaller or on the CPU.

torch is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workstation.core.errors import WorkstationError

if TYPE_CHECKING:
    import torch

__all__ = [
    "DeviceChoice",
    "InferenceError",
    "autocast_context",
    "choose_device",
    "empty_cache",
    "is_out_of_memory",
]

log = logging.getLogger(__name__)

_PREFERENCES = ("auto", "cuda", "mps", "cpu")


class InferenceError(WorkstationError):
    """Inference could not run (no memory left on any device, bad input spec, bad model output)."""


@dataclass(frozen=True)
class DeviceChoice:
    """The device inference runs on, and why it was chosen.

    Parameters
    ----------
    device
        A torch device string: ``"cuda:0"``, ``"mps"`` or ``"cpu"``.
    reason
        Human-readable explanation (shown in the UI and stored with results).
    name
        The hardware name where known (GPU model), else the device string.
    """

    device: str
    reason: str
    name: str = ""

    @property
    def type(self) -> str:
        """``"cuda"``, ``"mps"`` or ``"cpu"``."""
        return self.device.split(":", 1)[0]

    def torch_device(self) -> torch.device:
        """The :class:`torch.device` for :attr:`device`."""
        import torch

        return torch.device(self.device)


def _kernel_works(device: torch.device) -> str | None:
    """Run a tiny conv on ``device``; ``None`` when it works, else why not."""
    import torch

    try:
        x = torch.ones((1, 1, 4, 4, 4), device=device)
        w = torch.ones((1, 1, 3, 3, 3), device=device)
        y = torch.nn.functional.conv3d(x, w, padding=1)
        value = float(y[0, 0, 1, 1, 1].item())
    except RuntimeError as e:  # CUDA / MPS driver and kernel errors are RuntimeErrors
        return f"a test kernel failed: {e}"
    if value != 27.0:
        return f"a test kernel returned {value}, expected 27"
    return None


def _try_cuda(index: int) -> DeviceChoice | str:
    import torch

    if not torch.cuda.is_available():
        return "CUDA is not available (no NVIDIA GPU or driver, or a CPU-only torch build)"
    if index >= torch.cuda.device_count():
        return f"there is no CUDA device {index} ({torch.cuda.device_count()} present)"
    device = torch.device("cuda", index)
    problem = _kernel_works(device)
    if problem is not None:
        return f"CUDA device {index} is present but {problem}"
    name = torch.cuda.get_device_name(index)
    free, total = torch.cuda.mem_get_info(index)
    reason = f"CUDA GPU {name} works ({free / 2**30:.1f} of {total / 2**30:.1f} GiB free)"
    return DeviceChoice(f"cuda:{index}", reason, name)


def _try_mps() -> DeviceChoice | str:
    import torch

    backend = getattr(torch.backends, "mps", None)
    if backend is None or not backend.is_available():
        return "MPS is not available (not an Apple-silicon Mac)"
    problem = _kernel_works(torch.device("mps"))
    if problem is not None:
        return f"MPS is present but {problem}"
    return DeviceChoice("mps", "Apple MPS GPU works", "mps")


def choose_device(preference: str = "auto") -> DeviceChoice:
    """Pick the device to run inference on.

    Parameters
    ----------
    preference
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cuda"`` / ``"cuda:N"``, ``"mps"`` or ``"cpu"``.
        An accelerator that was asked for but does not work falls back to the CPU; the reason
        says so (a warning, not an error, so a study can still be analysed).

    Returns
    -------
    DeviceChoice
        The device string and the reason it was chosen.
    """
    pref = preference.strip().lower()
    kind, _, idx = pref.partition(":")
    if kind not in _PREFERENCES or (idx and (kind != "cuda" or not idx.isdigit())):
        raise ValueError(f"unknown device preference {preference!r}; use one of {_PREFERENCES}")
    if kind == "cpu":
        return DeviceChoice("cpu", "the CPU was asked for", "cpu")
    problems: list[str] = []
    if kind in ("auto", "cuda"):
        got = _try_cuda(int(idx or 0))
        if isinstance(got, DeviceChoice):
            return got
        problems.append(got)
    if kind in ("auto", "mps"):
        got = _try_mps()
        if isinstance(got, DeviceChoice):
            return got
        problems.append(got)
    reason = "CPU: " + "; ".join(problems)
    if kind != "auto":
        log.warning("%s was asked for but is unusable, running on the CPU: %s", kind, reason)
    return DeviceChoice("cpu", reason, "cpu")


def _device_type(device: DeviceChoice | str | Any) -> str:
    if isinstance(device, DeviceChoice):
        return device.type
    return str(getattr(device, "type", device)).split(":", 1)[0]


@contextlib.contextmanager
def autocast_context(device: DeviceChoice | str | Any, *, enabled: bool = True) -> Iterator[None]:
    """Mixed precision for ``device``: bf16 autocast on CUDA (fp16 where bf16 is unsupported).

    On the CPU and MPS this does nothing: CPU autocast is slower than float32 for 3D convs on
    most hardware, and MPS autocast support varies by torch version.
    """
    if not enabled or _device_type(device) != "cuda":
        yield
        return
    import torch

    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    with torch.autocast("cuda", dtype=dtype):
        yield


def is_out_of_memory(error: BaseException) -> bool:
    """True for torch's ways of saying a device ran out of memory."""
    import torch

    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(error, oom):
        return True
    if isinstance(error, (RuntimeError, MemoryError)):
        text = str(error).lower()
        return isinstance(error, MemoryError) or "out of memory" in text
    return False


def empty_cache(device: DeviceChoice | str | Any) -> None:
    """Release cached allocator blocks on ``device`` after an out-of-memory error."""
    import torch

    kind = _device_type(device)
    if kind == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif kind == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()
