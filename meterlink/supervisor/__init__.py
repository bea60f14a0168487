"""OTP-style supervision on trio: restart failed children with backoff, give up past an intensity.

Knows nothing of meters. An escalation is `IntensityExceeded` from `Supervisor.run`; behind a
nursery it arrives inside an ExceptionGroup, so catch it with ``except* IntensityExceeded``.
"""

from .policy import Backoff, ChildSpec, Intensity, Restart, Strategy
from .supervisor import ChildState, ChildStatus, IntensityExceeded, Supervisor, exit_code_for

__all__ = [
    "Backoff",
    "ChildSpec",
    "ChildState",
    "ChildStatus",
    "Intensity",
    "IntensityExceeded",
    "Restart",
    "Strategy",
    "Supervisor",
    "exit_code_for",
]
