"""`socket-edge classify`: the class and confidence of image files, from any artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import emit_json, examples


def classify(
    artifact: Annotated[
        Path,
        typer.Argument(help="A checkpoint (.pt), ONNX model (.onnx) or TensorRT engine (.engine)."),
    ],
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Images in the artifact's modality (depth: 16-bit PNG in mm or .npy; IR; RGB), "
            "or folders of them."
        ),
    ],
    json_out: Annotated[
        Path | None,
        typer.Option(
            "--json", help="Write the predictions as JSON ('-' = stdout, nothing else there)."
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option("--device", help="cpu | cuda | tensorrt (ONNX Runtime provider) | cuda:N."),
    ] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Images per inference call.")] = 32,
) -> None:
    """Classify image files: label and probability per file (one table row or JSON entry each).

    Preprocessing is the model's own: host resize + centre crop, or none when the export baked
    the frame size into the graph (then every image must be a whole frame of that size).
    """
    from socket_edge.classifier import Classifier

    paths = _images(files)
    results = []
    with Classifier(artifact, device=device) as model:
        for start in range(0, len(paths), batch):
            chunk = paths[start : start + batch]
            for path, p in zip(chunk, model.predict_files(chunk), strict=True):
                results.append({"file": str(path), **p.to_dict()})
    doc = {"artifact": str(artifact), "classes": model.classes, "predictions": results}
    if json_out is None or str(json_out) != "-":
        _table(results)
    emit_json(doc, json_out)


def _images(files: list[Path]) -> list[Path]:
    """The files, and the images in the folders, named on the command line."""
    from socket_edge.data.datasets import find_images
    from socket_edge.errors import DataError

    paths: list[Path] = []
    for f in files:
        if f.is_dir():
            paths.extend(find_images(f))
        elif f.exists():
            paths.append(f)
        else:
            raise DataError("no such file or folder", f)
    if not paths:
        raise DataError("no images found", files[0])
    return paths


def _table(results: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("file", "label", "probability")
    for r in results:
        table.add_row(r["file"], r["label"], f"{r['probability']:.3f}")
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command(
        epilog=examples(
            "socket-edge classify depth.onnx frame_0001.png frame_0002.png",
            "socket-edge classify depth.int8.engine captures/ --json -",
            "socket-edge classify depth.pt scan.npy --json predictions.json",
        ),
    )(classify)
