"""`socket-edge eval`: the accuracy of a checkpoint, ONNX model or engine on labelled data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import Every, JsonOut, Stride, emit_json, examples, sampling


def eval_command(
    model: Annotated[
        Path,
        typer.Argument(help="A checkpoint (.pt), ONNX model (.onnx) or TensorRT engine (.engine)."),
    ],
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="Labelled folder of the model's modality: DIR/<class>/<image>; or a bag with "
            "--topic and --label.",
        ),
    ],
    json_out: JsonOut = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 64,
    device: Annotated[
        str | None, typer.Option("--device", help="cpu or cuda (checkpoints).")
    ] = None,
    no_verify: Annotated[
        bool,
        typer.Option(
            "--no-verify",
            help="Do not check the model against its sidecar (sha256, metadata, lineage).",
        ),
    ] = False,
    topic: Annotated[str | None, typer.Option("--topic", help="The --data bag's topic.")] = None,
    label: Annotated[
        str | None,
        typer.Option("--label", help="The class a --data bag's frames show (one per recording)."),
    ] = None,
    every: Every = None,
    stride: Stride = None,
) -> None:
    """Top-1 and per-class accuracy of a model on labelled data.

    An ONNX model or engine is first checked against its sidecar: its sha256, its embedded
    classes/modality/encoding, and that an INT8 file or engine belongs to the FP32 model beside it.
    """
    from rich.console import Console
    from rich.table import Table

    from socket_edge.data.bags import check_sampled, source
    from socket_edge.evaluate import evaluate_artifact

    pick = sampling(every, stride)
    check_sampled(pick, data_src := source(data, topic, pick))
    result = evaluate_artifact(
        model,
        data_src,
        batch_size=batch_size,
        device=device,
        verify=not no_verify,
        label=label,
    )
    if str(json_out) != "-":
        table = Table(title=f"{model.name} on {data}")
        table.add_column("class")
        table.add_column("top-1", justify="right")
        for name, acc in result.per_class.items():
            table.add_row(name, f"{acc:.3f}")
        table.add_row("[bold]all[/bold]", f"[bold]{result.top1:.3f}[/bold] (n={result.n})")
        Console().print(table)
    emit_json(result.to_dict(), json_out)


def register(app: typer.Typer) -> None:
    app.command(
        "eval",
        epilog=examples(
            "socket-edge eval adapted.pt --data data/synth/depth/target/test",
            "socket-edge eval model.int8-cpu.onnx --data DIR/test --json acc.json",
            "socket-edge eval edited.onnx --data DIR/test --no-verify   # skip the sidecar checks",
            "socket-edge eval depth.onnx --data mug.mcap --topic /camera/depth/image_rect_raw "
            "--label mug --every 10   # a recording of one object",
        ),
    )(eval_command)
