"""`socket-edge demo --quick` end to end (the CI smoke run of the whole pipeline), and the README."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _top1(artifact, data) -> float:
    from socket_edge.evaluate import evaluate_artifact

    return evaluate_artifact(artifact, data, show_progress=False).top1


def test_quick_demo_runs_the_whole_pipeline(cli, tmp_path, monkeypatch):
    out = tmp_path / "demo"
    result = cli("demo", "--quick", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "socket-edge demo: RGB -> depth" in result.stdout
    for text in ("RGB model used as is on depth", "after SOCKET", "after INT8"):
        assert text in result.stdout
    summary = json.loads((out / "demo.json").read_text())
    acc, files = summary["accuracy"], summary["files"]
    test = Path(files["data"]) / "depth" / "target" / "test"
    n = len(list(test.rglob("*.png")))
    # the table's figures are the models' top-1 on the depth test images (bench scores batch 1)
    assert acc["rgb_model_on_target"] == _top1(files["adapted"]["source-only"], test)
    assert acc["after_socket"] == pytest.approx(_top1(files["adapted"]["socket"], test), abs=1 / n)
    for artifact in files["artifacts"]:
        assert Path(artifact).exists() and summary["latency_ms_p50"][Path(artifact).name] > 0
    # Whichever way the INT8 gate went on this CPU (the quick model is weak), the report says so;
    # both ways are forced below.
    assert ("INT8 not written" in result.stdout) == (summary["int8_refused"] is not None)

    import socket_edge.export.pipeline as pipeline
    from socket_edge.demo import DemoConfig, run_demo
    from socket_edge.errors import Int8GateError

    real_export = pipeline.export

    # A second run reuses every step's output but the export, redone with a gate that accepts
    # INT8: the INT8 models are written, benched and scored.
    def accepting_export(model, onnx, options):
        return real_export(model, onnx, replace(options, max_drop=100.0, max_disagreement=100.0))

    monkeypatch.setattr(pipeline, "export", accepting_export)
    shutil.rmtree(out / "artifacts")
    kept = run_demo(DemoConfig(out=out, quick=True), show_progress=False)
    assert kept["int8_refused"] is None
    names = [Path(a).name for a in kept["files"]["artifacts"]]
    assert names == ["depth.onnx", "depth.int8-cpu.onnx", "depth.int8.onnx"]
    bench = json.loads((out / "bench.json").read_text())
    assert not bench["errors"] and len(bench["rows"]) == 4
    assert all(row["error"] is None for row in bench["rows"])
    artifacts = Path(kept["files"]["artifacts"][0]).parent
    for key, name in (
        ("after_int8_cpu", "depth.int8-cpu.onnx"),
        ("after_int8_qdq", "depth.int8.onnx"),
    ):
        assert kept["accuracy"][key] == pytest.approx(_top1(artifacts / name, test), abs=1 / n)
    assert kept["accuracy"]["after_socket"] == acc["after_socket"]

    # ... and with a gate that refuses INT8, which the demo reports and survives.
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
    bench = json.loads((out / "bench.json").read_text())
    assert not bench["errors"] and len(bench["rows"]) == 2


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert "pytest" in ci
    assert ci in (ROOT / "README.md").read_text()
