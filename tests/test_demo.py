"""`socket-edge demo --quick` end to end (the CI smoke run of the whole pipeline), and the README."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_demo_runs_the_whole_pipeline(cli, tmp_path, monkeypatch):
    out = tmp_path / "demo"
    result = cli("demo", "--quick", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "socket-edge demo: RGB -> depth" in result.stdout
    for text in ("RGB model used as is on depth", "after SOCKET", "after INT8"):
        assert text in result.stdout
    summary = json.loads((out / "demo.json").read_text())
    acc = summary["accuracy"]
    for key in ("rgb_model_on_target", "after_socket"):
        assert 0.0 <= acc[key] <= 1.0, key
    for artifact in summary["files"]["artifacts"]:
        assert Path(artifact).exists() and summary["latency_ms_p50"][Path(artifact).name] > 0
    bench = json.loads((out / "bench.json").read_text())
    # The quick model is weak: on some CPUs the INT8 gate refuses it, and the demo goes on in FP32.
    if summary["int8_refused"] is None:
        assert "depth.int8-cpu.onnx" in result.stdout
        assert 0.0 <= acc["after_int8_cpu"] <= 1.0 and 0.0 <= acc["after_int8_qdq"] <= 1.0
        assert not bench["errors"] and len(bench["rows"]) == 4
    else:
        assert "INT8 not written" in result.stdout and "over budget" in summary["int8_refused"]
        assert not bench["errors"] and len(bench["rows"]) == 2

    # A second run reuses every step's output; here the export is redone with a gate that
    # refuses INT8, which the demo reports and survives.
    import socket_edge.export.pipeline as pipeline
    from socket_edge.demo import DemoConfig, run_demo
    from socket_edge.errors import Int8GateError

    real_export = pipeline.export

    def refusing_export(model, onnx, options):
        if options.int8:
            raise Int8GateError("INT8 stays over budget (test)", options.calib)
        return real_export(model, onnx, options)

    monkeypatch.setattr(pipeline, "export", refusing_export)
    shutil.rmtree(out / "artifacts")
    again = run_demo(DemoConfig(out=out, quick=True), show_progress=False)
    assert again["accuracy"]["after_socket"] == acc["after_socket"]
    assert "over budget (test)" in again["int8_refused"]
    assert [Path(a).name for a in again["files"]["artifacts"]] == ["depth.onnx"]
    assert again["accuracy"]["after_int8_cpu"] is None


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert "pytest" in ci
    assert ci in (ROOT / "README.md").read_text()
