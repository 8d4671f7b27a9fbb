"""`socket-edge bench`: latency, accuracy and energy of artifacts, side by side."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import emit_json, examples, overlay, parse_int_list


def bench(
    ctx: typer.Context,
    artifacts: list[Path] = typer.Argument(
        ...,
        help="Checkpoints (.pt), ONNX models (.onnx, INT8 too) and TensorRT engines "
        "(.engine), in any mix; the first is the reference for agreement.",
    ),
    data: Path = typer.Option(
        ...,
        "--data",
        help="Target images: labelled DIR/<class>/<image> (top-1 + agreement) "
        "or a flat folder (agreement only).",
    ),
    batch: str = typer.Option("1", "--batch", help="Batch sizes to time, e.g. 1,8."),
    warmup_s: float = typer.Option(
        2.0, "--warmup-s", min=0, help="Warm-up seconds before timing each artifact and batch."
    ),
    duration_s: float = typer.Option(
        10.0, "--duration-s", min=0, help="Seconds of timed runs (at least 10 iterations)."
    ),
    iterations: int = typer.Option(
        None, "--iterations", min=1, help="Exactly N timed runs instead of --duration-s."
    ),
    threads: int = typer.Option(
        None, "--threads", min=1, help="CPU threads for torch / ONNX Runtime (default: theirs)."
    ),
    device: str = typer.Option(
        None,
        "--device",
        help="cpu (default), cuda[:N] (torch, ONNX Runtime) or tensorrt "
        "(ONNX Runtime's TensorRT provider).",
    ),
    trtexec: bool = typer.Option(
        False,
        "--trtexec",
        help="Engines: also run NVIDIA's trtexec (where on PATH) and show its GPU compute "
        "p50/p99 (device clock, no host-device copies) beside socket-edge's figures.",
    ),
    accuracy: bool = typer.Option(
        True, "--accuracy/--no-accuracy", help="Run the whole data set for top-1 and agreement."
    ),
    power: bool = typer.Option(
        True,
        "--power/--no-power",
        help="Sample power (tegrastats on a Jetson, NVML on an NVIDIA GPU) for energy per image.",
    ),
    cv_warn: float = typer.Option(
        0.05, "--cv-warn", min=0, help="Warn when latency's coefficient of variation exceeds it."
    ),
    no_verify: bool = typer.Option(
        False,
        "--no-verify",
        help="Do not check artifacts against their sidecars (sha256, metadata, lineage).",
    ),
    config: Path = typer.Option(
        None, "--config", help="Pipeline TOML; its \\[bench] table sets defaults, flags override."
    ),
    json_out: Path = typer.Option(None, "--json", help="Write the report as JSON ('-' = stdout)."),
    md_out: Path = typer.Option(None, "--md", help="Write the table as Markdown."),
    plot_out: Path = typer.Option(
        None, "--plot", help="Write accuracy vs latency as PNG (needs matplotlib: extra 'plot')."
    ),
) -> None:
    """Latency (min/mean/p50/p90/p99/max, images/s, CV), top-1, per-class accuracy, agreement with
    the first artifact, peak memory and (on a Jetson or NVIDIA GPU) energy per image.

    Latency is the host wall clock around each inference call; CUDA runners synchronise before
    returning. An artifact that is missing, cannot load or does not fit the data gets an error
    row and the others still run; the exit code is 2 if any row failed.
    """
    from rich.console import Console

    from socket_edge.bench import BenchConfig
    from socket_edge.bench import bench as run
    from socket_edge.bench.report import plot, print_table, write_markdown
    from socket_edge.config import section
    from socket_edge.errors import SocketEdgeError

    if plot_out is not None:
        import importlib.util

        if importlib.util.find_spec("matplotlib") is None:
            raise SocketEdgeError("--plot needs matplotlib: pip install 'socket-edge[plot]'")
    flags = {  # BenchConfig field: (command-line parameter, value)
        "batches": ("batch", parse_int_list(batch, "--batch")),
        "warmup_s": ("warmup_s", warmup_s),
        "duration_s": ("duration_s", duration_s),
        "iterations": ("iterations", iterations),
        "threads": ("threads", threads),
        "device": ("device", device),
        "trtexec": ("trtexec", trtexec),
        "accuracy": ("accuracy", accuracy),
        "power": ("power", power),
        "cv_warn": ("cv_warn", cv_warn),
        "verify": ("no_verify", not no_verify),
    }
    settings = overlay(ctx, section(config, "bench", BenchConfig), flags)
    cfg = BenchConfig(**settings)
    doc = run(artifacts, data, cfg)
    to_stdout = str(json_out) == "-"
    print_table(doc, Console(stderr=to_stdout))
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
    if doc["errors"]:
        raise typer.Exit(code=2)


def register(app: typer.Typer) -> None:
    app.command(
        epilog=examples(
            "socket-edge bench depth.pt depth.onnx depth.int8-cpu.onnx "
            "--data data/synth/depth/target/test",
            "socket-edge bench model.fp16.engine model.int8.engine --data DIR/test --batch 1,8 "
            "--trtexec --json bench.json",
            "socket-edge bench a.onnx b.onnx --data DIR --iterations 200 --threads 2 "
            "--md bench.md --plot bench.png",
        ),
    )(bench)
