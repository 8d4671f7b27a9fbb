"""TensorRT engines: what is testable without TensorRT here, and the build where it exists."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from socket_edge.artifact import make_sidecar, read_sidecar, sidecar_path
from socket_edge.doctor import tensorrt_version
from socket_edge.errors import ArtifactError, SocketEdgeError
from socket_edge.export.tensorrt import (
    EngineSettings,
    engine_path,
    profile_from,
    resolve_int8_mode,
)
from socket_edge.export.trt_calibration import CacheSource, cache_usable
from socket_edge.runtime.tensorrt import TensorRTRunner, check_engine, engine_problems, gpu_info

REPO = Path(__file__).resolve().parents[1]


def _cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


HAS_TRT = tensorrt_version() is not None
HAS_GPU = _cuda()
needs_gpu = pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU (none here)")
needs_trt = pytest.mark.skipif(
    not (HAS_TRT and HAS_GPU),
    reason="needs TensorRT and a CUDA GPU (socket_edge.doctor.tensorrt_version() is None here: "
    "tensorrt-stubs alone do not count)",
)

META = {
    "arch": "resnet18",
    "classes": ["a", "b"],
    "modality": "depth",
    "image_size": 64,
    "preprocess": {"image_size": 64, "interpolation": "nearest-exact"},
    "encoding": {"modality": "depth"},
}


def test_engine_names_never_collide_with_onnx_sidecars(tmp_path):
    onnx = tmp_path / "model.onnx"
    fp16 = engine_path(onnx, EngineSettings(fp16=True))
    int8 = engine_path(onnx, EngineSettings(int8=True, fp16=True))
    dla = engine_path(tmp_path / "model.int8.onnx", EngineSettings(int8=True, dla_core=1))
    assert (fp16.name, int8.name, dla.name) == (
        "model.fp16.engine",
        "model.int8.engine",
        "model.int8.dla1.engine",
    )
    assert engine_path(onnx, EngineSettings()).name == "model.fp32.engine"
    names = {sidecar_path(p).name for p in (onnx, fp16, int8, dla)}
    assert names == {
        "model.json",
        "model.fp16.engine.json",
        "model.int8.engine.json",
        "model.int8.dla1.engine.json",
    }


def test_profile_from_batch_sizes():
    assert profile_from([1, 8, 32]) == (1, 8, 32)
    assert profile_from([32, 1]) == (1, 32, 32)
    assert profile_from([4]) == (1, 4, 4)
    with pytest.raises(SocketEdgeError):
        profile_from([0, 4])


def test_int8_mode_resolution():
    assert resolve_int8_mode("auto", 8, None) == "implicit"  # JetPack 5/6.0
    assert resolve_int8_mode("auto", 10, None) == "explicit"
    assert resolve_int8_mode("auto", 10, 0) == "implicit"  # DLA
    assert resolve_int8_mode("auto", 11, 0) == "explicit"
    assert resolve_int8_mode("implicit", 10, None) == "implicit"
    with pytest.raises(SocketEdgeError, match="TensorRT 11 removed implicit"):
        resolve_int8_mode("implicit", 11, None)
    with pytest.raises(SocketEdgeError, match="int8_mode"):
        resolve_int8_mode("fast", 10, None)


def test_engine_problems_say_exactly_what_differs():
    built = {"version": "8.5.2.2", "compute_capability": "8.7", "gpu": "Orin"}
    orin = {"name": "Orin", "compute_capability": "8.7"}
    assert engine_problems(built, "8.5.2.2", orin) == []
    assert engine_problems(built, "8.5.2.9", orin) == []  # same release, other build number
    (p,) = engine_problems(built, "10.3.0", orin)
    assert p == "it was built with TensorRT 8.5.2.2, this machine has TensorRT 10.3.0"
    (p,) = engine_problems(built, "8.5.2.2", {"name": "NVIDIA A100", "compute_capability": "8.0"})
    assert p == (
        "it was built for a GPU of compute capability 8.7 (Orin), this GPU is "
        "NVIDIA A100 of compute capability 8.0"
    )
    assert len(engine_problems(built, None, None)) == 2


def test_check_engine_is_one_line_and_needs_the_build_record(tmp_path):
    doc = {"tensorrt": {"version": "10.3.0", "compute_capability": "8.7"}}
    with pytest.raises(ArtifactError) as err:
        check_engine(
            doc, tmp_path / "m.engine", "10.3.0", {"name": "GPU", "compute_capability": "8.6"}
        )
    assert "\n" not in str(err.value) and "m.engine: cannot run this engine" in str(err.value)
    assert "rebuild it on this machine" in str(err.value)
    with pytest.raises(ArtifactError, match="lacks the 'tensorrt' build record"):
        check_engine({"tensorrt": None}, "m.engine", "10.3.0", None)


def _fake_engine(tmp_path: Path, version="8.5.2.2", cc="8.7") -> Path:
    engine = tmp_path / "model.int8.engine"
    engine.write_bytes(b"not really an engine")
    doc = make_sidecar(
        engine,
        "engine",
        "int8",
        META,
        tensorrt={
            "version": version,
            "compute_capability": cc,
            "gpu": "Orin",
            "profile": {"min": 1, "opt": 4, "max": 8},
        },
    )
    sidecar_path(engine).write_text(json.dumps(doc))
    return engine


def test_runner_reads_the_sidecar_and_checks_before_loading(tmp_path):
    engine = _fake_engine(tmp_path)
    runner = TensorRTRunner(engine)
    assert runner.info.classes == ["a", "b"] and runner.info.kind == "engine"
    assert runner.max_batch == 8 and runner.describe()["backend"] == "tensorrt"
    if HAS_TRT and HAS_GPU:
        pytest.skip("this machine may match the fake sidecar's TensorRT and GPU")
    with pytest.raises(ArtifactError, match="cannot run this engine: it needs TensorRT 8.5.2.2"):
        runner.activate()
    assert not runner.is_active
    with pytest.raises(ArtifactError, match="no such file"):
        TensorRTRunner(tmp_path / "nothing.engine")
    (tmp_path / "bare.engine").write_bytes(b"x")
    with pytest.raises(ArtifactError, match="no sidecar bare.engine.json"):
        TensorRTRunner(tmp_path / "bare.engine")


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here")
def test_building_without_tensorrt_says_where_to_build():
    from socket_edge.export.tensorrt import require_tensorrt

    with pytest.raises(ArtifactError, match="TensorRT is not installed here"):
        require_tensorrt()


@pytest.mark.skipif(HAS_GPU, reason="a CUDA GPU is present")
def test_no_gpu_is_none_not_a_crash():
    assert gpu_info() is None


def _cache_with_sidecar(folder: Path, stamp: str, model_sha: str) -> Path:
    from socket_edge.calibration.cache import format_cache
    from socket_edge.files import sha256_file

    path = folder / "model.calib.cache"
    path.write_text(format_cache({"t": 1.0}))
    doc = make_sidecar(
        path,
        "calibration-cache",
        "int8",
        META,
        calibration={"stamp": stamp, "model_sha256": model_sha},
    )
    doc["sha256"] = sha256_file(path)
    sidecar_path(path).write_text(json.dumps(doc))
    return path


def test_stale_caches_are_never_reused(tmp_path):
    path = _cache_with_sidecar(tmp_path, "s1", "m1")
    assert cache_usable(CacheSource(path, "s1", "m1")) == (True, "")
    assert cache_usable(CacheSource(path, None, "m1"))[0]  # no calibration set given: model only
    ok, why = cache_usable(CacheSource(path, "s2", "m1"))
    assert not ok and "stamp s1 differs from s2" in why
    ok, why = cache_usable(CacheSource(path, "s1", "m2"))
    assert not ok and "another model" in why
    path.write_text(path.read_text() + "u: 3f800000\n")  # edited after its sidecar was written
    ok, why = cache_usable(CacheSource(path, "s1", "m1"))
    assert not ok and "does not match its sidecar" in why
    assert cache_usable(CacheSource(tmp_path / "none.cache", "s1", "m1")) == (False, "no cache yet")


def patched_stubs(dest: Path) -> Path | None:
    """A copy of the installed tensorrt-stubs that mypy can read, or None where none are installed.

    Installed beside the packages, the stubs have no py.typed and mypy ignores them (every TensorRT
    name becomes Any, so nothing is checked). On MYPYPATH they are read, once two generator slips
    are mended: a parameter named ``in`` and a required parameter after defaulted ones.
    """
    site = Path(sysconfig.get_paths()["purelib"])
    if not (site / "tensorrt" / "__init__.pyi").exists():
        return None
    for package in ("tensorrt", "tensorrt_bindings"):
        shutil.copytree(site / package, dest / package, ignore=shutil.ignore_patterns("*.py*c"))
    api = dest / "tensorrt_bindings" / "tensorrt.pyi"
    text = re.sub(r"([(,]\s*)in(\s*:)", r"\1in_\2", api.read_text())
    text = text.replace(
        "power: Weights = None, channel_axis: int)",
        "power: Weights = None, channel_axis: int = ...)",
    )
    api.write_text(text)
    return dest


def run_mypy(stubs: Path, *files: str | Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "mypy", "--follow-imports=silent", *map(str, files)]
    env = {**os.environ, "MYPYPATH": str(stubs)}
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed")
def test_tensorrt_code_type_checks(tmp_path):
    """The TensorRT modules pass mypy against tensorrt-stubs, and mypy really sees the stubs."""
    stubs = patched_stubs(tmp_path / "stubs")
    if stubs is None:
        pytest.skip("tensorrt-stubs are not installed (pip install --no-deps tensorrt-stubs)")
    canary = tmp_path / "canary.py"
    canary.write_text(
        "import tensorrt as trt\n\n\ndef f() -> None:\n"
        "    trt.Builder(trt.Logger()).no_such_method()\n"
    )
    r = run_mypy(stubs, canary)
    assert r.returncode == 1 and '"Builder" has no attribute "no_such_method"' in r.stdout, r.stdout
    r = run_mypy(
        stubs,
        "socket_edge/export/tensorrt.py",
        "socket_edge/export/trt_calibration.py",
        "socket_edge/export/trt_layers.py",
        "socket_edge/export/engines.py",
        "socket_edge/runtime/tensorrt.py",
    )
    assert r.returncode == 0, r.stdout + r.stderr


# --- on a machine with a GPU ----------------------------------------------------------------------


# --- where TensorRT exists: build FP16 and INT8 engines and check their accuracy ------------------


@needs_trt
def test_engines_build_and_keep_accuracy(depth_ckpt, synth_root, tmp_path):
    from socket_edge.evaluate import evaluate_artifact
    from socket_edge.export.parity import ort_logits, ort_session
    from socket_edge.export.pipeline import ExportOptions, build_engines, export
    from socket_edge.runtime import load_runner

    root = synth_root / "depth" / "target"
    test = root / "test"
    out = tmp_path / "model.onnx"
    export(
        depth_ckpt,
        out,
        ExportOptions(
            int8=True, calib=root / "train", calib_size=24, verify_data=test, show_progress=False
        ),
    )
    fp32_top1 = evaluate_artifact(out, test, show_progress=False).top1
    x = np.stack([np.asarray(v) for v, _ in _labelled(test)])
    reference = ort_logits(ort_session(out), x)
    major = int(str(tensorrt_version()).split(".")[0])
    timing = tmp_path / "timing.cache"
    builds = [
        ("fp16", ExportOptions(trt=True, fp16=True, timing_cache=timing)),
        (
            "int8",
            ExportOptions(
                trt=True, int8=True, fp16=True, int8_mode="explicit", timing_cache=timing
            ),
        ),
    ]
    if major <= 10:
        # implicit INT8 from the workstation's cache alone: TensorRT must accept its format
        builds.append(
            (
                "int8-implicit",
                ExportOptions(
                    trt=True, int8=True, int8_mode="implicit", engine=tmp_path / "implicit.engine"
                ),
            )
        )
    for name, opts in builds:
        doc = build_engines(out, opts)
        engine = tmp_path / doc["artifact"]
        built = read_sidecar(engine)["tensorrt"]
        assert built["version"] == tensorrt_version() and built["compute_capability"]
        assert any("/encoder/" in layer for layer in built["float_layers"])
        with load_runner(engine) as runner:
            logits = runner.infer(x)
        agreement = float((logits.argmax(1) == reference.argmax(1)).mean())
        top1 = evaluate_artifact(engine, test, show_progress=False).top1
        assert agreement >= 0.9, (name, agreement)
        assert 100 * (fp32_top1 - top1) <= 100 / len(x) + 1e-9, (
            name,
            top1,
            fp32_top1,
        )  # <= 1 image
        if name == "fp16":
            scale = max(1.0, float(np.abs(reference).max()))
            assert np.abs(logits - reference).max() <= 0.05 * scale
    assert timing.exists() and timing.stat().st_size > 0


def _labelled(folder):
    from socket_edge.data.datasets import LabelledFolder

    return LabelledFolder(folder, "depth", 64)
