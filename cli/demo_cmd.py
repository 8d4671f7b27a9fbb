"""`socket-edge demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .choices import Modality
from .common import JsonOut, config_option, defaults_from, emit_json, examples, settings


def demo(
    ctx: typer.Context,
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for data, models and artifacts.")
    ] = None,
    modality: Annotated[
        Modality | None, typer.Option("--modality", help="Target modality.")
    ] = None,
    quick: Annotated[
        bool | None,
        typer.Option(
            "--quick",
            help="A smoke test of every step (a few minutes; its barely trained models score near chance).",
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option("--device", help="cpu or cuda for training and adaptation."),
    ] = None,
    config: config_option("demo", "sets defaults") = None,
    json_out: JsonOut = None,
) -> None:
    """Run the whole pipeline on the built-in benchmark: synth -> train-source -> adapt
    (source-only and SOCKET) -> export FP32 + INT8 (+ engines where TensorRT is present) -> bench.

    Ends with one table: accuracy of the RGB model on the target modality, after SOCKET and after
    INT8, the latency of each artifact, and where every file went. Steps whose output already
    exists are skipped, so a stopped demo continues where it was.
    """
    from rich.console import Console

    from socket_edge.demo import DemoConfig, run_demo

    summary = run_demo(settings(DemoConfig, ctx, "demo"))
    print_summary(summary, Console(stderr=str(json_out) == "-"))
    emit_json(summary, json_out)


def print_summary(summary: dict, console) -> None:
    from rich.markup import escape
    from rich.table import Table

    acc = summary["accuracy"]
    m = summary["modality"]

    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}%"

    table = Table(title=f"socket-edge demo: RGB -> {m} ({summary['seconds'] / 60:.1f} min)")
    table.add_column("model")
    table.add_column(f"top-1 on {m} test", justify="right")
    table.add_column("p50 latency, batch 1", justify="right")
    lat = summary["latency_ms_p50"]
    files = summary["files"]
    socket_pt = Path(files["adapted"]["socket"]).name
    table.add_row("RGB model (on RGB val)", pct(acc["rgb_model_on_rgb_val"]), "")
    table.add_row(f"RGB model used as is on {m}", pct(acc["rgb_model_on_target"]), "")
    table.add_row(f"after SOCKET ({socket_pt})", pct(acc["after_socket"]), _ms(lat.get(socket_pt)))
    for artifact in files["artifacts"]:
        name = Path(artifact).name
        top1 = next(
            (
                v
                for k, v in (
                    ("int8-cpu", acc["after_int8_cpu"]),
                    ("int8.onnx", acc["after_int8_qdq"]),
                )
                if k in name
            ),
            None,
        )
        label = f"after INT8 ({name})" if "int8" in name else f"exported ({name})"
        table.add_row(label, pct(top1) if "int8" in name else "", _ms(lat.get(name)))
    refused = summary.get("int8_refused")
    if refused:
        table.add_row("after INT8", "refused by the gate", "")
    console.print(table)
    if refused:
        console.print(f"INT8 not written: {escape(refused)}")
    console.print("[bold]files[/bold]")
    console.print(f"  data:      {files['data']}")
    console.print(f"  RGB model: {files['source_model']}")
    for method, path in files["adapted"].items():
        console.print(f"  {method:10s} {path}")
    for artifact in files["artifacts"]:
        console.print(f"  artifact:  {artifact} (+ sidecar)")
    console.print(f"  bench:     {files['bench']}")


def _ms(value) -> str:
    return "" if value is None else f"{value:.2f} ms"


def register(app: typer.Typer) -> None:
    app.command(
        cls=defaults_from("socket_edge.demo:DemoConfig"),
        epilog=examples(
            "socket-edge demo",
            "socket-edge demo --modality ir --out demo-ir",
            "socket-edge demo --quick",
        ),
    )(demo)
