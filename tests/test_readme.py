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


def test_the_readme_has_the_robot_loop_and_the_pipeline():
    blocks = python_blocks()
    assert len(blocks) == 2
    loop = blocks[0].strip().splitlines()
    assert "from socket_edge import Classifier" in blocks[0] and len(loop) <= 14
    assert "export(" in blocks[1] and "bench(" in blocks[1]


@pytest.mark.slow
def test_readme_python_examples_run_as_written(tmp_path):
    """Block 2 (the workstation pipeline) writes depth.onnx; block 1 (the robot loop) uses it."""
    from socket_edge.data.synth import SynthConfig, synth

    synth(tmp_path / "data" / "synth", SynthConfig(size=64, per_class=8, seed=0), workers=1,
          show_progress=False)  # fmt: skip
    env = {**os.environ, "SOCKET_EDGE_PROGRESS": "0"}
    pipeline, loop = python_blocks()[1], python_blocks()[0]
    for name, code in (("pipeline", pipeline), ("robot loop", loop)):
        r = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=1800,
        )  # fmt: skip
        assert r.returncode == 0, (name, r.stderr[-3000:])
    assert (tmp_path / "depth.onnx").exists() and (tmp_path / "depth.int8-cpu.onnx").exists()
