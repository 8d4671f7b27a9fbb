"""Build TensorRT engines from socket-edge ONNX models (TensorRT 8.5 .. 10.x; Q/DQ on 11).

NVIDIA's Polygraphy does the TensorRT steps (ONNX parsing, builder config and profiles, the
entropy calibrator with its cache, engine building, the timing cache); this module adds what it
lacks: the cache's stamp check, FP32 pinning by ONNX node name, DLA core choice with a placement
report, and the engine's sidecar.

Two INT8 paths, both from the workstation's calibration:

- explicit: parse ``model.int8.onnx`` (Q/DQ); TensorRT takes the scales from the graph.
- implicit (TensorRT <= 10, JetPack 5/6, and DLA): parse the FP32 ``model.onnx`` and hand
  TensorRT an IInt8EntropyCalibrator2 that returns ``model.calib.cache`` (after checking its
  stamp: model + calibration set + method) or, when stale or absent, feeds the calibration set.

The encoder layers (raw millimetres, up to 65535: beyond FP16's 65504) and the layers the
accuracy gate kept in float are pinned to FP32. The engine's sidecar records the TensorRT
version and GPU it was built for; see ``socket_edge.runtime.tensorrt.check_engine``.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..console import info, warn
from ..errors import ArtifactError, SocketEdgeError
from ..files import write_bytes

INT8_MODES = ("auto", "explicit", "implicit")
CALIB_BATCH = 8


@dataclass
class EngineSettings:
    """What to build: precisions, shapes, device placement and caches."""

    fp16: bool = False
    int8: bool = False
    int8_mode: str = "auto"  # auto: explicit from TensorRT 10 on (and without DLA), else implicit
    batch: tuple[int, int, int] = (1, 8, 32)  # min, opt, max of the optimization profile
    dla_core: int | None = None
    workspace_mib: int | None = None
    timing_cache: Path | None = None
    float_layers: list[str] = field(default_factory=list)  # ONNX node names pinned to FP32

    @property
    def precision(self) -> str:
        return "int8" if self.int8 else "fp16" if self.fp16 else "fp32"


def profile_from(batch_sizes: list[int] | tuple[int, ...]) -> tuple[int, int, int]:
    """--batch 1,8,32 -> (min, opt, max); one value v -> (1, v, v)."""
    sizes = sorted({int(b) for b in batch_sizes})
    if not sizes or sizes[0] < 1:
        raise SocketEdgeError(f"batch sizes must be positive, got {list(batch_sizes)}")
    if len(sizes) == 1:
        return (1, sizes[0], sizes[0])
    return (sizes[0], sizes[len(sizes) // 2] if len(sizes) > 2 else sizes[-1], sizes[-1])


def engine_path(onnx_path: str | Path, settings: EngineSettings) -> Path:
    """model.onnx -> model.fp16.engine / model.int8.engine / model.int8.dla0.engine (its sidecar:
    model.int8.engine.json, never the ONNX model's model.json)."""
    onnx_path = Path(onnx_path)
    stem = onnx_path.name[: -len(".onnx")] if onnx_path.name.endswith(".onnx") else onnx_path.stem
    for suffix in (".int8-cpu", ".int8"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    dla = f".dla{settings.dla_core}" if settings.dla_core is not None else ""
    return onnx_path.with_name(f"{stem}.{settings.precision}{dla}.engine")


def resolve_int8_mode(mode: str, trt_major: int, dla_core: int | None) -> str:
    if mode not in INT8_MODES:
        raise SocketEdgeError(f"--int8-mode must be one of {', '.join(INT8_MODES)}, got {mode!r}")
    if mode == "auto":
        return (
            "implicit"
            if (trt_major < 10 or dla_core is not None) and trt_major < 11
            else "explicit"
        )
    if mode == "implicit" and trt_major >= 11:
        raise SocketEdgeError(
            "TensorRT 11 removed implicit INT8 calibration; build from the Q/DQ "
            "model (--int8-mode explicit)"
        )
    return mode


def require_tensorrt() -> str:
    """TensorRT's version, or a one-line error saying where engines are built."""
    from ..doctor import tensorrt_version

    version = tensorrt_version()
    if version is None:
        raise ArtifactError(
            "TensorRT is not installed here (engines are built on the device that runs them: "
            "copy model.onnx and its sidecar there and run `socket-edge export model.onnx --trt`; "
            "pip install tensorrt, or JetPack's python3-libnvinfer)"
        )
    return version


# ---------------------------------------------------------------------------------------------
# Calibrator (implicit INT8)


@dataclass
class CacheSource:
    """The calibration cache to reuse or (re)write, and the stamp it must carry."""

    path: Path
    stamp: str | None  # expected stamp; None: no calibration set given, any stamp for this model
    model_sha256: str
    sidecar: dict[str, Any] | None = None  # sidecar to write with a new cache


def cache_usable(source: CacheSource) -> tuple[bool, str]:
    """(usable, why not): the cache exists, parses, and its sidecar stamp fits this build."""
    from socket_edge.calibration.cache import read_cache

    from ..artifact import read_sidecar

    if not source.path.exists():
        return False, "no cache yet"
    try:
        read_cache(source.path)
        doc = read_sidecar(source.path, verify_hash=True)
    except ArtifactError as exc:
        return False, str(exc)
    calib = doc.get("calibration") or {}
    if calib.get("model_sha256") != source.model_sha256:
        return False, "it was calibrated for another model (model sha256 differs)"
    if source.stamp is not None and calib.get("stamp") != source.stamp:
        return False, (
            f"its stamp {calib.get('stamp')} differs from {source.stamp} "
            "(calibration set or method changed)"
        )
    return True, ""


def _calibrator(trt: Any, batcher: Any, source: CacheSource, input_name: str, scratch: Path) -> Any:
    """Polygraphy's entropy calibrator: fed ``source``'s cache when its stamp fits (no images
    needed), else the calibration set, writing the new cache to ``scratch``."""
    from polygraphy.backend.trt import Calibrator

    from socket_edge.calibration.cache import parse_cache

    usable, why = cache_usable(source)
    if usable:
        # TensorRT keys caches by its own version: present ours under the running one.
        text = parse_cache(source.path.read_bytes(), source.path).with_version(trt.__version__)
        info(f"reusing calibration cache {source.path.name} (stamp matches)")
        return Calibrator([], cache=io.BytesIO(text.encode("ascii")))
    if source.path.exists():
        warn(f"{source.path}: not reused: {why}; calibrating again")
    if batcher is None:
        raise ArtifactError(
            f"no usable calibration cache ({why}) and no --calib folder to calibrate with",
            source.path,
        )
    return Calibrator(({input_name: batch} for batch in batcher), cache=str(scratch))


def _keep_cache(scratch: Path, source: CacheSource) -> None:
    """Move the cache TensorRT wrote into place, with its sidecar."""
    from ..artifact import write_sidecar
    from ..files import sha256_file

    os.replace(scratch, source.path)
    if source.sidecar is not None:
        doc = dict(source.sidecar)
        doc["sha256"] = sha256_file(source.path)
        write_sidecar(source.path, doc)


def quiet_polygraphy() -> None:
    """Polygraphy's logger down to warnings: socket-edge prints its own progress."""
    from polygraphy.logger import G_LOGGER

    G_LOGGER.module_severity = G_LOGGER.WARNING


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


# ---------------------------------------------------------------------------------------------
# Building (Polygraphy's loaders; our code only pins precisions, places DLA and writes sidecars)


def build_engine(
    onnx_path: str | Path,
    out: str | Path,
    settings: EngineSettings,
    sidecar: dict[str, Any],
    calib_batcher: Any = None,
    cache: CacheSource | None = None,
) -> dict[str, Any]:
    """Build and write the engine ``out`` (and its sidecar) from ``onnx_path``; returns the sidecar.

    ``sidecar`` is the ONNX model's sidecar (classes, preprocessing...) to derive the engine's.
    Implicit INT8 needs ``cache`` (and ``calib_batcher`` unless the cache is reusable).
    """
    from socket_edge.runtime.tensorrt import gpu_info

    from ..artifact import write_sidecar
    from ..files import sha256_file

    version = require_tensorrt()
    import tensorrt as trt
    from polygraphy.backend.trt import (
        CreateConfig,
        EngineBytesFromNetwork,
        NetworkFromOnnxPath,
        PostprocessConfig,
        Profile,
    )

    onnx_path, out = Path(onnx_path), Path(out)
    major = int(version.split(".")[0])
    gpu = gpu_info()
    if gpu is None:
        raise ArtifactError("no CUDA GPU found: TensorRT builds engines on the GPU that runs them")
    qdq = sidecar.get("precision") == "int8-qdq"
    mode = (
        "explicit"
        if qdq
        else (
            resolve_int8_mode(settings.int8_mode, major, settings.dla_core)
            if settings.int8
            else "none"
        )
    )
    if settings.int8 and mode == "explicit" and not qdq:
        raise SocketEdgeError(
            f"{onnx_path.name} has no Q/DQ nodes: explicit INT8 builds from "
            "model.int8.onnx (export --int8 --calib DIR makes it)"
        )
    strongly_typed = major >= 11
    if strongly_typed and settings.fp16:
        raise SocketEdgeError(
            "TensorRT 11 builds strongly typed networks only: FP16 needs an FP16 "
            "ONNX model; build INT8 from model.int8.onnx instead"
        )
    quiet_polygraphy()
    try:
        builder, network, parser = NetworkFromOnnxPath(
            str(onnx_path), strongly_typed=True if strongly_typed else None
        )()
    except Exception as exc:  # Polygraphy raises PolygraphyException with the parser's errors
        raise ArtifactError(f"TensorRT cannot parse it ({_first_line(exc)})", onnx_path) from None

    inp = network.get_input(0)
    chw = [int(inp.shape[i]) for i in range(1, len(inp.shape))]
    bmin, bopt, bmax = settings.batch
    profiles = [Profile().add(inp.name, [bmin, *chw], [bopt, *chw], [bmax, *chw])]
    calibrator, scratch = None, None
    if mode == "implicit":
        if cache is None:
            raise SocketEdgeError("implicit INT8 needs a calibration cache path")
        cbatch = calib_batcher.batch_size if calib_batcher is not None else CALIB_BATCH
        # Polygraphy calibrates on the last profile: one fixed at the calibration batch size.
        profiles.append(Profile().add(inp.name, *([cbatch, *chw],) * 3))
        scratch = out.with_name(f".{cache.path.name}.{os.getpid()}.tmp")
        calibrator = _calibrator(trt, calib_batcher, cache, inp.name, scratch)

    pinned = _pin_float_layers(trt, network, settings.float_layers) if not strongly_typed else []
    dla: dict[str, Any] = {}

    def place(builder: Any, network: Any, config: Any) -> None:
        if settings.dla_core is not None:
            dla.update(_use_dla(trt, builder, config, network, settings))

    ws = settings.workspace_mib
    config = PostprocessConfig(
        CreateConfig(
            fp16=settings.fp16 and not strongly_typed,
            int8=settings.int8 and not strongly_typed,
            profiles=profiles,
            calibrator=calibrator,
            precision_constraints="obey" if pinned else None,
            memory_pool_limits={trt.MemoryPoolType.WORKSPACE: int(ws) << 20} if ws else None,
            load_timing_cache=(
                str(settings.timing_cache)
                if settings.timing_cache and settings.timing_cache.exists()
                else None
            ),
        ),
        place,
    )
    info(f"building {out.name} with TensorRT {version} on {gpu['name']} (minutes, once per device)")
    start = time.perf_counter()
    try:
        serialized = EngineBytesFromNetwork(
            (builder, network, parser),
            config=config,
            save_timing_cache=str(settings.timing_cache) if settings.timing_cache else None,
        )()
    except SocketEdgeError:
        raise
    except Exception as exc:
        raise ArtifactError(
            f"TensorRT could not build the engine ({_first_line(exc)})", onnx_path
        ) from None
    finally:
        if calibrator is not None:
            with contextlib.suppress(Exception):
                calibrator.free()
    seconds = time.perf_counter() - start
    write_bytes(out, bytes(serialized))  # atomic, unlike Polygraphy's SaveEngine
    if scratch is not None and cache is not None and scratch.exists():
        _keep_cache(scratch, cache)

    doc = dict(sidecar)
    doc.update(
        {
            "artifact": out.name,
            "kind": "engine",
            "sha256": sha256_file(out),
            "precision": settings.precision if not qdq else "int8",
            "parity": None,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "tensorrt": {
                "version": version,
                "compute_capability": gpu["compute_capability"],
                "gpu": gpu["name"],
                "fp16": settings.fp16,
                "int8": settings.int8 or qdq,
                "int8_mode": mode,
                "profile": {"min": bmin, "opt": bopt, "max": bmax},
                "dla": dla or None,
                "workspace_mib": settings.workspace_mib,
                "timing_cache": str(settings.timing_cache) if settings.timing_cache else None,
                "float_layers": pinned,
                "built_from": {"artifact": onnx_path.name, "sha256": sha256_file(onnx_path)},
                "build_seconds": round(seconds, 1),
                "builder": "polygraphy",
            },
        }
    )
    write_sidecar(out, doc)
    return doc


def _pin_float_layers(trt: Any, network: Any, names: list[str]) -> list[str]:
    """Pin layers made from the ONNX nodes ``names`` (and their float outputs) to FP32."""
    wanted = set(names)
    if not wanted:
        return []
    pinned = []
    floats = (trt.float32, trt.float16)
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        node = _onnx_node(layer, wanted)
        if node is None:
            continue
        outputs = [layer.get_output(k) for k in range(layer.num_outputs)]
        if not outputs or any(o.dtype not in floats for o in outputs):
            continue  # shape arithmetic and constants: nothing to pin
        layer.precision = trt.float32
        for k in range(layer.num_outputs):
            layer.set_output_type(k, trt.float32)
        pinned.append(layer.name)
    return pinned


def _onnx_node(layer: Any, wanted: set[str]) -> str | None:
    """The ONNX node a TensorRT layer came from, if it is one of ``wanted``.

    The ONNX parser names layers after their node (adding a suffix when one node becomes
    several layers); TensorRT 8.6+ also keeps the node name in ``layer.metadata``.
    """
    if layer.name in wanted:
        return str(layer.name)
    meta = str(getattr(layer, "metadata", "") or "")
    for name in wanted:
        if name in meta or layer.name.startswith(name + "_"):
            return name
    return None


def _use_dla(trt: Any, builder: Any, config: Any, network: Any, settings: EngineSettings) -> dict:
    cores = builder.num_DLA_cores
    if settings.dla_core is None or settings.dla_core >= cores:
        raise SocketEdgeError(
            f"--dla-core {settings.dla_core}: this device has {cores} DLA "
            "core(s)" + (" (DLA exists on Jetson Xavier/Orin only)" if not cores else "")
        )
    if not (settings.fp16 or settings.int8):
        raise SocketEdgeError("DLA runs FP16 or INT8 only: add --fp16 and/or --int8")
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = settings.dla_core
    config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    on_gpu = [
        network.get_layer(i).name
        for i in range(network.num_layers)
        if not config.can_run_on_DLA(network.get_layer(i))
    ]
    if on_gpu:
        warn(
            f"{len(on_gpu)} of {network.num_layers} layers fall back to the GPU "
            f"(e.g. {', '.join(on_gpu[:3])}); the sidecar lists them"
        )
    return {"core": settings.dla_core, "layers": network.num_layers, "gpu_fallback": on_gpu}
