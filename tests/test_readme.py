"""The README's Python API examples run as written (on a small built-in benchmark)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, re.S)


def readme_block(marker: str) -> str:
    """The README's one Python block that contains ``marker``."""
    (block,) = [b for b in python_blocks() if marker in b]
    return block


def test_the_readme_has_the_robot_loop_the_monitor_and_the_pipeline():
    assert len(python_blocks()) == 3
    loop = readme_block("from socket_edge import Classifier").strip().splitlines()
    assert len(loop) <= 14
    assert "monitor.step(" in readme_block("Monitor.from_artifact")
    assert "bench(" in readme_block("export(")


@pytest.mark.slow
def test_readme_python_examples_run_as_written(tmp_path):
    """The workstation pipeline writes depth.onnx; the robot loop and the monitor use it."""
    from socket_edge.data.synth import SynthConfig, synth

    synth(tmp_path / "data" / "synth", SynthConfig(size=64, per_class=8, seed=0), workers=1,
          show_progress=False)  # fmt: skip
    env = {**os.environ, "SOCKET_EDGE_PROGRESS": "0"}
    for name, marker in (
        ("pipeline", "export("),
        ("robot loop", "from socket_edge import Classifier"),
        ("monitor", "Monitor.from_artifact"),
    ):
        r = subprocess.run(
            [sys.executable, "-c", readme_block(marker)], cwd=tmp_path, env=env,
            capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
        assert r.returncode == 0, (name, r.stderr[-3000:])
    assert (tmp_path / "depth.onnx").exists() and (tmp_path / "depth.int8-cpu.onnx").exists()
