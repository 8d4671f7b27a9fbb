"""What this machine offers socket-edge: Python, torch/CUDA, ONNX Runtime, TensorRT, Jetson."""

from __future__ import annotations

import importlib
import importlib.util
import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any


def _version(module: str) -> str | None:
    """The installed version of ``module``, or None (type-stub-only packages count as absent)."""
    if importlib.util.find_spec(module) is None:
        return None
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # a broken install is worth reporting, not crashing on
        return f"broken ({type(exc).__name__}: {exc})"
    return getattr(mod, "__version__", None)


def tensorrt_version() -> str | None:
    """TensorRT's version if the real library is importable (``tensorrt-stubs`` alone is not)."""
    v = _version("tensorrt")
    return v if v and not v.startswith("broken") else None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> str:
    """The instruction-set flags that decide CPU speed here (AVX2/AVX-512/AMX; NEON/SVE on ARM)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    pattern = r"\b(avx2|avx512[a-z_0-9]*|amx_[a-z_0-9]+|asimd[a-z]*|sve2?|i8mm|bf16)\b"
    return " ".join(sorted(set(re.findall(pattern, text)))) or "none of avx2/avx512/amx/neon"


def jetson_info() -> dict[str, Any] | None:
    """Jetson model, L4T release and power mode, or None off a Jetson."""
    model_file = Path("/proc/device-tree/model")
    release = Path("/etc/nv_tegra_release")
    if not release.exists() and not (model_file.exists() and "jetson" in _read(model_file).lower()):
        return None
    info: dict[str, Any] = {
        "model": _read(model_file).strip("\x00 \n") or None,
        "l4t": _read(release).splitlines()[0] if release.exists() else None,
    }
    if shutil.which("nvpmodel"):
        try:
            out = subprocess.run(
                ["nvpmodel", "-q"], capture_output=True, text=True, timeout=5
            ).stdout
            info["power_mode"] = " ".join(out.split())
        except (OSError, subprocess.SubprocessError):
            info["power_mode"] = None
    return info


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def report() -> dict[str, Any]:
    """Everything `socket-edge doctor` prints, as a dict."""
    out: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "socket_edge": _version("socket_edge"),
    }
    try:
        import torch

        out["torch"] = str(torch.__version__)
        out["cuda_available"] = torch.cuda.is_available()
        out["torch_cuda"] = torch.version.cuda
        out["cudnn"] = (
            torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        )
        out["gpus"] = (
            [
                {
                    "name": torch.cuda.get_device_name(i),
                    "compute_capability": ".".join(map(str, torch.cuda.get_device_capability(i))),
                    "memory_gib": round(
                        torch.cuda.get_device_properties(i).total_memory / 2**30, 1
                    ),
                }
                for i in range(torch.cuda.device_count())
            ]
            if torch.cuda.is_available()
            else []
        )
        # What `torchrun ... adapt` can use: gloo on CPUs, NCCL on GPUs.
        dist = torch.distributed
        out["distributed_backends"] = (
            [b for b in ("gloo", "nccl") if getattr(dist, f"is_{b}_available")()]
            if dist.is_available()
            else []
        )
    except ImportError:
        out["torch"] = None
    out["torchvision"] = _version("torchvision")
    out["onnx"] = _version("onnx")
    out["onnxruntime"] = _version("onnxruntime")
    try:
        import onnxruntime as ort

        out["onnxruntime_providers"] = ort.get_available_providers()
    except ImportError:
        out["onnxruntime_providers"] = []
    out["tensorrt"] = tensorrt_version()
    out["polygraphy"] = _version("polygraphy")  # builds and runs engines (extra 'trt')
    out["matplotlib"] = _version("matplotlib")
    out["jetson"] = jetson_info()
    return out
