"""`socket-edge adapt --init`: re-adaptation from a deployed model, and the synth shifts."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from socket_edge.adapt import AdaptConfig, adapt
from socket_edge.adapt.loop import prepare
from socket_edge.data.encoding import Encoding
from socket_edge.errors import CheckpointError, SocketEdgeError
from socket_edge.models.checkpoint import read_checkpoint

from .conftest import run_cli
from .helpers import assert_one_line_error


def _cfg(**kw) -> AdaptConfig:
    base = dict(
        method="socket", epochs=1, batch_size=8, ti_batch_size=8, seed=1, device="cpu", ti_views=2
    )
    return AdaptConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def deployed(synth_root, source_ckpt, tmp_path_factory):
    """A depth model adapted for one epoch: what the robot runs."""
    out = tmp_path_factory.mktemp("readapt") / "deployed.pt"
    adapt(
        source_ckpt,
        synth_root / "depth/target/train",
        out,
        "depth",
        paired=synth_root / "depth/paired",
        config=_cfg(),
        show_progress=False,
    )
    return out


def test_init_starts_from_the_deployed_weights_with_the_source_statistics(
    synth_root, source_ckpt, deployed
):
    src, init = read_checkpoint(source_ckpt), read_checkpoint(deployed)
    enc = Encoding.from_dict(init["meta"]["encoding"])
    run = prepare(
        src, source_ckpt, synth_root / "depth/target/train", "depth", paired=None, cfg=_cfg(),
        encoding=enc, device=torch.device("cpu"), init=init, init_path=deployed,
    )  # fmt: skip
    state = run.model.state_dict()
    key = "backbone.layer1.0.conv1.weight"
    assert not torch.equal(src["state_dict"][key], init["state_dict"][key])
    assert torch.equal(state[key], init["state_dict"][key])
    # The BN term still pulls towards the SOURCE model's running statistics.
    first_bn = "backbone.bn1.running_mean"
    assert torch.equal(run.src_means[0], src["state_dict"][first_bn].float())
    assert not torch.equal(run.src_means[0], init["state_dict"][first_bn].float())


def test_init_with_no_training_returns_the_deployed_model(
    synth_root, source_ckpt, deployed, tmp_path
):
    out = tmp_path / "same.pt"
    adapt(
        source_ckpt,
        synth_root / "depth/target/train",
        out,
        "depth",
        config=_cfg(method="source-only"),
        init=deployed,
        show_progress=False,
    )
    got, init = read_checkpoint(out), read_checkpoint(deployed)
    for k, v in init["state_dict"].items():
        assert torch.equal(got["state_dict"][k], v), k
    assert got["meta"]["method"]["init_checkpoint"]["path"] == str(deployed)


def test_cli_readapts_and_rejects_a_foreign_init(synth_root, source_ckpt, deployed, tmp_path):
    args = [
        "adapt", "--source", str(source_ckpt), "--target", str(synth_root / "depth/target/train"),
        "--paired", str(synth_root / "depth/paired"), "--modality", "depth", "--epochs", "1",
        "--batch-size", "8", "--device", "cpu",
    ]  # fmt: skip
    r = run_cli(*args, "--init", str(deployed), "--out", str(tmp_path / "v2.pt"))
    assert r.returncode == 0, r.stderr
    meta = read_checkpoint(tmp_path / "v2.pt")["meta"]
    assert (
        meta["method"]["init_checkpoint"]["sha256"]
        == hashlib.sha256(deployed.read_bytes()).hexdigest()
    )
    other = read_checkpoint(deployed)
    other["meta"] = {**other["meta"], "classes": list(reversed(other["meta"]["classes"]))}
    torch.save(other, tmp_path / "other.pt")
    assert_one_line_error(
        run_cli(*args, "--init", str(tmp_path / "other.pt"), "--out", str(tmp_path / "x.pt")),
        "other.pt",
        "--init does not match the source model: classes",
    )
    assert_one_line_error(
        run_cli(*args, "--init", str(source_ckpt), "--out", str(tmp_path / "y.pt")),
        "--init is a rgb model, --modality is depth",
    )
    with pytest.raises(CheckpointError, match="ir model, modality is depth"):
        ir = read_checkpoint(deployed)
        ir["meta"] = {**ir["meta"], "modality": "ir"}
        torch.save(ir, tmp_path / "ir.pt")
        adapt(source_ckpt, synth_root / "depth/target/train", tmp_path / "z.pt", "depth",
              config=_cfg(), init=tmp_path / "ir.pt", show_progress=False)  # fmt: skip


# ----------------------------------------------------------------------------- synth shifts


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def test_unshifted_render_is_unchanged():
    from socket_edge.data.render import render
    from socket_edge.data.shapes import TASK_SHAPES

    # Digests of images written by `synth --per-class 4 --seed 3` before the shifts existed.
    sphere = render(TASK_SHAPES["sphere"], (3, 3, 0, 0), 64, ("depth", "ir"))
    cone = render(TASK_SHAPES["cone"], (3, 3, 3, 1), 64, ("depth", "ir"))
    assert _digest(sphere["depth"]) == (
        "dc66976c00bcc6f996d2d6a3db50617a20c9855ad7ad8a379468ea378312ed3a"
    )
    assert _digest(cone["ir"]) == "3c5a20f0676bfa70d30f445319767d07a9f8cdd8005dc84a7f2ede297382119e"


def test_shifts_change_what_they_say():
    from socket_edge.data.render import render
    from socket_edge.data.shapes import TASK_SHAPES
    from socket_edge.data.shifts import make_shift

    def stats(names):
        shift = make_shift(names) if names else None
        out = [
            render(TASK_SHAPES["cube"], (0, 3, 1, i), 32, ("depth", "ir"), shift) for i in range(4)
        ]
        d = np.stack([o["depth"] for o in out]).astype(float)
        ir = np.stack([o["ir"] for o in out]).astype(float)
        return (d > 0).mean(), np.median(d[d > 0]), np.median(ir)

    base, sensor, mount, thermal = (
        stats(n) for n in ([], ["depth-sensor"], ["mount"], ["thermal"])
    )
    assert sensor[0] < base[0] - 0.1  # more holes, shorter range
    assert sensor[2] == base[2]  # the IR camera is untouched
    assert mount[1] > base[1]  # higher camera: farther from the floor and the object
    assert thermal[2] > base[2] + 500  # new offset and a warmer room, in counts
    assert thermal[:2] == base[:2]


def test_cli_synth_shift_writes_only_target_splits(tmp_path):
    r = run_cli(
        "synth", str(tmp_path / "p"), "--shift", "prior", "--prior-class", "torus",
        "--per-class", "8", "--modality", "depth", "--size", "16", "--workers", "1",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    root = tmp_path / "p"
    assert not (root / "source_rgb").exists() and not (root / "ir").exists()
    test = root / "depth/target/test"
    counts = {d.name: len(list(d.iterdir())) for d in test.iterdir()}
    assert counts["torus"] == sum(counts.values()) - counts["torus"] == 18  # half of all
    bad = run_cli("synth", str(tmp_path / "q"), "--shift", "fog")  # Typer's own choice error
    assert bad.returncode == 2 and "'fog' is not one of" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "q").exists()
    with pytest.raises(SocketEdgeError, match="prior_class goes with shift prior"):
        from socket_edge.data.shifts import make_shift

        make_shift(["mount"], prior_class="torus")
