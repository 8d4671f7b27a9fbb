"""NVIDIA's trtexec beside socket-edge's own timing: run it on an engine, read its summary.

trtexec's "Performance summary" times the GPU work on the device's own clock ("GPU Compute
Time", no host-device copies) as well as host latency; bench puts its p50/p99 next to the host
wall-clock figures so that a reader sees both. The parser reads the summary lines of every
trtexec from TensorRT 8.x to 10.x (tests/test_trtexec.py holds real summaries):

    [I] GPU Compute Time: min = 0.770 ms, max = 1.43 ms, mean = 0.81 ms, median = 0.80 ms,
        percentile(90%) = 0.82 ms, percentile(95%) = 0.83 ms, percentile(99%) = 0.88 ms
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from ..errors import SocketEdgeError

# Where JetPack and NVIDIA's containers put trtexec when it is not on PATH.
KNOWN_PLACES = ("/usr/src/tensorrt/bin/trtexec",)
METRICS = {
    "Latency": "latency_ms",
    "Enqueue Time": "enqueue_ms",
    "H2D Latency": "h2d_ms",
    "GPU Compute Time": "gpu_compute_ms",
    "D2H Latency": "d2h_ms",
}
_LINE = re.compile(
    r"\]?\s*(Latency|Enqueue Time|H2D Latency|GPU Compute Time|D2H Latency):\s*(.*)$"
)
_STAT = re.compile(
    r"(min|max|mean|median|percentile\s*\(\s*(\d+(?:\.\d+)?)\s*%\s*\))\s*=?\s*([0-9.eE+-]+)\s*ms"
)
_THROUGHPUT = re.compile(r"Throughput:\s*([0-9.eE+-]+)\s*qps")
_VERSION = re.compile(r"TensorRT v(\d+)\]|TensorRT version:\s*([\d.]+)")


def find_trtexec() -> str | None:
    """trtexec on PATH, or where JetPack installs it; None if absent."""
    found = shutil.which("trtexec")
    if found:
        return found
    return next((p for p in KNOWN_PLACES if os.access(p, os.X_OK)), None)


def _version(text: str) -> str | None:
    m = _VERSION.search(text)
    if not m:
        return None
    if m.group(2):
        return m.group(2)
    n = int(m.group(1))  # v100200 -> 10.2.0; v8601 -> 8.6.1 (TensorRT 8 packs 4 digits)
    return (
        f"{n // 10000}.{n // 100 % 100}.{n % 100}"
        if n >= 100000
        else f"{n // 1000}.{n // 100 % 10}.{n % 100}"
    )


def parse_summary(text: str) -> dict[str, Any]:
    """Figures of trtexec's performance summary; a ValueError if it has none."""
    out: dict[str, Any] = {"version": _version(text)}
    in_summary = "=== Performance summary ===" not in text
    for line in text.splitlines():
        if "=== Performance summary ===" in line:
            in_summary = True
            continue
        if not in_summary:
            continue
        m = _THROUGHPUT.search(line)
        if m:
            out["throughput_qps"] = float(m.group(1))
            continue
        m = _LINE.search(line)
        if not m:
            continue
        stats: dict[str, float] = {}
        for name, pct, value in _STAT.findall(m.group(2)):
            key = f"p{pct.rstrip('0').rstrip('.') if '.' in pct else pct}" if pct else name
            stats["p50" if key == "median" else key] = float(value)
        if stats:
            out[METRICS[m.group(1)]] = stats
    if "gpu_compute_ms" not in out:
        raise ValueError("no 'GPU Compute Time' line in trtexec's output")
    return out


def run_trtexec(
    engine: str | Path,
    input_name: str,
    shape: list[int],
    duration_s: float = 3.0,
    warmup_ms: int = 500,
    executable: str | None = None,
) -> dict[str, Any]:
    """Run trtexec on ``engine`` with input ``shape``; its summary plus the command used."""
    exe = executable or find_trtexec()
    if exe is None:
        raise SocketEdgeError("trtexec is not on PATH (JetPack: /usr/src/tensorrt/bin/trtexec)")
    cmd = [
        exe,
        f"--loadEngine={engine}",
        f"--shapes={input_name}:{'x'.join(str(int(d)) for d in shape)}",
        f"--warmUp={int(warmup_ms)}",
        f"--duration={max(1, round(duration_s))}",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        last = (r.stdout + r.stderr).strip().splitlines()[-1:] or ["no output"]
        raise SocketEdgeError(
            f"trtexec failed on {Path(engine).name} (exit {r.returncode}): {last[0]}"
        )
    try:
        summary = parse_summary(r.stdout)
    except ValueError as exc:
        raise SocketEdgeError(f"trtexec on {Path(engine).name}: {exc}") from None
    return {**summary, "command": " ".join(cmd)}
