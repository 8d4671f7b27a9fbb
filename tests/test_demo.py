"""`socket-edge demo --quick` end to end (the CI smoke run of the whole pipeline), and the README."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_demo_runs_the_whole_pipeline(cli, tmp_path):
    out = tmp_path / "demo"
    result = cli("demo", "--quick", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "socket-edge demo: RGB -> depth" in result.stdout
    for text in (
        "RGB model used as is on depth",
        "after SOCKET",
        "after INT8",
        "depth.int8-cpu.onnx",
    ):
        assert text in result.stdout
    summary = json.loads((out / "demo.json").read_text())
    acc = summary["accuracy"]
    for key in ("rgb_model_on_target", "after_socket", "after_int8_cpu", "after_int8_qdq"):
        assert 0.0 <= acc[key] <= 1.0, key
    for artifact in summary["files"]["artifacts"]:
        assert Path(artifact).exists() and summary["latency_ms_p50"][Path(artifact).name] > 0
    bench = json.loads((out / "bench.json").read_text())
    assert not bench["errors"] and len(bench["rows"]) == 4
    # A second run reuses every step's output instead of starting over.
    again = cli("demo", "--quick", "--out", str(out), "--json", "-")
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout)["accuracy"]["after_socket"] == acc["after_socket"]


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert "pytest" in ci
    assert ci in (ROOT / "README.md").read_text()
