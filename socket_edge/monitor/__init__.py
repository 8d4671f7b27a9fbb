"""Label-free drift monitoring of a deployed model against the reference statistics its export
recorded (see reference.py for the statistics, core.py for the Monitor). numpy only."""

from __future__ import annotations

from .core import EXIT_CODES, VERDICTS, Monitor, WindowReport, worst
from .watch import WatchConfig, WatchResult, watch

__all__ = [
    "EXIT_CODES",
    "VERDICTS",
    "Monitor",
    "WatchConfig",
    "WatchResult",
    "WindowReport",
    "watch",
    "worst",
]
