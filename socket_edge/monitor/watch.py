"""Frame files through an artifact and its monitor, window by window (`socket-edge monitor`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from ..data.transforms import interpolation_for, resize_center_crop
from ..errors import SocketEdgeError
from .core import EXIT_CODES, Monitor, WindowReport, worst
from .frames import check_frame, list_frames, read_frame


@dataclass(frozen=True)
class WatchConfig:
    window: int = 128  # frames per window
    frame_rate: float = 30.0  # frames per second of the stream (for the hourly rate)
    false_alarms_per_hour: float = 0.1  # windows judged drifted per hour without drift
    confirm: int = 2  # drifted: this many flagged windows ...
    of_last: int = 3  # ... among the last this many
    distinct_classes: int = 2  # ... showing this many different classes (1: any)
    class_mix_alarm: bool = False  # a class mix unlike the reference's flags a window too
    batch: int = 32  # frames per inference batch
    device: str = "cpu"  # ONNX Runtime: cpu, cuda or tensorrt (engines run on their GPU)


@dataclass
class WatchResult:
    artifact: Path
    files: list[Path]
    config: WatchConfig
    reports: list[WindowReport] = field(default_factory=list)
    rule: dict[str, Any] = field(default_factory=dict)  # the window rule, its per-window level

    @property
    def verdict(self) -> str:
        return worst([r.verdict for r in self.reports])

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def window_dict(self, report: WindowReport) -> dict[str, Any]:
        """A window's report with the names of its first and last frame files."""
        d = report.to_dict()
        d["first_file"] = str(self.files[report.first_frame])
        d["last_file"] = str(self.files[report.first_frame + report.frames - 1])
        return d

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifact": str(self.artifact),
            "frames": len(self.files),
            "rule": self.rule,
            "class_mix_alarm": self.config.class_mix_alarm,
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "class_mix_differs": sum(r.class_mix["differs"] for r in self.reports),
            "windows": [self.window_dict(r) for r in self.reports],
        }


def watch(
    artifact: str | Path,
    frames: list[Path],
    config: WatchConfig | None = None,
    on_window: Callable[[WatchResult, WindowReport], None] | None = None,
) -> WatchResult:
    """Run the frame files or folders ``frames`` (sorted = time order) through ``artifact`` and
    compare each window with its reference statistics; ``on_window`` sees each window as it
    closes (the last, shorter one included)."""
    config = config or WatchConfig()
    artifact = Path(artifact)
    bag = _bag_topic(frames)
    files = [] if bag is not None else list_frames(frames)
    if bag is None and not files:
        raise SocketEdgeError("empty window: no frames given")
    mon = _monitor(artifact, config)
    result = WatchResult(artifact, files, config, rule=mon.rule.describe())

    def closed(reports: list[WindowReport]) -> None:
        for r in reports:
            result.reports.append(r)
            if on_window is not None:
                on_window(result, r)

    try:
        frames_in = _frames(mon, bag, files, result)
        while chunk := list(islice(frames_in, config.batch)):
            x = np.stack(
                [
                    resize_center_crop(f, int(mon.image_size), interpolation_for(mon.modality))
                    for f in chunk
                ]
            )
            closed(mon.feed(x, mon.runner.infer(x)))
        last = mon.flush()
        closed([last] if last is not None else [])
    finally:
        mon.close()
    return result


def _monitor(artifact: Path, config: WatchConfig) -> Monitor:
    """The Monitor of ``artifact`` (its runner loaded) with the window and rule of ``config``."""
    runner_options = {"device": config.device} if artifact.suffix.lower() == ".onnx" else {}
    return Monitor.from_artifact(
        artifact,
        window=config.window,
        false_alarms_per_hour=config.false_alarms_per_hour,
        frame_rate=config.frame_rate,
        confirm=config.confirm,
        of_last=config.of_last,
        distinct_classes=config.distinct_classes,
        class_mix_alarm=config.class_mix_alarm,
        runner_options=runner_options,
    )


def _frames(mon: Monitor, bag: Any, files: list[Path], result: WatchResult):
    """Raw frames (C, H, W) in time order: the files, or a bag topic's frames (whose names
    ``result.files`` collects as they are read)."""
    if bag is None:
        yield from (read_frame(p, mon.modality, mon.frame_size) for p in files)
        return
    from ..data.bags import read_frames

    for name, x in read_frames(bag, mon.modality):
        result.files.append(name)  # type: ignore[arg-type]
        yield check_frame(x, mon.modality, mon.frame_size, name)


def _bag_topic(frames: list[Any]) -> Any:
    """The bag topic (``data/bags: BagTopic``) to read instead of files, if ``frames`` is one."""
    topics = [f for f in frames if hasattr(f, "topic")]
    if topics and len(frames) > 1:
        raise SocketEdgeError("monitor reads one bag topic, or frame files and folders; not both")
    return topics[0] if topics else None
