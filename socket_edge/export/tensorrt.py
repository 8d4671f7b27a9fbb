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

The calibrator and its cache are ``trt_calibration``; FP32 pinning and DLA placement are
``trt_layers``; this module plans, configures and runs the build and writes the engine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..artifact import write_sidecar
from ..console import info
from ..errors import ArtifactError, SocketEdgeError
from ..files import sha256_file, write_bytes
from ..runtime.tensorrt import gpu_info, quiet_polygraphy
from .trt_calibration import (
    CacheSource,
    Implicit,
    implicit_int8,
    input_chw,
    keep_cache,
)
from .trt_layers import pin_float_layers, use_dla

INT8_MODES = ("auto", "explicit", "implicit")


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
        raise SocketEdgeError(
            f"int8_mode must be one of {', '.join(INT8_MODES)}, got {mode!r}",
            settings=("int8_mode",),
        )
    if mode == "auto":
        return (
            "implicit"
            if (trt_major < 10 or dla_core is not None) and trt_major < 11
            else "explicit"
        )
    if mode == "implicit" and trt_major >= 11:
        raise SocketEdgeError(
            "TensorRT 11 removed implicit INT8 calibration; build from the Q/DQ "
            "model (int8_mode explicit)",
            settings=("int8_mode",),
        )
    return mode


def require_tensorrt() -> str:
    """TensorRT's version, or a one-line error saying where engines are built."""
    from ..doctor import tensorrt_version

    version = tensorrt_version()
    if version is None:
        raise ArtifactError(
            "TensorRT is not installed here (engines are built on the device that runs them: "
            "copy model.onnx and its sidecar there and export it there with trt; "
            "pip install tensorrt, or JetPack's python3-libnvinfer)",
            settings=("trt",),
        )
    return version


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
    onnx_path, out = Path(onnx_path), Path(out)
    plan = plan_build(onnx_path, settings, sidecar)
    quiet_polygraphy()
    network = _parse(onnx_path, plan)
    try:
        with implicit_int8(plan.mode, network[1], calib_batcher, cache, out) as implicit:
            info(
                f"building {out.name} with TensorRT {plan.version} on {plan.gpu['name']} "
                "(minutes, once per device)"
            )
            built = _build(onnx_path, network, settings, plan, implicit)
            write_bytes(out, built.engine)  # atomic, unlike Polygraphy's SaveEngine
            if implicit is not None:
                keep_cache(implicit, sidecar)
    finally:
        del network  # TensorRT frees its objects with their last reference
    doc = _engine_sidecar(sidecar, out, onnx_path, settings, plan, built)
    write_sidecar(out, doc)
    return doc


@dataclass(frozen=True)
class BuildPlan:
    """Where the engine is built and how it quantizes."""

    version: str  # TensorRT's
    gpu: dict[str, Any]
    mode: str  # INT8 path: "explicit", "implicit" or "none"
    qdq: bool  # the ONNX model carries Q/DQ nodes (model.int8.onnx)

    @property
    def strongly_typed(self) -> bool:
        """TensorRT 11 builds strongly typed networks only."""
        return int(self.version.split(".")[0]) >= 11


def plan_build(onnx_path: Path, settings: EngineSettings, sidecar: dict[str, Any]) -> BuildPlan:
    """Check that this machine can build what ``settings`` ask from ``onnx_path``."""
    version = require_tensorrt()
    gpu = gpu_info()
    if gpu is None:
        raise ArtifactError("no CUDA GPU found: TensorRT builds engines on the GPU that runs them")
    qdq = sidecar.get("precision") == "int8-qdq"
    mode = "none"
    if qdq:
        mode = "explicit"
    elif settings.int8:
        mode = resolve_int8_mode(settings.int8_mode, int(version.split(".")[0]), settings.dla_core)
    if settings.int8 and mode == "explicit" and not qdq:
        raise SocketEdgeError(
            "has no Q/DQ nodes: explicit INT8 builds from model.int8.onnx, which an INT8 "
            "export with calib images writes",
            onnx_path,
            settings=("calib",),
        )
    plan = BuildPlan(version, gpu, mode, qdq)
    if plan.strongly_typed and settings.fp16:
        raise SocketEdgeError(
            "TensorRT 11 builds strongly typed networks only: FP16 needs an FP16 "
            "ONNX model; build INT8 from model.int8.onnx instead"
        )
    return plan


