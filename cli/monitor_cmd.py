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
    frame_rate: Annotated[
        float | None,
        typer.Option("--frame-rate", min=0.001, help="Frames per second of the stream (Hz)."),
    ] = None,
    false_alarms_per_hour: Annotated[
        float | None,
        typer.Option(
            "--false-alarms-per-hour",
            help="Windows judged drifted per hour of undrifted frames at --frame-rate.",
        ),
    ] = None,
    confirm: Annotated[
        int | None,
        typer.Option("--confirm", min=1, help="Drifted: this many flagged windows ..."),
    ] = None,
    of_last: Annotated[
        int | None, typer.Option("--of-last", min=1, help="... among the last this many.")
    ] = None,
    distinct_classes: Annotated[
        int | None,
        typer.Option(
            "--distinct-classes",
            min=1,
            help="... showing this many different classes (a changed sensor shows in whatever "
            "the robot looks at; 1: any).",
        ),
    ] = None,
    class_mix_alarm: Annotated[
        bool | None,
        typer.Option(
            "--class-mix-alarm/--no-class-mix-alarm",
            help="Let a class mix unlike the reference's flag a window (what the robot looks "
            "at; reported either way).",
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

    Frames are judged in windows of --window frames (sorted file order = time order). Each
    signal (valid-pixel share, raw-value percentiles, top probability, entropy) is compared
    with the reference [bold]re-weighted to the window's class mix[/bold] (estimated from the
    model's outputs; rank tests of location and spread, z scores), so a robot that looks at one
    kind of object for a while is not drift; the class mix is reported on its own line and
    flags a window only with --class-mix-alarm. A window is flagged when its smallest p-value times the number of tests
    is below the per-window level; the verdict: [bold]drifted[/bold] once --confirm of the
    last --of-last windows are flagged and show --distinct-classes different classes (and
    while the windows stay flagged), [bold]drifting[/bold] for a flagged window that is not
    (yet) drifted, [bold]ok[/bold] otherwise. The level is set so that undrifted frames at
    --frame-rate give --false-alarms-per-hour windows judged drifted.

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

    reports, verdict, rule = result.reports, result.verdict, result.rule
    colour = {"ok": "green", "drifting": "yellow", "drifted": "red"}
    names = list(reports[0].signals) if reports else []
    table = Table(
        title=f"{result.artifact.name}: {len(reports)} window(s) of up to {rule['window']} frames"
    )
    table.add_column("win", justify="right")
    table.add_column("n", justify="right")
    for name in names:
        table.add_column(name.replace("_", " "), justify="right")
    table.add_column("p", justify="right")
    table.add_column("class mix")
    table.add_column("verdict")
    for r in reports:
        cells = []
        for name in names:
            s = r.signals.get(name)
            if s is None:
                cells.append("-")
                continue
            z = s["location"] if abs(s["location"]) >= abs(s["spread"]) else s["spread"]
            text = f"{z:+.1f}"
            cells.append(f"[bold red]{text}[/bold red]" if name in r.fired else text)
        mix = r.class_mix
        mix_text = f"{100 * mix['top_share']:.0f}% {mix['top']}" + (" *" if mix["differs"] else "")
        table.add_row(
            str(r.index),
            str(r.frames),
            *cells,
            f"{r.p:.0e}" if r.p < 0.01 else f"{r.p:.2f}",
            mix_text,
            f"[{colour[r.verdict]}]{r.verdict}[/{colour[r.verdict]}]",
        )
    console = Console()
    console.print(table)
    for r in reports:
        if r.class_mix["differs"]:
            console.print(f"window {r.index}: {r.class_mix_line}")
    console.print(
        "signals: the larger z (location or spread, in the JSON) against the reference re-weighted "
        "to the window's class mix (bold red: flagged the window); "
        f"p: smallest p-value x tests; flagged below {rule['window_level']:.2g}, drifted at "
        f"{rule['confirm']} of the last {rule['of_last']} windows flagged, showing "
        f"{rule['distinct_classes']} different classes "
        f"({rule['false_alarms_per_hour']:g} false alarms per hour at {rule['frame_rate']:g} Hz); "
        "*: class mix differs from the reference's"
        + ("" if result.config.class_mix_alarm else " (not drift unless --class-mix-alarm)")
        + f". Verdict: [{colour[verdict]}]{verdict}[/{colour[verdict]}]"
    )


def register(app: typer.Typer) -> None:
    app.command(
        cls=defaults_from("socket_edge.monitor.watch:WatchConfig"),
        epilog=examples(
            "socket-edge monitor depth.onnx robot/frames/ --window 128",
            "socket-edge monitor depth.int8-cpu.onnx frames/ --jsonl - | tee drift.jsonl",
            "socket-edge monitor depth.int8.engine frames/ --json report.json || echo drift",
            "socket-edge monitor depth.onnx drive.mcap --topic /camera/depth/image_rect_raw",
            "socket-edge monitor ir.onnx frames/ --frame-rate 15 --false-alarms-per-hour 0.05",
            "socket-edge monitor depth.onnx frames/ --class-mix-alarm   # the mix counts too",
        ),
    )(monitor)
