"""Untrusted ONNX files: the graph parsed without its external data, and the check that no
external-data file it names lies outside its folder (absolute paths, ``..``, symlinks out)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import ArtifactError

_DRIVE = re.compile(r"^[A-Za-z]:")


def load_graph(path: Path):
    """The ONNX model WITHOUT its external data (nothing outside the file is read)."""
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError and friends
        first = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise ArtifactError(f"not a valid ONNX model (cannot parse it: {first})", path) from None


def _tensors(graph):
    """Every TensorProto of a graph and its subgraphs (initializers, attributes, sparse)."""
    yield from graph.initializer
    for s in graph.sparse_initializer:
        yield s.values
        yield s.indices
    for node in graph.node:
        yield from _attribute_tensors(node.attribute)


def _attribute_tensors(attributes):
    for a in attributes:
        if a.HasField("t"):
            yield a.t
        yield from a.tensors
        if a.HasField("sparse_tensor"):
            yield a.sparse_tensor.values
            yield a.sparse_tensor.indices
        if a.HasField("g"):
            yield from _tensors(a.g)
        for g in a.graphs:
            yield from _tensors(g)


def check_external_data(path: str | Path, model=None):
    """Refuse an ONNX model whose external data lies outside its folder (absolute paths, ``..``,
    symlinks out); returns the model parsed without external data."""
    import onnx

    path = Path(path)
    model = model if model is not None else load_graph(path)
    folder = path.resolve().parent
    tensors = list(_tensors(model.graph))
    for fn in model.functions:
        for node in fn.node:
            tensors.extend(_attribute_tensors(node.attribute))
    for t in tensors:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in t.external_data if e.key == "location"), "")
        where = f"external data of tensor {t.name!r} ({location!r})"
        if not location:
            raise ArtifactError(f"{where} names no file", path)
        if os.path.isabs(location) or location.startswith(("/", "\\")) or _DRIVE.match(location):
            raise ArtifactError(f"{where} is an absolute path; refusing to read it", path)
        if ".." in Path(location.replace("\\", "/")).parts:
            raise ArtifactError(f"{where} climbs out of the model's folder with '..'", path)
        resolved = (path.parent / location).resolve()
        if not resolved.is_relative_to(folder):
            raise ArtifactError(
                f"{where} resolves outside the model's folder (to {resolved}, a symlink out); "
                "refusing to read it",
                path,
            )
    return model
