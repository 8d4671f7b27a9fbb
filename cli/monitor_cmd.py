"""`socket-edge monitor`: label-free drift check of robot frames against an artifact's reference."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from .common import emit_json, examples


def monitor(
    artifact: Path = typer.Argument(
        ..., help="Exported model (.onnx or .engine) whose sidecar holds reference statistics."
    ),
    frames: list[Path] = typer.Argument(
        ..., help="Frame files or folders (searched recursively, in sorted order = time order)."
    ),
    window: int = typer.Option(128, "--window", "-w", min=1, help="Frames per window."),
    false_alarm: float = typer.Option(
        0.01, "--false-alarm", help="Share of in-distribution windows called drifted."
    ),
    warn_rate: float = typer.Option(
        0.05, "--warn-rate", help="Share of in-distribution windows called drifting (or worse)."
    ),
    batch: int = typer.Option(32, "--batch", min=1, help="Frames per inference batch."),
    device: str = typer.Option("cpu", "--device", help="ONNX Runtime: cpu, cuda or tensorrt."),
    jsonl: Path = typer.Option(
        None, "--jsonl", help="One JSON line per window as it closes ('-' = stdout)."
    ),
    json_out: Path = typer.Option(
        None, "--json", help="Write all windows and the verdict as JSON ('-' = stdout)."
    ),
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
    import numpy as np

    from socket_edge.errors import SocketEdgeError
    from socket_edge.monitor import EXIT_CODES, Monitor, worst
    from socket_edge.monitor.frames import list_frames, read_frame, resize_center_crop

    files = list_frames(frames)
    if not files:
        raise SocketEdgeError("empty window: no frames given")
    runner_options = {"device": device} if artifact.suffix.lower() == ".onnx" else {}
    mon = Monitor.from_artifact(
        artifact,
        window=window,
        false_alarm=false_alarm,
        warn_rate=warn_rate,
        runner_options=runner_options,
    )
    stream = _open_stream(jsonl)
    reports = []
    try:
        for start in range(0, len(files), batch):
            chunk = files[start : start + batch]
            x = [
                resize_center_crop(
                    read_frame(p, mon.modality, mon.frame_size), int(mon.image_size), mon.modality
                )
                for p in chunk
            ]
            batch_x = np.stack(x)
            new = mon.feed(batch_x, mon.runner.infer(batch_x))
            for r in new:
                _emit(stream, r, files)
            reports += new
        last = mon.flush()
        if last is not None:
            _emit(stream, last, files)
            reports.append(last)
    finally:
        mon.close()
        if stream is not None and stream is not sys.stdout:
            stream.close()
    verdict = worst([r.verdict for r in reports])
    if str(json_out) != "-" and str(jsonl) != "-":
        _table(artifact, reports, verdict, window)
    emit_json(
        {
            "artifact": str(artifact),
            "frames": len(files),
            "window": window,
            "false_alarm": false_alarm,
            "warn_rate": warn_rate,
            "verdict": verdict,
            "exit_code": EXIT_CODES[verdict],
            "windows": [_with_files(r, files) for r in reports],
        },
        json_out,
    )
    raise typer.Exit(EXIT_CODES[verdict])


def _open_stream(path: Path | None):
    if path is None:
        return None
    if str(path) == "-":
        return sys.stdout
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "w", encoding="utf-8")  # a log that grows as windows close


def _with_files(report, files: list[Path]) -> dict:
    d = report.to_dict()
    d["first_file"] = str(files[report.first_frame])
    d["last_file"] = str(files[report.first_frame + report.frames - 1])
    return d


def _emit(stream, report, files: list[Path]) -> None:
    if stream is not None:
        stream.write(json.dumps(_with_files(report, files)) + "\n")
        stream.flush()


def _table(artifact: Path, reports, verdict: str, window: int) -> None:
    from rich.console import Console
    from rich.table import Table

    colour = {"ok": "green", "drifting": "yellow", "drifted": "red"}
    names = list(reports[0].signals) if reports else []
    table = Table(title=f"{artifact.name}: {len(reports)} window(s) of up to {window} frames")
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
        epilog=examples(
            "socket-edge monitor depth.onnx robot/frames/ --window 128",
            "socket-edge monitor depth.int8-cpu.onnx frames/ --jsonl - | tee drift.jsonl",
            "socket-edge monitor depth.int8.engine frames/ --json report.json || echo drift",
        )
    )(monitor)
