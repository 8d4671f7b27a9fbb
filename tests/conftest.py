"""Shared fixtures: a tiny built-in benchmark and small real models trained on it (session-wide)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("SOCKET_EDGE_PROGRESS", "0")
# Under pytest-xdist the workers share the cores: each (and the CLIs it starts) gets its share of
# threads rather than one per core, which would oversubscribe the CPU N times over.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1 and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = str(max(1, len(os.sched_getaffinity(0)) // _workers))
# Tests never touch the user's digest cache (~/.cache/socket-edge): one of their own.
if "SOCKET_EDGE_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["SOCKET_EDGE_CACHE_DIR"] = tempfile.mkdtemp(prefix="socket-edge-test-cache-")


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """The built-in benchmark at 64x64, 8 RGB training images per class (a few seconds)."""
    from socket_edge.data.synth import SynthConfig, synth

    root = tmp_path_factory.mktemp("synth")
    synth(root, SynthConfig(size=64, per_class=8, seed=0), workers=1, show_progress=False)
    return root


def _train(root: Path, out: Path, arch: str) -> Path:
    from socket_edge.supervised import TrainConfig, train_supervised

    cfg = TrainConfig(arch=arch, image_size=64, epochs=1, batch_size=16, seed=0, device="cpu")
    train_supervised(root / "source_rgb" / "train", out, cfg, show_progress=False)
    return out


@pytest.fixture(scope="session")
def source_ckpt(synth_root, tmp_path_factory) -> Path:
    """A resnet18 RGB source checkpoint trained for one epoch on the tiny benchmark."""
    return _train(synth_root, tmp_path_factory.mktemp("models") / "src-resnet18.pt", "resnet18")


@pytest.fixture(scope="session")
def source_ckpt_mobilenet(synth_root, tmp_path_factory) -> Path:
    return _train(
        synth_root, tmp_path_factory.mktemp("models") / "src-mnv3s.pt", "mobilenet_v3_small"
    )


def carried_over(source: Path, target: Path, out: Path, modality: str) -> Path:
    """``source`` carried over to ``modality`` with the source-only method (no training)."""
    from socket_edge.adapt import AdaptConfig, adapt

    config = AdaptConfig(method="source-only", device="cpu")
    adapt(source, target, out, modality, config=config, show_progress=False)
    return out


@pytest.fixture(scope="session")
def depth_ckpt(synth_root, source_ckpt, tmp_path_factory) -> Path:
    """The resnet18 source model carried over to depth (untrained)."""
    out = tmp_path_factory.mktemp("models") / "depth-source-only.pt"
    return carried_over(source_ckpt, synth_root / "depth" / "target" / "train", out, "depth")


@pytest.fixture(scope="session")
def ir_ckpt(synth_root, source_ckpt, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "ir-source-only.pt"
    return carried_over(source_ckpt, synth_root / "ir" / "target" / "train", out, "ir")


def run_cli(*args: str, cwd: Path | None = None):
    """Run `socket-edge ARGS` in a subprocess; returns the CompletedProcess (text mode)."""
    import subprocess
    import sys

    env = {**os.environ, "SOCKET_EDGE_PROGRESS": "0"}
    return subprocess.run(
        [sys.executable, "-m", "socket_edge.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )


@pytest.fixture()
def cli():
    return run_cli
