"""Peak memory of the benchmark process: host RSS per artifact, and GPU memory where measurable."""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path
from typing import Any

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux); False where it cannot be reset,
    and then the peak covers the whole process so far."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident set size in MiB (since the last reset where the kernel allows it)."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def reset_gpu_peak() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.reset_peak_memory_stats()


def gpu_memory_mb(backend: str) -> dict[str, Any] | None:
    """GPU memory of this run: torch's peak allocation for torch runners, else this process's use
    reported by NVML (pynvml) where present; None where neither can tell (CPU, Jetson)."""
    torch = sys.modules.get("torch")
    if (
        backend == "torch"
        and torch is not None
        and torch.cuda.is_available()
        and torch.cuda.is_initialized()
    ):
        return {
            "peak_mb": torch.cuda.max_memory_allocated() / 2**20,
            "source": "torch allocator peak",
        }
    used = _nvml_process_mb()
    return None if used is None else {"used_mb": used, "source": "NVML, this process"}


def _nvml_process_mb() -> float | None:
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        try:
            total = 0
            found = False
            for i in range(pynvml.nvmlDeviceGetCount()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(i)
                for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                    if proc.pid == os.getpid() and proc.usedGpuMemory is not None:
                        total += proc.usedGpuMemory
                        found = True
            return total / 2**20 if found else None
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # NVML absent or restricted (containers): GPU memory is optional
        return None
