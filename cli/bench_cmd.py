"""`socket-edge bench`: latency, accuracy and energy of artifacts, side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import (
    JsonOut,
    config_option,
    defaults_from,
    emit_json,
    examples,
    parse_int_list,
    settings,
)


def bench(
    ctx: typer.Context,
    artifacts: Annotated[
        list[Path],
        typer.Argument(
            help="Checkpoints (.pt), ONNX models (.onnx, INT8 too) and TensorRT engines "
            "(.engine), in any mix; the first is the reference for agreement."
        ),
    ],
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="Target images: labelled DIR/<class>/<image> (top-1 + agreement) "
            "or a flat folder (agreement only).",
        ),
    ],
    batch: Annotated[
        str | None, typer.Option("--batch", help="Batch sizes to time, e.g. 1,8.")
    ] = None,
    warmup_s: Annotated[
        float | None,
        typer.Option(
            "--warmup-s", min=0, help="Warm-up seconds before timing each artifact and batch."
        ),
    ] = None,
    duration_s: Annotated[
        float | None,
        typer.Option("--duration-s", min=0, help="Seconds of timed runs (at least 10 iterations)."),
    ] = None,
    iterations: Annotated[
        int | None,
        typer.Option("--iterations", min=1, help="Exactly N timed runs instead of --duration-s."),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads", min=1, help="CPU threads for torch / ONNX Runtime (default: theirs)."
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            "--device",
            help="cpu (default), cuda[:N] (torch, ONNX Runtime) or tensorrt "
            "(ONNX Runtime's TensorRT provider).",
        ),
    ] = None,
    trtexec: Annotated[
        bool | None,
        typer.Option(
            "--trtexec",
            help="Engines: also run NVIDIA's trtexec (where on PATH) and show its GPU compute "
            "p50/p99 (device clock, no host-device copies) beside socket-edge's figures.",
        ),
    ] = None,
    accuracy: Annotated[
        bool | None,
        typer.Option(
            "--accuracy/--no-accuracy", help="Run the whole data set for top-1 and agreement."
        ),
    ] = None,
    power: Annotated[
        bool | None,
        typer.Option(
            "--power/--no-power",
            help="Sample power (tegrastats on a Jetson, NVML on an NVIDIA GPU) for energy per "
            "image.",
        ),
    ] = None,
    cv_warn: Annotated[
        float | None,
        typer.Option(
            "--cv-warn",
            min=0,
            help="Warn when latency's coefficient of variation exceeds it.",
        ),
    ] = None,
    no_verify: Annotated[
        bool,
        typer.Option(
            "--no-verify",
            help="Do not check artifacts against their sidecars (sha256, metadata, lineage).",
        ),
    ] = False,
    config: config_option("bench") = None,
    json_out: JsonOut = None,
    md_out: Annotated[
        Path | None, typer.Option("--md", help="Write the table as Markdown.")
    ] = None,
    plot_out: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="Write accuracy vs latency as PNG (needs matplotlib: extra 'plot').",
        ),
    ] = None,
) -> None:
    """Latency (min/mean/p50/p90/p99/max, images/s, CV), top-1, per-class accuracy, agreement with
    the first artifact, peak memory and (on a Jetson or NVIDIA GPU) energy per image.

    Latency is the host wall clock around each inference call; CUDA runners synchronise before
    returning. An artifact that is missing, cannot load or does not fit the data gets an error
    row and the others still run; the exit code is 2 if any row failed.
    """
    from socket_edge.bench import BenchConfig
    from socket_edge.bench import bench as run

    if plot_out is not None:
        _need_matplotlib()
    cfg = settings(
        BenchConfig,
        ctx,
        "bench",
        batches=parse_int_list(batch, "--batch"),
        verify=False if no_verify else None,
    )
    doc = run(artifacts, data, cfg)
    _report(doc, json_out, md_out, plot_out)
    if doc["errors"]:
        raise typer.Exit(code=2)


def _need_matplotlib() -> None:
    import importlib.util

    from socket_edge.errors import SocketEdgeError

    if importlib.util.find_spec("matplotlib") is None:
        raise SocketEdgeError("--plot needs matplotlib: pip install 'socket-edge[plot]'")


def _report(doc: dict, json_out: Path | None, md_out: Path | None, plot_out: Path | None) -> None:
    """The table (on stderr when the JSON goes to stdout), the JSON, Markdown and plot files."""
    from rich.console import Console

    from socket_edge.bench.report import plot, print_table, write_markdown

    print_table(doc, Console(stderr=str(json_out) == "-"))
    emit_json(doc, json_out)
    if md_out is not None:
        write_markdown(doc, md_out)
        typer.echo(f"wrote {md_out}", err=True)
    if plot_out is not None:
        if any(not r.get("error") for r in doc["rows"]):
            plot(doc, plot_out)
            typer.echo(f"wrote {plot_out}", err=True)
        else:
            typer.echo(f"no plot: every row failed ({plot_out} not written)", err=True)


def register(app: typer.Typer) -> None:
    app.command(
        cls=defaults_from("socket_edge.bench.config:BenchConfig", batch="batches"),
        epilog=examples(
            "socket-edge bench depth.pt depth.onnx depth.int8-cpu.onnx "
            "--data data/synth/depth/target/test",
            "socket-edge bench model.fp16.engine model.int8.engine --data DIR/test --batch 1,8 "
            "--trtexec --json bench.json",
            "socket-edge bench a.onnx b.onnx --data DIR --iterations 200 --threads 2 "
            "--md bench.md --plot bench.png",
        ),
    )(bench)
