"""The Monitor: fed frame by frame (or with logits), it reports per window whether the sensor
sees the world as the reference did, and a verdict over the stream: ok, drifting or drifted.

    monitor = Monitor.from_artifact("model.onnx", window=128)
    for frame in camera:                       # raw map, sensor units (depth mm, IR as stored)
        logits, report = monitor.step(frame)   # runs the model; report every 128 frames
        if report is not None and report.verdict != "ok": ...

A robot loop that already has the logits passes them: ``monitor.observe(frame, logits)``
(or ``monitor.observe(logits=logits)``: output signals only). Signals are compared within each
predicted class (reference.py), so what the robot looks at does not count as drift; the class
mix is reported on its own (``report.class_mix``) and alarms only with ``class_mix_alarm``.
Window flags become a verdict by rule.py's k-of-n rule, at a stated number of false alarms per
hour of frames. numpy and the runner interface only: no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.transforms import interpolation_for, resize_center_crop
from ..errors import DataError, SocketEdgeError
from .frames import check_frame
from .reference import CLASSES, ReweightedReference, check_reference, signal_names, softmax
from .rule import WindowRule
from .signals import input_signal_names, input_signals, output_signals

VERDICTS = ("ok", "drifting", "drifted")
EXIT_CODES = {"ok": 0, "drifting": 3, "drifted": 4}


@dataclass
class WindowReport:
    """One window's per-class comparison with the reference, and the stream's verdict."""

    index: int
    first_frame: int
    frames: int
    verdict: str  # the stream's verdict after this window (rule.py)
    flagged: bool  # this window's own p-value is below the per-window level
    p: float  # the window's p-value: smallest test p-value x number of tests (capped at 1)
    level: float  # the per-window level (from the stated false alarms per hour)
    signals: dict[str, dict[str, float]]  # name -> location/spread z, p, frames, dependence, ...
    fired: list[str]  # tests whose own p-value x number of tests is below the level
    inputs: bool  # whether input signals were part of it
    class_mix: dict[str, Any]  # predicted shares, top, estimated mix, total variation, p, ...
    recent: int = 0  # flagged windows among the rule's last of_last
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def class_mix_line(self) -> str:
        """One line for people: whether the class mix differs from the reference's."""
        mix = self.class_mix
        top = f"{100 * mix['top_share']:.0f}% {mix['top']}"
        if mix["differs"]:
            note = "" if mix["alarm"] else " (what the robot sees, not drift)"
            return f"class mix differs from the reference: {top}{note}"
        return f"class mix as the reference's (most frequent: {top})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": self.index,
            "first_frame": self.first_frame,
            "frames": self.frames,
            "verdict": self.verdict,
            "flagged": self.flagged,
            "p": self.p,
            "level": self.level,
            "recent_flagged": self.recent,
            "signals": self.signals,
            "fired": self.fired,
            "inputs": self.inputs,
            "class_mix": {**self.class_mix, "line": self.class_mix_line},
            **self.extra,
        }


