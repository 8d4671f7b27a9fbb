"""Raw sensor frames in: resize + centre crop baked into the ONNX graph (``export --frame-size``).

The frame size is fixed per export, so the resize is a constant table: nearest-exact sampling
(depth, IR) becomes two ``Gather`` nodes with the source row and column indices, antialiased
bilinear (RGB) two ``MatMul`` nodes with the filter weights; the crop is in the tables. These are
the very tables of the host path (``data/transforms.resize_plan``), so in-graph and host
preprocessing give the same tensor to float rounding, and both ops are plain for ONNX Runtime and
TensorRT's ONNX parser (every version). ONNX ``Resize`` was not used: nearest there needs the
``half_pixel`` + ``round_prefer_ceil`` pairing to equal nearest-exact, and its ``antialias``
attribute (opset 18) is beyond TensorRT 8.5's opset 17.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..artifact import sidecar_path
from ..console import info
from ..errors import SocketEdgeError
from ..files import sha256_file, write_json
from ..outputs import Staging

PREFIX = "/frame"
MAX_SIDE = 8192


def parse_frame_size(text: str) -> tuple[int, int]:
    """'480x640' (height x width) -> (480, 640)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX*,]\s*(\d+)\s*", text or "")
    if not m:
        raise SocketEdgeError(
            f"frame_size takes HEIGHTxWIDTH in pixels (e.g. 480x640), got {text!r}",
            settings=("frame_size",),
        )
    h, w = int(m.group(1)), int(m.group(2))
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise SocketEdgeError(
            f"frame_size {h}x{w}: each side must be 1..{MAX_SIDE} pixels", settings=("frame_size",)
        )
    return h, w


def frame_preprocess(preprocess: dict[str, Any], frame: tuple[int, int]) -> dict[str, Any]:
    """The sidecar's ``preprocess`` of a model that takes (H, W) frames."""
    op = "Gather" if preprocess.get("interpolation", "bilinear") != "bilinear" else "MatMul"
    return {**preprocess, "frame_size": [int(frame[0]), int(frame[1])], "in_graph": True, "op": op}


def bake_frame(
    src: str | Path, dst: str | Path, frame: tuple[int, int], preprocess: dict
) -> list[str]:
    """Write ``src`` with a ``frame``-sized input and the resize + crop in front; the new nodes."""
    import onnx
    from onnx import numpy_helper

    from ..data.transforms import resize_plan

    size = int(preprocess["image_size"])
    interpolation = str(preprocess.get("interpolation", "bilinear"))
    plan = resize_plan((int(frame[0]), int(frame[1])), size, interpolation)
    model = onnx.load(str(src))
    graph = model.graph
    inp = graph.input[0]
    resized = f"{inp.name}{PREFIX}/resized"
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name == inp.name:
                node.input[k] = resized
    dims = inp.type.tensor_type.shape.dim
    dims[2].dim_value, dims[3].dim_value = plan.frame
    make = _matmul_resize if interpolation == "bilinear" else _gather_resize
    consts, nodes = make(plan, size, inp.name, resized)
    graph.initializer.extend(numpy_helper.from_array(v, name) for name, v in consts)
    for node in reversed(nodes):
        graph.node.insert(0, node)
    # (no checker here: ONNX Runtime's quantizer writes graphs out of topological order; the
    # parity run below loads every baked model in ONNX Runtime)
    onnx.save(model, str(dst))
    return [n.name for n in nodes]


Resize = tuple[list[tuple[str, np.ndarray]], list[Any]]  # (initializers, nodes)


def _matmul_resize(plan: Any, size: int, src: str, dst: str) -> Resize:
    """Antialiased bilinear: ``rows @ x @ cols_t``, the filter weights as two matrices."""
    from onnx import helper

    rows = plan.rows.reshape(1, 1, size, plan.frame[0]).astype(np.float32)
    cols = np.ascontiguousarray(plan.cols.T).reshape(1, 1, plan.frame[1], size)
    consts = [(f"{PREFIX}/cols_t", cols), (f"{PREFIX}/rows", rows)]
    nodes = [
        helper.make_node(
            "MatMul", [src, consts[0][0]], [f"{PREFIX}/cols_out"], name=f"{PREFIX}/MatMul_cols"
        ),
        helper.make_node(
            "MatMul", [consts[1][0], f"{PREFIX}/cols_out"], [dst], name=f"{PREFIX}/MatMul_rows"
        ),
    ]
    return consts, nodes


