"""How window flags become a verdict over a stream, with false alarms counted per hour.

A window is *flagged* when its combined p-value (reference.py's per-class tests, Bonferroni
over the signals) is below a per-window level ``alpha``. The stream is judged **drifted** while
at least ``confirm`` of the last ``of_last`` windows are flagged, **drifting** when the
current window is flagged but that is not yet so, **ok** otherwise.

The stated rate is false alarms per hour of frames at ``frame_rate`` Hz: the expected number
of windows judged drifted in an hour of in-distribution frames. With windows of ``window``
frames there are ``3600 * frame_rate / window`` windows an hour; for windows whose flags are
independent under no drift, each is judged drifted with probability
``P(Binomial(of_last, alpha) >= confirm)``, and ``alpha`` is the level that makes the two
multiply to the stated rate. A sustained change is confirmed within ``confirm`` windows of
its start (``confirm * window`` frames) when every window sees it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import SocketEdgeError


@dataclass(frozen=True)
class WindowRule:
    window: int = 128  # frames per window
    frame_rate: float = 30.0  # frames per second the stream comes at
    false_alarms_per_hour: float = 0.1  # windows judged drifted per hour without drift
    confirm: int = 2  # flagged windows ...
    of_last: int = 3  # ... among the last this many (the current included) make drifted

    def __post_init__(self) -> None:
        if self.window < 1:
            raise SocketEdgeError(
                f"window must be at least 1 frame, got {self.window}", settings=("window",)
            )
        if not self.frame_rate > 0:
            raise SocketEdgeError(
                f"frame_rate must be positive, got {self.frame_rate}", settings=("frame_rate",)
            )
        if not 1 <= self.confirm <= self.of_last:
            raise SocketEdgeError(
                f"need 1 <= confirm ({self.confirm}) <= of_last ({self.of_last})",
                settings=("confirm", "of_last"),
            )
        if not 0 < self.false_alarms_per_hour < self.windows_per_hour:
            raise SocketEdgeError(
                f"false_alarms_per_hour must lie in (0, {self.windows_per_hour:g}) (the windows "
                f"in an hour at {self.frame_rate:g} Hz), got {self.false_alarms_per_hour}",
                settings=("false_alarms_per_hour",),
            )

    @property
    def windows_per_hour(self) -> float:
        return 3600.0 * self.frame_rate / self.window

    def alarm_probability(self, alpha: float) -> float:
        """P(at least ``confirm`` of ``of_last`` independent windows flagged at level alpha)."""
        n, k = self.of_last, self.confirm
        return sum(math.comb(n, j) * alpha**j * (1 - alpha) ** (n - j) for j in range(k, n + 1))

    @property
    def alpha(self) -> float:
        """The per-window level that gives the stated false alarms per hour (bisection)."""
        target = self.false_alarms_per_hour / self.windows_per_hour
        lo, hi = 0.0, 1.0
        for _ in range(100):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if self.alarm_probability(mid) < target else (lo, mid)
        return lo

    def verdict(self, flags: list[bool]) -> str:
        """The verdict of the latest window given the flags of the windows so far (oldest first)."""
        if sum(flags[-self.of_last :]) >= self.confirm:
            return "drifted"
        return "drifting" if flags and flags[-1] else "ok"

    def describe(self) -> dict[str, float | int]:
        return {
            "window": self.window,
            "frame_rate": self.frame_rate,
            "false_alarms_per_hour": self.false_alarms_per_hour,
            "confirm": self.confirm,
            "of_last": self.of_last,
            "windows_per_hour": self.windows_per_hour,
            "window_level": self.alpha,
        }
