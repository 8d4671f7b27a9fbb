"""The options and result of `socket-edge export`, and the names of one export set."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..artifact import sidecar_path
from ..guard import check_settings


@dataclass
class ExportOptions:
    opset: int = 17
    batch: tuple[int, ...] = (1, 8, 32)
    verify: bool = True
    verify_data: Path | None = None
    atol: float = 1e-4
    int8: bool = False
    calib: Path | None = None
    calib_size: int = 512
    calib_method: str = "entropy"
    holdout: int = 256
    max_drop: float = 1.0
    max_disagreement: float = 2.0  # percent of top-1 decisions INT8 may change vs FP32
    seed: int = 0
    trt: bool = False
    fp16: bool = False
    int8_mode: str = "auto"
    dla_core: int | None = None
    workspace_mib: int | None = None
    timing_cache: Path | None = None
    engine: Path | None = None
    frame_size: tuple[int, int] | None = None  # bake resize + crop of HxW frames into the graphs
    show_progress: bool = True
    reference: Path | None = None  # frames for the monitor's reference (default: calib)

    def __post_init__(self) -> None:
        check_settings(self, EXPORT_RULES)


# Each numeric option's range; a NaN, inf or out-of-range value fails before any work.
EXPORT_RULES: dict[str, dict[str, Any]] = {
    "opset": {"minimum": 13, "integer": True},
    "atol": {"above": 0},
    "calib_size": {"minimum": 1, "integer": True},
    "holdout": {"minimum": 0, "integer": True},
    "max_drop": {},  # any finite number (below 0 asks INT8 to beat FP32)
    "max_disagreement": {"minimum": 0, "maximum": 100},
    "seed": {"minimum": 0, "integer": True},
}


@dataclass
class ExportResult:
    written: list[Path] = field(default_factory=list)
    parity: dict[str, Any] | None = None
    int8: dict[str, Any] | None = None
    engines: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "written": [str(p) for p in self.written],
            "parity": self.parity,
            "int8": self.int8,
            "engines": self.engines,
        }


def int8_paths(out: str | Path) -> dict[str, Path]:
    """model.onnx -> model.int8.onnx, model.int8-cpu.onnx, model.calib.cache."""
    out = Path(out)
    stem = out.name[: -len(".onnx")] if out.name.lower().endswith(".onnx") else out.stem
    return {
        "int8-qdq": out.with_name(f"{stem}.int8.onnx"),
        "int8-cpu": out.with_name(f"{stem}.int8-cpu.onnx"),
        "cache": out.with_name(f"{stem}.calib.cache"),
    }


def set_names(out: Path) -> list[str]:
    """The file names of one export set (artifacts and sidecars)."""
    files = [out, *int8_paths(out).values()]
    return [p.name for p in files] + [sidecar_path(p).name for p in files]


def export_info(o: ExportOptions) -> dict[str, Any]:
    """The sidecars' ``export`` record."""
    return {"opset": o.opset, "batch": list(o.batch)}
