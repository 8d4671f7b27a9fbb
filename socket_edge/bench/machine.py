"""The `machine` block of a bench report: what the numbers were measured on, clocks included."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

_CPU_SYS = Path("/sys/devices/system/cpu")
_DEVFREQ = Path("/sys/class/devfreq")
# devfreq names of Jetson GPUs (Nano gm20b/gpu, TX2 gp10b, Xavier gv11b, Orin ga10b).
_GPU_DEVFREQ = ("gpu", "gv11b", "ga10b", "gp10b", "gm20b", "gb10b")

KEYS = (
    "cpu",
    "cpu_flags",
    "python",
    "platform",
    "machine",
    "torch",
    "torch_cuda",
    "cudnn",
    "gpus",
    "onnxruntime",
    "onnxruntime_providers",
    "tensorrt",
    "jetson",
)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _int(path: Path) -> int | None:
    text = _read(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def cpu_clocks() -> dict[str, Any] | None:
    """Per-core current/min/max MHz and governor from cpufreq; None where cpufreq is absent."""
    cores = []
    for d in sorted(_CPU_SYS.glob("cpu[0-9]*"), key=lambda p: int(p.name[3:])):
        f = d / "cpufreq"
        if not f.is_dir():
            continue
        khz = {k: _int(f / f"scaling_{k}_freq") for k in ("cur", "min", "max")}
        cores.append(
            {
                "cpu": int(d.name[3:]),
                "governor": _read(f / "scaling_governor"),
                **{f"{k}_mhz": (v // 1000 if v else None) for k, v in khz.items()},
            }
        )
    if not cores:
        return None
    locked = all(c["min_mhz"] is not None and c["min_mhz"] == c["max_mhz"] for c in cores)
    return {"cores": cores, "locked": locked}


def gpu_clocks() -> dict[str, Any] | None:
    """Jetson iGPU clock (devfreq): current/min/max MHz and governor."""
    if not _DEVFREQ.is_dir():
        return None
    for d in sorted(_DEVFREQ.iterdir()):
        name = (_read(d / "device" / "of_node" / "name") or d.name).lower()
        if not any(key in name or key in d.name.lower() for key in _GPU_DEVFREQ):
            continue
        hz = {k: _int(d / f"{k}_freq") for k in ("cur", "min", "max")}
        return {
            "device": d.name,
            "governor": _read(d / "governor"),
            **{f"{k}_mhz": (v // 1_000_000 if v else None) for k, v in hz.items()},
            "locked": hz["min"] is not None and hz["min"] == hz["max"],
        }
    return None


def machine_info() -> dict[str, Any]:
    """CPU, cores, GPUs, library versions, Jetson model / power mode, clocks and load."""
    from .._version import __version__
    from ..doctor import report

    doc = report()
    out: dict[str, Any] = {k: doc.get(k) for k in KEYS}
    out["socket_edge"] = __version__
    out["cores"] = os.cpu_count()
    try:
        out["cores_usable"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        out["cores_usable"] = out["cores"]
    try:
        out["load_avg_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        out["load_avg_1m"] = None
    out["numpy"] = _numpy_version()
    out["clocks"] = {"cpu": cpu_clocks(), "gpu": gpu_clocks()}
    return out


def _numpy_version() -> str:
    import numpy

    return numpy.__version__


def describe(machine: dict[str, Any]) -> str:
    """One line: CPU, cores, GPU, Jetson model and power mode, library versions."""
    parts = [f"CPU {machine.get('cpu')}", f"{machine.get('cores')} cores"]
    if machine.get("cpu_flags"):
        parts.append(f"flags {machine['cpu_flags']}")
    for gpu in machine.get("gpus") or []:
        parts.append(f"GPU {gpu.get('name')}")
    jetson = machine.get("jetson")
    if jetson:
        parts.append(f"{jetson.get('model')}, {jetson.get('power_mode') or 'power mode unknown'}")
    for key in ("torch", "onnxruntime", "tensorrt"):
        if machine.get(key):
            parts.append(f"{key} {machine[key]}")
    return ", ".join(parts)