class Monitor:
    """Windows of frames compared with an artifact's reference statistics (see module doc)."""

    def __init__(
        self,
        reference: dict[str, Any],
        window: int = 128,
        false_alarms_per_hour: float = 0.1,
        frame_rate: float = 30.0,
        confirm: int = 2,
        of_last: int = 3,
        distinct_classes: int = 2,
        class_mix_alarm: bool = False,
        runner: Any = None,
        image_size: int | None = None,
        class_names: list[str] | None = None,
        seed: int = 0,
        where: str = "artifact",
    ):
        self.reference = check_reference({"reference": reference}, where)
        self.rule = WindowRule(
            window, frame_rate, false_alarms_per_hour, confirm, of_last, distinct_classes
        )
        self.window, self.level = window, self.rule.alpha
        self.class_mix_alarm = class_mix_alarm
        self.runner, self.seed, self.where = runner, seed, where
        self.modality = self.reference["modality"]
        self.k = int(self.reference["classes"])
        self.class_names = list(class_names or [str(c) for c in range(self.k)])
        if len(self.class_names) != self.k:
            raise SocketEdgeError(
                f"{len(self.class_names)} class names for a reference of {self.k} classes"
            )
        frames = self.reference.get("frames") or {}
        self.frame_size = frames.get("frame_size")
        self.image_size = image_size or frames.get("image_size")
        names = signal_names(self.reference, True)
        # the input signals this reference has (one recorded by an older version may lack some)
        self._input_names = tuple(n for n in input_signal_names(self.modality) if n in names)
        self._ref = ReweightedReference(self.reference, names)
        self._pending: list[tuple[dict[str, float], int, bool, np.ndarray]] = []
        self._flags: list[bool] = []
        self._classes: list[int] = []  # each window's class for the rule (see judge)
        self._verdict = "ok"
        self._seen = 0

    @classmethod
    def from_artifact(
        cls, path: str | Path, window: int = 128, load_model: bool = True, **options: Any
    ) -> Monitor:
        """A monitor on the reference in ``path``'s sidecar; with ``load_model``, a runner too
        (ONNX Runtime or TensorRT via socket_edge.runtime), activated."""
        from ..runtime import load_runner

        runner_options = options.pop("runner_options", {})
        runner = load_runner(path, **runner_options)
        doc = runner.info.extra.get("sidecar") or {}
        ref = check_reference(doc, str(path))
        if ref.get("classes") != len(runner.info.classes):
            raise SocketEdgeError(
                f"{path}: reference statistics are for {ref.get('classes')} classes, the model "
                f"has {len(runner.info.classes)}"
            )
        if load_model:
            runner.activate()
        return cls(
            ref,
            window=window,
            runner=runner if load_model else None,
            image_size=runner.info.image_size,
            class_names=list(runner.info.classes),
            where=str(path),
            **options,
        )

    # ------------------------------------------------------------------------------- feeding

    def prepare(self, frames: np.ndarray | list, where: str | Path = "frame") -> np.ndarray:
        """Raw sensor frames -> the model's input batch (N, C, S, S), checked and resized."""
        out = []
        for f in frames:
            a = check_frame(f, self.modality, self.frame_size, where)
            if self.image_size:
                a = resize_center_crop(a, int(self.image_size), interpolation_for(self.modality))
            out.append(a)
        return np.stack(out) if out else np.zeros((0, 1, 1, 1), np.float32)

    def step(self, frame: np.ndarray) -> tuple[np.ndarray, WindowReport | None]:
        """Run the model on one raw frame and observe it: (logits (K,), report or None)."""
        logits, reports = self.step_batch(np.asarray(frame)[None])
        return logits[0], (reports[-1] if reports else None)

    def step_batch(
        self, frames: np.ndarray | list, where: str | Path = "frame"
    ) -> tuple[np.ndarray, list[WindowReport]]:
        """Run the model on raw frames (N, C, H, W) and observe them."""
        if self.runner is None:
            raise SocketEdgeError("this Monitor has no model to run: pass logits to observe()")
        x = self.prepare(frames, where)
        logits = self.runner.infer(x)
        return logits, self.feed(x, logits)

    def observe(
        self, frame: np.ndarray | None = None, logits: np.ndarray | None = None
    ) -> WindowReport | None:
        """One frame (raw map) with its logits (K,); either may be None, not both. Returns the
        report of the window this frame completes, or None."""
        if frame is None and logits is None:
            raise SocketEdgeError("observe() needs a frame, its logits, or both")
        if logits is None:
            return self.step(frame)[1]
        x = None if frame is None else self.prepare([frame])
        reports = self.feed(x, np.asarray(logits, dtype=np.float32)[None])
        return reports[-1] if reports else None

    def observe_batch(
        self, frames: np.ndarray | None = None, logits: np.ndarray | None = None
    ) -> list[WindowReport]:
        """Several frames (N, C, H, W) and/or their logits (N, K) at once."""
        if logits is None:
            return self.step_batch(frames)[1] if frames is not None else []
        x = None if frames is None else self.prepare(frames)
        return self.feed(x, np.asarray(logits, dtype=np.float32))

    def feed(self, x: np.ndarray | None, logits: np.ndarray) -> list[WindowReport]:
        """Prepared model inputs (N, C, S, S) or None, with their logits (N, K)."""
        if logits.ndim != 2 or logits.shape[1] != self.k:
            raise DataError(
                f"logits of shape {logits.shape}: the reference is for {self.k} classes"
            )
        if x is not None and len(x) != len(logits):
            raise DataError(f"{len(x)} frames but {len(logits)} rows of logits")
        out_sig, predicted = output_signals(logits)
        probs = softmax(logits)
        in_sig = input_signals(x, self.modality) if x is not None else {}
        reports = []
        for i in range(len(logits)):
            values = {k: float(v[i]) for k, v in {**in_sig, **out_sig}.items()}
            self._pending.append((values, int(predicted[i]), x is not None, probs[i]))
            if len(self._pending) == self.window:
                reports.append(self._close())
        return reports

    def flush(self) -> WindowReport | None:
        """The report of the frames since the last full window (a shorter window), or None."""
        return self._close() if self._pending else None

    @property
    def pending(self) -> int:
        return len(self._pending)

    # ------------------------------------------------------------------------------- judging

    def judge(
        self,
        values: dict[str, np.ndarray],
        predicted: np.ndarray,
        first_frame: int = 0,
        probs: np.ndarray | None = None,
    ) -> WindowReport:
        """The report of one window given its per-frame signals (time order), predicted
        classes and softmax outputs (n, K; one-hot of ``predicted`` if None); the verdict
        counts this window and the ones judged before it."""
        predicted = np.asarray(predicted, dtype=np.int64)
        n = len(predicted)
        if n == 0:
            raise DataError("empty window: no frames to judge")
        probs = np.eye(self.k)[predicted] if probs is None else np.asarray(probs, np.float64)
        with_input = all(name in values for name in self._input_names)
        names = signal_names(self.reference, with_input)
        q, weights = self._ref.weights(probs)
        tests = {name: self._ref.test(name, values[name], weights) for name in names}
        tv, mix_p = self._ref.mix(predicted, self.seed)
        pvalues = {name: t.p for name, t in tests.items()}
        if self.class_mix_alarm:
            pvalues[CLASSES] = mix_p
        count = len(pvalues)
        adjusted = {name: min(1.0, count * p) for name, p in pvalues.items()}
        p_window = min(adjusted.values())
        flagged = p_window < self.level
        self._flags.append(flagged)
        # The window's class for the rule: its most frequent estimated class when its mix is
        # unlike the reference's, else its own (a window like the reference in mix is no
        # dwelling on one class).
        dwelling = mix_p < self.level
        self._classes.append(int(np.argmax(q)) if dwelling else -len(self._flags))
        verdict = self._verdict = self.rule.verdict(self._flags, self._classes, self._verdict)
        signals = {
            name: {
                "location": t.location,
                "spread": t.spread,
                "p": adjusted[name],
                "frames": t.frames,
                "dependence": t.dependence,
                "reference_size": t.reference_size,
            }
            for name, t in tests.items()
        }
        return WindowReport(
            index=len(self._flags) - 1,
            first_frame=first_frame,
            frames=n,
            verdict=verdict,
            flagged=flagged,
            p=p_window,
            level=self.level,
            signals=signals,
            fired=[name for name, p in adjusted.items() if p < self.level],
            inputs=with_input,
            class_mix=self._class_mix(predicted, q, tv, mix_p),
            recent=int(sum(self._flags[-self.rule.of_last :])),
        )

    def _class_mix(
        self, predicted: np.ndarray, q: np.ndarray, tv: float, mix_p: float
    ) -> dict[str, Any]:
        """The report's class mix: the window's predicted shares, the estimated class
        proportions ``q``, and the mix test against the reference (``tv``, ``mix_p``)."""
        shares = np.bincount(predicted, minlength=self.k)[: self.k] / len(predicted)
        top = int(np.argmax(shares))
        return {
            "shares": {self.class_names[c]: float(shares[c]) for c in np.flatnonzero(shares)},
            "top": self.class_names[top],
            "top_share": float(shares[top]),
            "estimated": {self.class_names[c]: float(q[c]) for c in np.flatnonzero(q >= 0.005)},
            "total_variation": tv,
            "p": mix_p,
            "differs": bool(mix_p < self.level),
            "alarm": self.class_mix_alarm,
        }

    def reset(self) -> None:
        """Forget the pending frames and the windows judged (a new stream)."""
        self._pending, self._flags, self._classes, self._seen = [], [], [], 0
        self._verdict = "ok"

    def _close(self) -> WindowReport:
        pending, self._pending = self._pending, []
        with_input = all(has for _, _, has, _ in pending)
        names = signal_names(self.reference, with_input)
        values = {k: np.asarray([v[k] for v, _, _, _ in pending]) for k in names}
        predicted = np.asarray([c for _, c, _, _ in pending])
        probs = np.stack([p for _, _, _, p in pending])
        report = self.judge(values, predicted, first_frame=self._seen, probs=probs)
        self._seen += len(pending)
        return report

    def close(self) -> None:
        if self.runner is not None:
            self.runner.deactivate()

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def worst(verdicts: list[str]) -> str:
    """The most severe of ``verdicts`` (ok < drifting < drifted)."""
    return max(verdicts, key=VERDICTS.index) if verdicts else "ok"


__all__ = ["CLASSES", "EXIT_CODES", "Monitor", "VERDICTS", "WindowReport", "worst"]
