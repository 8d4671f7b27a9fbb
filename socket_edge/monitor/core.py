"""The Monitor: fed frame by frame (or with logits), it reports per window how far the robot's
data has moved from the reference, and a verdict: ok, drifting or drifted.

    monitor = Monitor.from_artifact("model.onnx", window=128)
    for frame in camera:                       # raw map, sensor units (depth mm, IR as stored)
        logits, report = monitor.step(frame)   # runs the model; report every 128 frames
        if report is not None and report.verdict != "ok": ...

A robot loop that already has the logits passes them: ``monitor.observe(frame, logits)``
(or ``monitor.observe(logits=logits)``: output signals only). numpy and the runner interface
only: no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.transforms import interpolation_for, resize_center_crop
from ..errors import DataError, SocketEdgeError
from .frames import check_frame
from .reference import CLASSES, NullModel, check_reference, distances, signal_names
from .signals import input_signal_names, input_signals, output_signals

VERDICTS = ("ok", "drifting", "drifted")
EXIT_CODES = {"ok": 0, "drifting": 3, "drifted": 4}


@dataclass
class WindowReport:
    """One window's distances to the reference and its verdict."""

    index: int
    first_frame: int
    frames: int
    verdict: str
    score: float  # smallest exceedance level over the signals (lower = further from reference)
    thresholds: dict[str, float]  # score thresholds: drifting, drifted
    signals: dict[str, dict[str, float]]  # name -> distance, level, limit
    fired: list[str]  # signals whose own level is past the drifted threshold
    inputs: bool  # whether input signals were part of it
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": self.index,
            "first_frame": self.first_frame,
            "frames": self.frames,
            "verdict": self.verdict,
            "score": self.score,
            "thresholds": self.thresholds,
            "signals": self.signals,
            "fired": self.fired,
            "inputs": self.inputs,
            **self.extra,
        }


class Monitor:
    """Windows of frames compared with an artifact's reference statistics (see module doc)."""

    def __init__(
        self,
        reference: dict[str, Any],
        window: int = 128,
        false_alarm: float = 0.01,
        warn_rate: float = 0.05,
        runner: Any = None,
        image_size: int | None = None,
        seed: int = 0,
        where: str = "artifact",
    ):
        self.reference = check_reference({"reference": reference}, where)
        if window < 1:
            raise SocketEdgeError(
                f"window must be at least 1 frame, got {window}", settings=("window",)
            )
        if not 0 < false_alarm <= warn_rate < 1:
            raise SocketEdgeError(
                f"need 0 < false_alarm ({false_alarm}) <= warn_rate ({warn_rate}) < 1",
                settings=("false_alarm", "warn_rate"),
            )
        self.window, self.false_alarm, self.warn_rate = window, false_alarm, warn_rate
        self.runner, self.seed, self.where = runner, seed, where
        self.modality = self.reference["modality"]
        self.k = int(self.reference["classes"])
        frames = self.reference.get("frames") or {}
        self.frame_size = frames.get("frame_size")
        self.image_size = image_size or frames.get("image_size")
        self._input_names = input_signal_names(self.modality)
        self._nulls: dict[tuple[int, bool], NullModel] = {}
        self._pending: list[tuple[dict[str, float], int, bool]] = []
        self._seen = 0
        self._windows = 0

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
        in_sig = input_signals(x, self.modality) if x is not None else {}
        reports = []
        for i in range(len(logits)):
            values = {k: float(v[i]) for k, v in {**in_sig, **out_sig}.items()}
            self._pending.append((values, int(predicted[i]), x is not None))
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

    def null(self, size: int, with_input: bool) -> NullModel:
        """The in-distribution distances of ``size``-frame windows (computed once per size)."""
        key = (size, with_input)
        if key not in self._nulls:
            names = signal_names(self.reference, with_input)
            self._nulls[key] = NullModel(self.reference, size, names, True, seed=self.seed)
        return self._nulls[key]

    def judge(
        self, values: dict[str, np.ndarray], predicted: np.ndarray, first_frame: int = 0
    ) -> WindowReport:
        """The report of one window given its per-frame signals and predicted classes."""
        n = len(predicted)
        if n == 0:
            raise DataError("empty window: no frames to judge")
        with_input = all(name in values for name in self._input_names)
        names = signal_names(self.reference, with_input)
        null = self.null(n, with_input)
        dist = distances(
            self.reference,
            {k: np.asarray(values[k], dtype=np.float64)[None] for k in names},
            np.asarray(predicted)[None],
        )
        d = {k: float(v[0]) for k, v in dist.items()}
        levels = null.levels(d)
        score = min(levels.values())
        t_drifted = null.threshold(self.false_alarm)
        t_drifting = null.threshold(self.warn_rate)
        verdict = "drifted" if score < t_drifted else "drifting" if score < t_drifting else "ok"
        signals = {
            k: {
                "distance": d[k],
                "level": levels[k],
                "limit": null.distance_threshold(k, self.false_alarm),
            }
            for k in d
        }
        fired = [k for k in d if levels[k] < t_drifted]
        self._windows += 1
        return WindowReport(
            index=self._windows - 1,
            first_frame=first_frame,
            frames=n,
            verdict=verdict,
            score=score,
            thresholds={"drifting": t_drifting, "drifted": t_drifted},
            signals=signals,
            fired=fired,
            inputs=with_input,
        )

    def _close(self) -> WindowReport:
        pending, self._pending = self._pending, []
        with_input = all(has for _, _, has in pending)
        names = signal_names(self.reference, with_input)
        values = {k: np.asarray([v[k] for v, _, _ in pending]) for k in names}
        predicted = np.asarray([c for _, c, _ in pending])
        report = self.judge(values, predicted, first_frame=self._seen)
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
