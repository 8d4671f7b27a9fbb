"""The wheel is the product: what a robot installs is the built wheel, without `-e`.

`test_wheel_holds_every_module` builds the wheel and fails if any module under socket_edge/, cli/
or calibration/ is missing from it (fast: the build only). The slow test installs it, without
`-e`, in two fresh virtual environments and runs the verbs of each install there, outside the
checkout: the full install exports a small model with `export --int8 --calib`, the robot install
(`[ort]` only: no torch) runs eval, classify, bench and monitor of what it wrote.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from socket_edge._version import __version__

from .helpers import assert_one_line_error

REPO = Path(__file__).resolve().parents[1]
# the folders of the repository and the package each one is installed as (setup.py)
PACKAGES = {"socket_edge": "socket_edge", "cli": "socket_edge/cli", "calibration": "socket_edge/calibration"}  # fmt: skip


def build_wheel(work: Path) -> Path:
    """`python -m build --wheel` of a copy of the sources (the checkout is left as it is, and
    parallel test workers never share a build folder). Returns the wheel's path."""
    src = work / "src"
    src.mkdir(parents=True)
    for path in REPO.iterdir():  # pyproject.toml, setup.py, README.md, ...
        if path.is_file():
            shutil.copy2(path, src / path.name)
    for folder in PACKAGES:
        shutil.copytree(REPO / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    out = work / "dist"
    cmd = [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(src)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    (wheel,) = out.glob("socket_edge-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def test_wheel_holds_every_module(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    want = {
        f"{package}/{path.relative_to(REPO / folder).as_posix()}"
        for folder, package in PACKAGES.items()
        for path in (REPO / folder).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert len(want) > 80  # the walk found the sources
    assert not sorted(want - names), "missing from the wheel"
    # nothing installs a generic top-level import name
    assert {n.split("/")[0] for n in names} == {
        "socket_edge",
        f"socket_edge-{__version__}.dist-info",
    }
    assert wheel.name.startswith(f"socket_edge-{__version__}-")  # the version written once
    dist = f"socket_edge-{__version__}.dist-info"
    entry_points = zipfile.ZipFile(wheel).read(f"{dist}/entry_points.txt").decode()
    assert "socket-edge = socket_edge.cli.main:run" in entry_points


def _venv(path: Path, *pip_args: str, base: bool = False) -> Path:
    """A fresh virtual environment (no system site packages) with ``pip install ARGS``; ``base``
    puts this interpreter's site-packages after its own (the full install's torch without
    installing it again). Returns its bin folder."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=300)
    if base:
        purelib = Path(sysconfig.get_paths(vars={"base": str(path)})["purelib"])
        sites = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages")]
        (purelib / "zz_base_env.pth").write_text("".join(f"{p}\n" for p in sites))
    cmd = [str(path / "bin" / "python"), "-m", "pip", "install", "-q", *pip_args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return path / "bin"


@pytest.mark.slow
def test_installed_wheel_runs_the_verbs(wheel, depth_ckpt, synth_root, tmp_path):
    work = tmp_path / "work"  # outside the checkout: nothing imports the sources by accident
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["SOCKET_EDGE_PROGRESS"] = "0"

    def run(binary: Path, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(binary), *args], capture_output=True, text=True, cwd=work, env=env, timeout=600
        )

    from socket_edge.evaluate import evaluate_artifact

    where = "import socket_edge, sys; print(socket_edge.__file__, 'torch' in sys.modules)"
    # the full install: the wheel without -e; its dependencies are those of this environment
    full = _venv(tmp_path / "full", "--no-deps", str(wheel), base=True)
    r = run(full / "python", "-c", where)
    assert r.stdout.startswith(str(tmp_path / "full")), r.stdout + r.stderr
    train, test = synth_root / "depth/target/train", synth_root / "depth/target/test"
    onnx = work / "depth.onnx"
    r = run(
        full / "socket-edge", "export", str(depth_ckpt), "--out", str(onnx), "--int8",
        "--calib", str(train), "--calib-size", "24", "--holdout", "8",
        "--max-drop", "100", "--max-disagreement", "100",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    int8 = work / "depth.int8-cpu.onnx"
    assert int8.exists() and "reference" in json.loads(onnx.with_suffix(".json").read_text())

    # the robot install: the wheel with [ort] only, no torch
    robot = _venv(tmp_path / "robot", f"{wheel}[ort]")
    assert run(robot / "python", "-c", "import torch").returncode != 0
    r = run(robot / "python", "-c", where)
    assert r.stdout.split() == [
        str(next((tmp_path / "robot").rglob("socket_edge/__init__.py"))),
        "False",
    ]
    se = robot / "socket-edge"
    r = run(se, "eval", str(onnx), "--data", str(test), "--json", "-")
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads(r.stdout)
    here = evaluate_artifact(onnx, test, show_progress=False)  # this checkout, in process
    assert (doc["n"], doc["top1"]) == (here.n, pytest.approx(here.top1))
    one = sorted(test.rglob("*.png"))[0]
    r = run(se, "classify", str(int8), str(one), "--json", "-")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["predictions"][0]["file"] == str(one)
    r = run(se, "bench", str(onnx), str(int8), "--data", str(test), "--iterations", "3",
            "--warmup-s", "0", "--json", "-")  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert [row["error"] for row in json.loads(r.stdout)["rows"]] == [None, None]
    r = run(se, "monitor", str(int8), str(train), "--window", "20", "--json", "-")
    assert r.returncode in (0, 3), r.stderr[-2000:]  # its own reference frames: never drifted
    assert json.loads(r.stdout)["windows"][0]["frames"] == 20
    r = run(se, "eval", str(depth_ckpt), "--data", str(test))  # a workstation verb
    assert_one_line_error(r, "this needs torch")


def test_tests_import_the_installed_names():
    """cli/ and calibration/ are socket_edge.cli and socket_edge.calibration: a test or benchmark
    that imports them as top-level `cli` / `calibration` (the checkout on sys.path) loads the same
    files a second time under another name, and tests what no install has."""
    import ast

    found = []
    for path in sorted([*REPO.glob("tests/*.py"), *REPO.glob("benchmarks/*.py")]):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            found += [
                f"{path.name}:{node.lineno} {n}"
                for n in names
                if n.split(".")[0] in ("cli", "calibration")
            ]
        text = path.read_text()
        if "spec_from_file_location" in text and path.name != "test_wheel.py":
            found.append(f"{path.name}: loads a module from a file path")
    assert not found
