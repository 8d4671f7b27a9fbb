"""The robot side: numpy preprocessing, raw frames in the graph, Classifier / classify, and the
inference verbs in a process where torch cannot be imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from socket_edge.data.transforms import resize_center_crop, resize_center_crop_torch
from socket_edge.errors import DataError, SocketEdgeError

from .helpers import assert_one_line_error

REPO = Path(__file__).resolve().parents[1]
# Stated tolerance of the numpy resize against torch's: nearest-exact is exact; antialiased
# bilinear agrees to float32 rounding (2e-5 on values in [0, 1], relative to the range otherwise).
BILINEAR_ATOL = 2e-5


@pytest.mark.parametrize(
    "shape", [(480, 640), (64, 64), (100, 37), (37, 100), (64, 80), (30, 40), (127, 255)]
)
@pytest.mark.parametrize("size", [32, 64, 96])
def test_numpy_resize_matches_the_torch_path(shape, size):
    rng = np.random.default_rng(sum(shape) + size)
    rgb = rng.random((3, *shape), dtype=np.float32)
    x, y = (
        resize_center_crop(rgb, size, "bilinear"),
        resize_center_crop_torch(rgb, size, "bilinear"),
    )
    assert x.shape == tuple(y.shape) == (3, size, size) and x.dtype == np.float32
    assert np.abs(x - y.numpy()).max() <= BILINEAR_ATOL
    depth = rng.integers(0, 6000, (1, *shape)).astype(np.float32)
    depth[rng.random(depth.shape) < 0.1] = 0.0
    a = resize_center_crop(depth, size, "nearest-exact")
    b = resize_center_crop_torch(depth, size, "nearest-exact").numpy()
    assert np.array_equal(a, b)  # exact: holes (0) are never blended with readings
    assert set(np.unique(a)) <= set(np.unique(depth))


def _one_op_model(path: Path, channels: int, size: int) -> Path:
    """An ONNX model that returns its input (N, C, size, size) times one: shows what it was fed."""
    import onnx
    from onnx import TensorProto, helper

    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", channels, size, size])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    graph = helper.make_graph(
        [helper.make_node("Mul", ["input", "one"], ["logits"], name="mul")],
        "g",
        [inp],
        [out],
        [one],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("interpolation,channels", [("nearest-exact", 1), ("bilinear", 3)])
def test_baked_resize_gives_the_host_tensor(tmp_path, interpolation, channels):
    from socket_edge.export.frame import bake_frame
    from socket_edge.export.parity import ort_session

    plain = _one_op_model(tmp_path / "m.onnx", channels, 32)
    baked = tmp_path / "baked.onnx"
    nodes = bake_frame(plain, baked, (120, 160), {"image_size": 32, "interpolation": interpolation})
    assert nodes and all(n.startswith("/frame/") for n in nodes)
    frames = np.random.default_rng(0).random((3, channels, 120, 160), dtype=np.float32) * 4000
    got = ort_session(baked).run(None, {"input": frames})[0]
    want = np.stack([resize_center_crop(f, 32, interpolation) for f in frames])
    assert got.shape == (3, channels, 32, 32)
    assert np.allclose(got, want, rtol=1e-6, atol=1e-6 * 4000)


def test_frame_size_parsing():
    from socket_edge.export.frame import parse_frame_size

    assert parse_frame_size("480x640") == (480, 640)
    assert parse_frame_size("720 X 1280") == (720, 1280)
    for bad in ("640", "0x10", "axb", "99999x2"):
        with pytest.raises(SocketEdgeError, match="frame_size"):
            parse_frame_size(bad)


def _frames(src: Path, dst: Path, factor: int = 4, pad: int = 16) -> Path:
    """Sensor-sized frames from the 64x64 test images: nearest upscaling by ``factor`` and the
    sides padded with their edge columns (a wider field of view that the centre crop drops)."""
    from PIL import Image

    for p in sorted(src.rglob("*.png")):
        a = np.asarray(Image.open(p))
        up = np.repeat(np.repeat(a, factor, 0), factor, 1)
        up = np.pad(up, ((0, 0), (pad, pad)), mode="edge")
        q = dst / p.relative_to(src)
        q.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(up).save(q)
    return dst


@pytest.fixture(scope="module")
def depth_exports(depth_ckpt, synth_root, tmp_path_factory):
    """depth.onnx (+ INT8) at 64x64, and its raw-frame versions for 256x288 frames, with test sets.

    The FP32 raw-frame model comes from `export --frame-size` itself; its INT8 siblings are baked
    here from the plain INT8 models with the same function (one INT8 calibration, not two).
    """
    import shutil

    from socket_edge.artifact import read_sidecar, sidecar_path, write_sidecar
    from socket_edge.export.frame import bake_frame, frame_preprocess
    from socket_edge.export.pipeline import ExportOptions, export
    from socket_edge.files import sha256_file

    root = tmp_path_factory.mktemp("robot")
    train = synth_root / "depth" / "target" / "train"
    int8 = dict(int8=True, calib=train, calib_size=24, holdout=8, max_drop=100.0)
    export(depth_ckpt, root / "plain" / "depth.onnx", ExportOptions(**int8, show_progress=False))
    frame = root / "frame" / "depth.onnx"
    export(depth_ckpt, frame, ExportOptions(frame_size=(256, 288), show_progress=False))
    for name in ("depth.int8.onnx", "depth.int8-cpu.onnx"):
        doc = read_sidecar(root / "plain" / name)
        bake_frame(root / "plain" / name, frame.with_name(name), (256, 288), doc["preprocess"])
        doc["preprocess"] = frame_preprocess(doc["preprocess"], (256, 288))
        doc["sha256"] = sha256_file(frame.with_name(name))
        # lineage: calibrated for the FP32 model it now sits beside (as export --frame-size says)
        doc["calibration"]["model_sha256"] = sha256_file(frame)
        write_sidecar(frame.with_name(name), doc)
        assert sidecar_path(frame.with_name(name)).exists()
    shutil.rmtree(root / "frames", ignore_errors=True)
    test = synth_root / "depth" / "target" / "test"
    return {"root": root, "test": test, "frames": _frames(test, root / "frames")}


def test_raw_frame_models_agree_with_host_preprocessing(depth_exports):
    from socket_edge.artifact import read_sidecar
    from socket_edge.evaluate import evaluate_artifact

    root, test, frames = depth_exports["root"], depth_exports["test"], depth_exports["frames"]
    for name in ("depth.onnx", "depth.int8-cpu.onnx", "depth.int8.onnx"):
        doc = read_sidecar(root / "frame" / name, verify_hash=True)
        pre = doc["preprocess"]
        assert pre["frame_size"] == [256, 288] and pre["in_graph"] and pre["op"] == "Gather"
        if name == "depth.onnx":  # written by export --frame-size
            assert doc["input"]["shape"] == ["batch", 1, 256, 288]
            assert pre["parity"]["max_abs_logit_diff"] <= 1e-3
            assert pre["nodes"] == ["/frame/Gather_rows", "/frame/Gather_cols"]
        host = evaluate_artifact(root / "plain" / name, frames, show_progress=False)
        graph = evaluate_artifact(root / "frame" / name, frames, show_progress=False)
        small = evaluate_artifact(root / "plain" / name, test, show_progress=False)
        assert (host.predictions == graph.predictions).mean() >= 0.995, name
        assert graph.top1 == pytest.approx(small.top1, abs=0.05), name
    with pytest.raises(DataError, match="the model takes 256x288 frames"):
        evaluate_artifact(root / "frame" / "depth.onnx", test, show_progress=False)


def test_classifier_on_raw_frames(depth_exports, depth_ckpt):
    from PIL import Image

    from socket_edge import Classifier
    from socket_edge.evaluate import evaluate_artifact

    root, test = depth_exports["root"], depth_exports["test"]
    files = sorted(test.rglob("*.png"))[:6]
    frames = [np.asarray(Image.open(f)) for f in files]  # H x W uint16 millimetres
    assert frames[0].dtype == np.uint16
    ev = evaluate_artifact(root / "plain" / "depth.onnx", test, show_progress=False)
    order = [str(p) for p in sorted(test.rglob("*.png"))]
    want = [ev.predictions[order.index(str(f))] for f in files]
    for artifact in (root / "plain" / "depth.onnx", depth_ckpt):
        with Classifier(artifact) as model:
            one = model.predict(frames[0])
            assert one.label == model.classes[one.index] and 0 < one.probability <= 1
            assert sum(one.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
            batch = model.predict(np.stack(frames))
            assert [p.index for p in batch] == want
            assert [p.index for p in model.predict(frames)] == want
            assert [p.index for p in model.predict_files(files)] == want
    big = [np.pad(f, ((96, 96), (112, 112)), mode="edge") for f in frames]  # 256x288, centred
    with Classifier(root / "frame" / "depth.onnx") as model:
        assert model.info.frame_size == (256, 288)
        assert len(model.predict(big)) == len(big)
        with pytest.raises(DataError, match="takes 256x288 frames"):
            model.predict(frames[0])
        with pytest.raises(DataError, match="expected one frame or a batch"):
            model.predict(np.zeros((2, 2, 2, 2, 2)))


def _no_torch_env(tmp_path: Path) -> dict[str, str]:
    """A PYTHONPATH on which `import torch` / `import torchvision` fail as on a robot install."""
    block = tmp_path / "no-torch"
    for name in ("torch", "torchvision"):
        (block / name).mkdir(parents=True, exist_ok=True)
        (block / name / "__init__.py").write_text(
            f"raise ModuleNotFoundError(\"No module named '{name}'\", name='{name}')\n"
        )
    path = os.pathsep.join([str(block), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**os.environ, "PYTHONPATH": path, "SOCKET_EDGE_PROGRESS": "0"}


def test_inference_verbs_run_without_torch(depth_exports, depth_ckpt, tmp_path):
    root, test = depth_exports["root"], depth_exports["test"]
    env = _no_torch_env(tmp_path)

    def run(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "socket_edge.cli.main", *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)

    probe = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True)
    assert probe.returncode != 0  # the block works
    onnx, int8 = root / "plain" / "depth.onnx", root / "plain" / "depth.int8-cpu.onnx"
    r = run("eval", str(onnx), "--data", str(test), "--json", "-")
    assert r.returncode == 0, r.stderr[-2000:]
    from socket_edge.evaluate import evaluate_artifact

    here = evaluate_artifact(onnx, test, show_progress=False)  # torch-free: the same figures
    assert json.loads(r.stdout)["top1"] == pytest.approx(here.top1)
    r = run(
        "bench", str(int8), "--data", str(test), "--iterations", "3", "--warmup-s", "0",
        "--json", "-",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads(r.stdout)["rows"]
    assert all(row["error"] is None and row["top1"] is not None for row in rows)
    one = sorted(test.rglob("*.png"))[0]
    r = run("classify", str(root / "frame" / "depth.onnx"), str(one), "--json", "-")
    assert_one_line_error(r, "takes 256x288 frames")
    r = run("classify", str(onnx), str(one), "--json", "-")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["predictions"][0]["file"] == str(one)
    from socket_edge.doctor import tensorrt_version

    if tensorrt_version() is None:
        r = run("export", str(onnx), "--trt", "--fp16")
        assert_one_line_error(r, "TensorRT is not installed here")
    r = run("eval", str(depth_ckpt), "--data", str(test))  # a workstation verb
    assert_one_line_error(r, "this needs torch", 'pip install "socket-edge[workstation]"')
