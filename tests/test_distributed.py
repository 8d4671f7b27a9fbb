"""Scale-out adaptation: the same result on 1 or N processes (torchrun, gloo on this CPU)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from socket_edge import distributed
from socket_edge.adapt import AdaptConfig, adapt
from socket_edge.adapt.batchnorm import GlobalBatchNorm1d, GlobalBatchNorm2d, globalize_batchnorm
from socket_edge.distributed import Group, GroupSetupError
from socket_edge.models.checkpoint import load_checkpoint, read_checkpoint
from socket_edge.training import log_path, make_loader, shard_loader, state_path

HERE = Path(__file__).resolve().parent


def torchrun(*args: str, env: dict | None = None, processes: int = 2):
    """`torchrun --standalone --nproc-per-node N ARGS` (2 gloo processes, 1 thread each)."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "SOCKET_EDGE_PROGRESS": "0",
        **(env or {}),
    }
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += ["--nproc-per-node", str(processes), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def error_lines(result) -> list[str]:
    return [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]


def assert_no_traceback_of_ours(result) -> None:
    # torchrun prints its own summary of a failed group; our processes must print one line.
    assert not re.search(r'File ".*socket_edge', result.stderr), result.stderr


# ----------------------------------------------------------------- without a process group


class Items(torch.utils.data.Dataset):
    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return torch.zeros(1), i


@pytest.mark.parametrize("world", [2, 4])
def test_shard_loader_splits_each_global_batch_of_the_one_process_run(world):
    data, batch = Items(37), 8
    one = [set(idx.tolist()) for _, idx in make_loader(data, batch, True, 11, drop_last=True)]
    shares = [
        [idx.tolist() for _, idx in shard_loader(data, batch, 11, Group(r, world))]
        for r in range(world)
    ]
    assert all(len(s) == len(one) == 37 // batch for s in shares)
    for k, global_batch in enumerate(one):
        parts = [s[k] for s in shares]
        assert all(len(p) == batch // world for p in parts)
        assert set().union(*map(set, parts)) == global_batch


def test_global_batchnorm_alone_is_batchnorm():
    torch.manual_seed(0)
    ref = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.BatchNorm1d(288))
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.BatchNorm1d(288))
    net.load_state_dict(ref.state_dict())
    globalize_batchnorm(net, Group())
    assert isinstance(net[1], GlobalBatchNorm2d) and isinstance(net[3], GlobalBatchNorm1d)
    assert list(net.state_dict()) == list(ref.state_dict())
    x = torch.randn(16, 3, 8, 8) * 3 + 2
    for training in (True, True, False):
        net.train(training)
        ref.train(training)
        y, y_ref = net(x), ref(x)
        torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
        if training:
            y.square().mean().backward()
            y_ref.square().mean().backward()
    for a, b in zip(net.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6)
    for a, b in zip(net.buffers(), ref.buffers(), strict=True):
        torch.testing.assert_close(a, b)


def test_group_from_torchrun_environment(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert not distributed.group_from_env().active
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    group = distributed.group_from_env()
    assert (group.rank, group.world_size, group.local_rank, group.active) == (3, 4, 1, True)
    assert group.split(64, "ti_batch_size") == 16
    with pytest.raises(GroupSetupError, match="ti_batch_size 63 does not split across 4") as err:
        group.split(63, "ti_batch_size")
    assert err.value.for_cli().startswith("--ti-batch-size 63 does not split across 4 processes")
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(GroupSetupError, match="inconsistent"):
        distributed.group_from_env()


# ------------------------------------------------------------------ 2 gloo processes


def test_two_processes_see_the_statistics_of_the_whole_batch(synth_root, source_ckpt, tmp_path):
    """BN moments, the diversity term, the centroids (pseudo-labels), the cached TI features, the
    loss terms and their gradients: 2 processes on halves == 1 process on the whole batch."""
    out = tmp_path / "stats.json"
    depth = synth_root / "depth"
    result = torchrun(
        str(HERE / "torchrun_statistics.py"),
        str(source_ckpt),
        str(depth / "target" / "train"),
        str(depth / "paired"),
        str(out),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["world_size"] == 2
    assert res["ti_features"] < 1e-6
    assert res["labels_equal"] and res["labels_classes"] >= 3
    assert res["neighbours"] < 1e-5
    assert res["bn_layers"] == 2 * 20  # 20 BatchNorm layers, a target pass and a TI pass
    # float32: the sums of a split batch round differently, by ~1e-6
    for key in ("bn_means", "bn_variances", "running_var", "diversity"):
        assert res[key] < 1e-5, (key, res[key])
    assert res["logits"] < 1e-4
    assert set(res["terms"]) == {"im", "pl", "nc", "bn", "ti"}
    assert max(res["terms"].values()) < 1e-5, res["terms"]
    # float64 model; the losses themselves still round through float32 (~1e-7)
    assert max(res["gradients"].values()) < 1e-5, res["gradients"]


def _adapt_args(synth_root, source: Path, out: Path, config: Path, *extra: str) -> list[str]:
    depth = synth_root / "depth"
    return [
        "--source", str(source),
        "--target", str(depth / "target" / "train"),
        "--paired", str(depth / "paired"),
        "--modality", "depth",
        "--config", str(config),
        "--out", str(out),
        *extra,
    ]  # fmt: skip


# bn_scale "rms": the published BN term is ~300x larger, and its gradients amplify float32
# rounding (one process on 1 vs 2 threads then differs by ~1e-2, as much as the check below);
# target and TI images still take separate passes, as published. The backbone at the published
# 0.1x rate: socket-rms's 1x amplifies rounding alike (conv1 differed by 6.3e-3 in one CI run).
SETTINGS = dict(
    epochs=2, batch_size=8, ti_batch_size=8, ti_views=2, seed=1, device="cpu", amp=False,
    bn_scale="rms", backbone_lr_mult=0.1,
)  # fmt: skip


def write_config(path: Path) -> Path:
    """SETTINGS as the [adapt] table of a config file (what the torchrun runs read)."""
    path.write_text("[adapt]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in SETTINGS.items()))
    return path


def test_two_process_run_survives_a_dead_rank_and_matches_one_process(
    synth_root, source_ckpt, tmp_path
):
    config = write_config(tmp_path / "adapt.toml")
    # One process, for reference (the library, as `socket-edge adapt` runs it).
    depth = synth_root / "depth"
    alone = tmp_path / "alone.pt"
    adapt(
        source_ckpt,
        depth / "target" / "train",
        alone,
        "depth",
        paired=depth / "paired",
        config=AdaptConfig(**SETTINGS),
        show_progress=False,
    )

    # Two processes; rank 1 dies after epoch 1, once rank 0 has saved it. (Were it to die
    # sooner, torchrun could stop rank 0 in the middle of that save: no state file at all.)
    out = tmp_path / "split" / "depth.pt"
    args = _adapt_args(synth_root, source_ckpt, out, config)
    die = {"DIE_AFTER_EPOCH": "1", "DIE_WHEN_EXISTS": str(state_path(out))}
    died = torchrun(str(HERE / "torchrun_adapt.py"), *args, env=die)
    assert died.returncode != 0
    lines = error_lines(died)
    assert len(lines) == 1, died.stderr[-3000:]
    assert "--resume" in lines[0] and ("another process" in lines[0] or "SIGTERM" in lines[0])
    assert_no_traceback_of_ours(died)
    assert not out.exists()
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "depth.log.jsonl",
        "depth.state.pt",
    ]  # no temp files, nothing half-written
    assert read_checkpoint(state_path(out))["epoch"] == 1

    # Resumed with the `python -m socket_edge` form: finishes the run.
    resumed = torchrun("-m", "socket_edge", "adapt", *args, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "wrote" in resumed.stdout and resumed.stdout.count("wrote") == 1  # rank 0 only
    assert not state_path(out).exists()
    log = [json.loads(ln) for ln in log_path(out).read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]

    # The same weights as one process, up to float32 rounding: after these 10 steps the two
    # differ by ~1.4e-3 of a tensor's largest value; one process on 1 thread instead of 2
    # differs from itself by ~2e-3. (Local instead of whole-batch statistics: > 10%.)
    a, _ = load_checkpoint(alone)
    b, _ = load_checkpoint(out)
    for (name, ta), tb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        if ta.is_floating_point():
            scale = ta.abs().max().clamp_min(1e-3)
            assert float((ta - tb).abs().max() / scale) < 5e-3, name
        else:
            assert torch.equal(ta, tb), name


def test_batch_that_does_not_split_is_one_clear_error(synth_root, source_ckpt, tmp_path):
    config = write_config(tmp_path / "adapt.toml")
    out = tmp_path / "out" / "depth.pt"
    result = torchrun(
        "-m", "socket_edge", "adapt",
        *_adapt_args(synth_root, source_ckpt, out, config, "--batch-size", "7"),
    )  # fmt: skip
    assert result.returncode != 0
    assert error_lines(result) == [
        "error: --batch-size 7 does not split across 2 processes; use a multiple of 2 "
        "(the global batch is shared, not repeated)"
    ], result.stderr[-3000:]
    assert_no_traceback_of_ours(result)
    assert not out.parent.exists() or not any(out.parent.iterdir())
