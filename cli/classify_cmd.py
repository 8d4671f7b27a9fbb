"""`socket-edge classify`: the class and confidence of image files, from any artifact."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import emit_json, examples


def classify(
    artifact: Path = typer.Argument(
        ..., help="A checkpoint (.pt), ONNX model (.onnx) or TensorRT engine (.engine)."
    ),
    files: list[Path] = typer.Argument(
        ...,
        help="Images in the artifact's modality (depth: 16-bit PNG in mm or .npy; IR; RGB), or "
        "folders of them.",
    ),
    json_out: Path = typer.Option(
        None, "--json", help="Write the predictions as JSON ('-' = stdout, nothing else there)."
    ),
    device: str = typer.Option(
        None, "--device", help="cpu | cuda | tensorrt (ONNX Runtime provider) | cuda:N."
    ),
    batch: int = typer.Option(32, "--batch", min=1, help="Images per inference call."),
) -> None:
    """Classify image files: label and probability per file (one table row or JSON entry each).

    Preprocessing is the model's own: host resize + centre crop, or none when the export baked
    the frame size into the graph (then every image must be a whole frame of that size).
    """
    from socket_edge.classifier import Classifier
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
    results = []
    with Classifier(artifact, device=device) as model:
        for start in range(0, len(paths), batch):
            chunk = paths[start : start + batch]
            for path, p in zip(chunk, model.predict_files(chunk), strict=True):
                results.append({"file": str(path), **p.to_dict()})
    doc = {"artifact": str(artifact), "classes": model.classes, "predictions": results}
    if json_out is not None and str(json_out) == "-":
        emit_json(doc, json_out)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("file", "label", "probability")
    for r in results:
        table.add_row(r["file"], r["label"], f"{r['probability']:.3f}")
    Console().print(table)
    emit_json(doc, json_out)


def register(app: typer.Typer) -> None:
    app.command(
        epilog=examples(
            "socket-edge classify depth.onnx frame_0001.png frame_0002.png",
            "socket-edge classify depth.int8.engine captures/ --json -",
            "socket-edge classify depth.pt scan.npy --json predictions.json",
        ),
    )(classify)
