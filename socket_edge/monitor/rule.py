"""How window flags become a verdict over a stream, with false alarms counted per hour.

A window is *flagged* when its combined p-value (reference.py's tests, Bonferroni over the
signals) is below a per-window level ``alpha``. The stream becomes **drifted** when at least
``confirm`` of the last ``of_last`` windows are flagged **and** those flagged windows show at
least ``distinct_classes`` different classes (each window's most frequent class in its
estimated class mix, when its mix is unlike the reference's; a window whose mix is like the
reference's counts as a class of its own), and stays drifted while the windows go on being flagged; **drifting**
is a flagged window that does not (yet) make it drifted; **ok** otherwise.

Why different classes: a changed sensor shows in whatever the robot looks at, while a model
whose outputs do not quite re-weight one class (a weak or badly calibrated model) can flag the
windows of that class one after another while the robot dwells on it; windows of one class
are not independent evidence. The cost: a change is confirmed only once the robot has looked
at a second class (within one dwell of the change), and a robot that only ever sees one class
gets drifting, never drifted (``distinct_classes=1`` drops the condition).

The stated rate is false alarms per hour of frames at ``frame_rate`` Hz: the expected number
of windows judged drifted in an hour of in-distribution frames. With windows of ``window``
frames there are ``3600 * frame_rate / window`` windows an hour; for windows whose flags are
independent under no drift, a window starts a drifted spell with probability at most
``P(Binomial(of_last, alpha) >= confirm)`` and the spell lasts ``1 / (1 - alpha)`` windows on
average, and ``alpha`` is the level that makes these multiply to the stated rate.
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
    distinct_classes: int = 2  # ... when they show this many different classes

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
        if self.distinct_classes < 1:
            raise SocketEdgeError(
                f"distinct_classes must be at least 1, got {self.distinct_classes}",
                settings=("distinct_classes",),
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
        """Windows judged drifted per window, at most, when independent windows are flagged at
        level alpha: P(at least ``confirm`` of ``of_last`` flagged) x the spell's 1 / (1 - alpha)."""
        n, k = self.of_last, self.confirm
        start = sum(math.comb(n, j) * alpha**j * (1 - alpha) ** (n - j) for j in range(k, n + 1))
        return start / (1 - alpha) if alpha < 1 else 1.0

    @property
    def alpha(self) -> float:
        """The per-window level that gives the stated false alarms per hour (bisection)."""
        target = self.false_alarms_per_hour / self.windows_per_hour
        lo, hi = 0.0, 1.0
        for _ in range(100):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if self.alarm_probability(mid) < target else (lo, mid)
        return lo

    def verdict(
        self, flags: list[bool], classes: list[int] | None = None, before: str = "ok"
    ) -> str:
        """The verdict of the latest window given the flags of the windows so far (oldest
        first), their classes (each window's most frequent estimated class; None: all
        different) and the verdict of the window before."""
        if not flags:
            return "ok"
        if flags[-1] and before == "drifted":
            return "drifted"  # the spell goes on while the windows are flagged
        recent = range(max(0, len(flags) - self.of_last), len(flags))
        flagged = [i for i in recent if flags[i]]
        shown = len({classes[i] for i in flagged}) if classes is not None else len(flagged)
        if len(flagged) >= self.confirm and shown >= min(self.distinct_classes, self.confirm):
            return "drifted"
        return "drifting" if flags[-1] else "ok"

    def describe(self) -> dict[str, float | int]:
        return {
            "window": self.window,
            "frame_rate": self.frame_rate,
            "false_alarms_per_hour": self.false_alarms_per_hour,
            "confirm": self.confirm,
            "of_last": self.of_last,
            "distinct_classes": self.distinct_classes,
            "windows_per_hour": self.windows_per_hour,
            "window_level": self.alpha,
        }
