"""benchmarks/export_int8.py runs end to end in its quick mode and writes its RESULTS section."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_export_int8_benchmark_quick(synth_root, depth_ckpt, tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# results\n\n<!-- other:begin -->\nkept\n<!-- other:end -->\n")
    cmd = [
        sys.executable,
        str(REPO / "benchmarks" / "export_int8.py"),
        "--quick",
        "--results",
        str(results),
        "--workdir",
        str(tmp_path / "work"),
        "--data",
        str(synth_root),
        "--depth-model",
        str(depth_ckpt),
    ]
    r = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "SOCKET_EDGE_PROGRESS": "0"},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    text = results.read_text()
    assert "<!-- other:begin -->\nkept\n<!-- other:end -->" in text
    section = text[
        text.index("<!-- export_int8:begin -->") : text.index("<!-- export_int8:end -->")
    ]
    assert "QUICK smoke-test settings" in section
    for row in (
        "| FP32 model.onnx |",
        "| INT8 model.int8-cpu.onnx |",
        "| INT8 model.int8.onnx (Q/DQ) |",
        "| depth | depth-source-only.pt |",
    ):
        assert row in section, row
    for name in ("model.onnx", "model.int8.onnx", "model.int8-cpu.onnx", "model.calib.cache"):
        assert (tmp_path / "work" / "latency" / name).stat().st_size > 0
