"""`socket-edge monitor`: label-free drift check of robot frames against an artifact's reference."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from .choices import OrtDevice
from .common import Every, JsonOut, Stride, defaults_from, emit_json, examples, sampling, settings


def monitor(
    ctx: typer.Context,
    artifact: Annotated[
        Path,
        typer.Argument(
            help="Exported model (.onnx or .engine) whose sidecar holds reference statistics."
        ),
    ],
    frames: Annotated[
        list[Path],
        typer.Argument(
            help="Frame files or folders (searched recursively, in sorted order = time order), "
            "or one bag (.bag, .db3, .mcap) with --topic."
        ),
    ],
    window: Annotated[
        int | None, typer.Option("--window", "-w", min=1, help="Frames per window.")
    ] = None,
    false_alarm: Annotated[
        float | None,
        typer.Option("--false-alarm", help="Share of in-distribution windows called drifted."),
    ] = None,
    warn_rate: Annotated[
        float | None,
        typer.Option(
            "--warn-rate", help="Share of in-distribution windows called drifting (or worse)."
        ),
    ] = None,
    batch: Annotated[
        int | None, typer.Option("--batch", min=1, help="Frames per inference batch.")
    ] = None,
    device: Annotated[
        OrtDevice | None, typer.Option("--device", help="ONNX Runtime's device.")
    ] = None,
    jsonl: Annotated[
        Path | None,
        typer.Option("--jsonl", help="One JSON line per window as it closes ('-' = stdout)."),
    ] = None,
    json_out: JsonOut = None,
    topic: Annotated[str | None, typer.Option("--topic", help="The bag's image topic.")] = None,
    every: Every = None,
    stride: Stride = None,
) -> None:
    """Compare robot frames with the model's reference statistics, without labels.

    Per window of --window frames: each signal's distance to the reference (KS statistic for
    valid-pixel share, raw-value percentiles, top probability and entropy; total variation for
    the predicted class shares), and a verdict: [bold]ok[/bold], [bold]drifting[/bold] (past
    the --warn-rate threshold) or [bold]drifted[/bold] (past the --false-alarm threshold).
    Thresholds come from held-back in-distribution frames, for the combination of signals. A
    last window shorter than --window is judged with thresholds for its own size.

    Exit code: 0 every window ok, 3 some window drifting, 4 some window drifted; 2 bad input.
    Runs on ONNX Runtime or TensorRT; no torch needed.
    """
    from socket_edge.data.bags import check_sampled, is_bag, source
    from socket_edge.monitor import WatchConfig, watch

    if topic is not None or every or stride or any(is_bag(f) for f in frames):
        frames = [source(f, topic, sampling(every, stride)) for f in frames]
        check_sampled(sampling(every, stride), *frames)
    lines = _Lines(jsonl)
    try:
        result = watch(
            artifact,
            frames,
            settings(WatchConfig, ctx, None),
            on_window=lambda res, r: lines.write(res.window_dict(r)),
        )
    finally:
        lines.close()
    if str(json_out) != "-" and str(jsonl) != "-":
        _table(result)
    emit_json(result.to_dict(), json_out)
    raise typer.Exit(result.exit_code)


class _Lines:
    """--jsonl: one JSON line per window, flushed as it closes; the file opens with the first."""

    def __init__(self, path: Path | None):
        self.path, self.stream = path, None

    def write(self, window: dict) -> None:
        if self.path is None:
            return
        if self.stream is None:
            if str(self.path) == "-":
                self.stream = sys.stdout
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.stream = open(self.path, "w", encoding="utf-8")  # noqa: SIM115
        self.stream.write(json.dumps(window) + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.stream is not None and self.stream is not sys.stdout:
            self.stream.close()


def _table(result) -> None:
    from rich.console import Console
    from rich.table import Table

    reports, verdict, window = result.reports, result.verdict, result.config.window
    colour = {"ok": "green", "drifting": "yellow", "drifted": "red"}
    names = list(reports[0].signals) if reports else []
    table = Table(
        title=f"{result.artifact.name}: {len(reports)} window(s) of up to {window} frames"
    )
    table.add_column("window", justify="right")
    table.add_column("frames", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    table.add_column("verdict")
    for r in reports:
        cells = []
        for name in names:
            s = r.signals.get(name)
            if s is None:
                cells.append("-")
                continue
            text = f"{s['distance']:.3f}"
            cells.append(f"[bold red]{text}[/bold red]" if name in r.fired else text)
        table.add_row(
            str(r.index),
            str(r.frames),
            *cells,
            f"[{colour[r.verdict]}]{r.verdict}[/{colour[r.verdict]}]",
        )
    console = Console()
    console.print(table)
    console.print(
        "distances: KS statistic (signals), total variation (classes); bold red: past the "
        f"drifted threshold. Verdict: [{colour[verdict]}]{verdict}[/{colour[verdict]}]"
    )


def register(app: typer.Typer) -> None:
    app.command(
        cls=defaults_from("socket_edge.monitor.watch:WatchConfig"),
        epilog=examples(
            "socket-edge monitor depth.onnx robot/frames/ --window 128",
            "socket-edge monitor depth.int8-cpu.onnx frames/ --jsonl - | tee drift.jsonl",
            "socket-edge monitor depth.int8.engine frames/ --json report.json || echo drift",
            "socket-edge monitor depth.onnx drive.mcap --topic /camera/depth/image_rect_raw",
        ),
    )(monitor)
