"""Qt-free, dependency-light foundation: Volume, errors, progress and cancel protocols."""

from workstation.core.errors import Cancelled, WorkstationError
from workstation.core.tasks import CancelToken, Progress, ProgressFn, check_cancel, throttled
from workstation.core.volume import Volume

__all__ = [
    "CancelToken",
    "Cancelled",
    "Progress",
    "ProgressFn",
    "Volume",
    "WorkstationError",
    "check_cancel",
    "throttled",
]
