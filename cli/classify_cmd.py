"""`socket-edge classify`: the class and confidence of image files, from any artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import Every, Stride, emit_json, examples, sampling


def classify(
    artifact: Annotated[
        Path,
        typer.Argument(help="A checkpoint (.pt), ONNX model (.onnx) or TensorRT engine (.engine)."),
    ],
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Images in the artifact's modality (depth: 16-bit PNG in mm or .npy; IR; RGB), "
            "folders of them, or bags (.bag, .db3, .mcap) with --topic."
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
    topic: Annotated[
        str | None, typer.Option("--topic", help="The image topic of the bags among FILES.")
    ] = None,
    every: Every = None,
    stride: Stride = None,
) -> None:
    """Classify image files: label and probability per file (one table row or JSON entry each).

    Preprocessing is the model's own: host resize + centre crop, or none when the export baked
    the frame size into the graph (then every image must be a whole frame of that size).
    """
    from socket_edge.classifier import Classifier
    from socket_edge.data import bags
    from socket_edge.errors import DataError, SocketEdgeError

    pick = sampling(every, stride)
    sources = [bags.source(f, topic, pick) if bags.is_bag(f) else f for f in files]
    if topic is not None and not any(isinstance(s, bags.BagTopic) for s in sources):
        raise SocketEdgeError("--topic is for bags (.bag, .db3, .mcap), and none was given")
    bags.check_sampled(pick, *sources)
    paths = _images([f for f in sources if not isinstance(f, bags.BagTopic)], allow_none=True)
    results = []
    with Classifier(artifact, device=device) as model:
        for start in range(0, len(paths), batch):
            chunk = paths[start : start + batch]
            for path, p in zip(chunk, model.predict_files(chunk), strict=True):
                results.append({"file": str(path), **p.to_dict()})
        for src in sources:
            if isinstance(src, bags.BagTopic):
                results += _classify_bag(model, src, batch)
    if not results:
        raise DataError("no images found", files[0])
    doc = {"artifact": str(artifact), "classes": model.classes, "predictions": results}
    if json_out is None or str(json_out) != "-":
        _table(results)
    emit_json(doc, json_out)


def _classify_bag(model, src, batch: int) -> list[dict]:
    """Predictions for the sampled frames of a bag topic, named BAG:TOPIC#000012."""
    from itertools import islice

    from socket_edge.data.bags import read_frames

    out: list[dict] = []
    frames = read_frames(src, model.modality)
    while chunk := list(islice(frames, batch)):
        names = [name for name, _ in chunk]
        preds = model.predict_canonical([x for _, x in chunk], names)
        out += [{"file": n, **p.to_dict()} for n, p in zip(names, preds, strict=True)]
    return out


def _images(files: list[Path], allow_none: bool = False) -> list[Path]:
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
    if not paths and not allow_none:
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
            "socket-edge classify depth.onnx drive.mcap --topic /camera/depth/image_rect_raw "
            "--every 30",
        ),
    )(classify)