def _gather_resize(plan: Any, size: int, src: str, dst: str) -> Resize:
    """Nearest-exact: gather the source rows, then the source columns."""
    from onnx import helper

    consts = [
        (f"{PREFIX}/rows", plan.rows.astype(np.int64)),
        (f"{PREFIX}/cols", plan.cols.astype(np.int64)),
    ]
    nodes = [
        helper.make_node(
            "Gather",
            [src, consts[0][0]],
            [f"{PREFIX}/rows_out"],
            name=f"{PREFIX}/Gather_rows",
            axis=2,
        ),
        helper.make_node(
            "Gather",
            [f"{PREFIX}/rows_out", consts[1][0]],
            [dst],
            name=f"{PREFIX}/Gather_cols",
            axis=3,
        ),
    ]
    return consts, nodes


def frame_parity(plain: Path, baked: Path, frames: np.ndarray, preprocess: dict) -> dict[str, Any]:
    """ONNX Runtime on ``baked`` fed full frames vs ``plain`` fed host-resized ones."""
    from ..data.transforms import resize_center_crop
    from .parity import ort_logits, ort_session

    size, interp = int(preprocess["image_size"]), str(preprocess.get("interpolation", "bilinear"))
    host = np.stack([resize_center_crop(f, size, interp) for f in frames])
    a = ort_logits(ort_session(plain), host)
    b = ort_logits(ort_session(baked), frames)
    return {
        "n": int(len(frames)),
        "max_abs_logit_diff": float(np.abs(a - b).max()),
        "top1_agreement": float((a.argmax(1) == b.argmax(1)).mean()),
        "frames": "generated raw frames (depth 300..5000 mm with holes; IR/RGB uniform)",
    }


def example_frames(modality: str, frame: tuple[int, int], n: int = 4, seed: int = 1) -> np.ndarray:
    """Plausible raw frames without torch: depth 300..5000 mm with 5% holes, IR/RGB in [0, 1]."""
    rng = np.random.default_rng(seed)
    channels = 3 if modality == "rgb" else 1
    x = rng.random((n, channels, *frame), dtype=np.float32)
    if modality == "depth":
        x = 300.0 + 4700.0 * x
        x[rng.random(x.shape) < 0.05] = 0.0
    return x.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# An export's staged models, baked (export --frame-size)


def bake_staged_frames(staging: Staging, meta: dict, frame: tuple[int, int]) -> None:
    """Every staged ONNX model takes ``frame``-sized raw frames (resize + crop in the graph);
    their sidecars say so, with the check of in-graph against host preprocessing."""
    renamed: dict[str, str] = {}  # FP32 sha256 before -> after the frame nodes
    for target in [t for t in staging.targets if t.suffix.lower() == ".onnx"]:
        before, after = _bake_frame(staging, target, meta, frame)
        if before is not None:
            renamed[before] = after
    # The INT8 models and the cache were calibrated on the FP32 graph before its frame nodes were
    # added; their lineage now points at the FP32 model as written (see artifact.check_lineage).
    for target, tmp in staging.targets.items():
        if target.suffix.lower() != ".json":
            continue
        doc = json.loads(tmp.read_text(encoding="utf-8"))
        calibration = doc.get("calibration") or {}
        if calibration.get("model_sha256") in renamed:
            calibration["model_sha256"] = renamed[calibration["model_sha256"]]
            write_json(tmp, doc)


def _bake_frame(
    staging: Staging, target: Path, meta: dict, frame: tuple[int, int]
) -> tuple[str | None, str]:
    """Bake the frame nodes into one staged model and update its staged sidecar; for the FP32
    model its sha256 before and after (else None and the new one)."""
    tmp, side = staging.targets[target], staging.targets[sidecar_path(target)]
    plain = staging.scratch(f"plain-{target.name}")
    os.replace(tmp, plain)
    doc = json.loads(side.read_text(encoding="utf-8"))
    nodes = bake_frame(plain, tmp, frame, doc["preprocess"])
    check = frame_parity(plain, tmp, example_frames(meta["modality"], frame), doc["preprocess"])
    doc["preprocess"] = {**frame_preprocess(doc["preprocess"], frame), "nodes": nodes}
    doc["preprocess"]["parity"] = check
    doc["input"] = {**doc["input"], "shape": [*doc["input"]["shape"][:2], *frame]}
    before = doc["sha256"] if doc.get("precision") == "fp32" else None
    doc["sha256"] = sha256_file(tmp)
    write_json(side, doc)
    info(
        f"{target.name}: takes {frame[0]}x{frame[1]} frames (resize + crop in the graph; "
        f"max |logit diff| vs host resize {check['max_abs_logit_diff']:.2g})"
    )
    return before, doc["sha256"]