def _parse(onnx_path: Path, plan: BuildPlan) -> tuple[Any, Any, Any]:
    """TensorRT's (builder, network, parser) of ``onnx_path``, through Polygraphy."""
    from polygraphy.backend.trt import NetworkFromOnnxPath

    try:
        return NetworkFromOnnxPath(
            str(onnx_path), strongly_typed=True if plan.strongly_typed else None
        )()
    except Exception as exc:  # Polygraphy raises PolygraphyException with the parser's errors
        raise ArtifactError(f"TensorRT cannot parse it ({_first_line(exc)})", onnx_path) from None


@dataclass(frozen=True)
class Built:
    """A serialized engine and what its build did, for the sidecar."""

    engine: bytes
    pinned: list[str]  # TensorRT layers pinned to FP32
    dla: dict[str, Any]
    seconds: float


def _build(
    onnx_path: Path,
    network: tuple[Any, Any, Any],
    settings: EngineSettings,
    plan: BuildPlan,
    implicit: Implicit | None,
) -> Built:
    """Configure (precisions, profiles, pinning, DLA) and build with Polygraphy."""
    import tensorrt as trt
    from polygraphy.backend.trt import EngineBytesFromNetwork

    pinned = [] if plan.strongly_typed else pin_float_layers(trt, network[1], settings.float_layers)
    dla: dict[str, Any] = {}
    config = _config(network[1], settings, plan, implicit, pinned, dla)
    start = time.perf_counter()
    try:
        serialized = EngineBytesFromNetwork(
            network,
            config=config,
            save_timing_cache=str(settings.timing_cache) if settings.timing_cache else None,
        )()
    except SocketEdgeError:
        raise
    except Exception as exc:
        raise ArtifactError(
            f"TensorRT could not build the engine ({_first_line(exc)})", onnx_path
        ) from None
    return Built(bytes(serialized), pinned, dla, time.perf_counter() - start)


def _config(
    network: Any,
    settings: EngineSettings,
    plan: BuildPlan,
    implicit: Implicit | None,
    pinned: list[str],
    dla: dict[str, Any],
) -> Any:
    """Polygraphy's builder config; DLA placement (recorded in ``dla``) once it exists."""
    import tensorrt as trt
    from polygraphy.backend.trt import CreateConfig, PostprocessConfig, Profile

    def place(builder: Any, network: Any, config: Any) -> None:
        if settings.dla_core is not None:
            dla.update(
                use_dla(
                    trt, builder, config, network, settings.dla_core, settings.fp16, settings.int8
                )
            )

    bmin, bopt, bmax = settings.batch
    chw = input_chw(network)
    profiles = [Profile().add(network.get_input(0).name, [bmin, *chw], [bopt, *chw], [bmax, *chw])]
    if implicit is not None:
        profiles.append(implicit.profile)
    ws = settings.workspace_mib
    timing = settings.timing_cache
    create = CreateConfig(
        fp16=settings.fp16 and not plan.strongly_typed,
        int8=settings.int8 and not plan.strongly_typed,
        profiles=profiles,
        calibrator=implicit.calibrator if implicit is not None else None,
        precision_constraints="obey" if pinned else None,
        memory_pool_limits={trt.MemoryPoolType.WORKSPACE: int(ws) << 20} if ws else None,
        load_timing_cache=str(timing) if timing and timing.exists() else None,
    )
    return PostprocessConfig(create, place)


def _engine_sidecar(
    sidecar: dict[str, Any],
    out: Path,
    onnx_path: Path,
    settings: EngineSettings,
    plan: BuildPlan,
    built: Built,
) -> dict[str, Any]:
    """The engine's sidecar: the ONNX model's, with what TensorRT built and where."""
    bmin, bopt, bmax = settings.batch
    doc = dict(sidecar)
    doc.update(
        {
            "artifact": out.name,
            "kind": "engine",
            "sha256": sha256_file(out),
            "precision": settings.precision if not plan.qdq else "int8",
            "parity": None,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "tensorrt": {
                "version": plan.version,
                "compute_capability": plan.gpu["compute_capability"],
                "gpu": plan.gpu["name"],
                "fp16": settings.fp16,
                "int8": settings.int8 or plan.qdq,
                "int8_mode": plan.mode,
                "profile": {"min": bmin, "opt": bopt, "max": bmax},
                "dla": built.dla or None,
                "workspace_mib": settings.workspace_mib,
                "timing_cache": str(settings.timing_cache) if settings.timing_cache else None,
                "float_layers": built.pinned,
                "built_from": {"artifact": onnx_path.name, "sha256": sha256_file(onnx_path)},
                "build_seconds": round(built.seconds, 1),
                "builder": "polygraphy",
            },
        }
    )
    return doc
