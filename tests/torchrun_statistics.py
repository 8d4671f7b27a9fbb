"""Run under torchrun (2 gloo processes) by test_distributed.py: one SOCKET step split across the
processes against the same step in one process over the whole batch.

    torchrun --standalone --nproc-per-node 2 tests/torchrun_statistics.py SRC TARGET PAIRED OUT

Every process builds the one-process run too (no group) and compares; rank 0 writes the largest
differences as JSON to OUT.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from socket_edge import distributed
from socket_edge.adapt import AdaptConfig, losses
from socket_edge.adapt.batchnorm import globalize_batchnorm
from socket_edge.adapt.loop import FeaturesAndLogits, prepare
from socket_edge.adapt.moments import MomentCollector
from socket_edge.adapt.targets import refresh_targets
from socket_edge.data.encoding import default_encoding
from socket_edge.models.checkpoint import build_model, read_checkpoint
from socket_edge.training import seed_everything

BATCH = 8  # global batch of target images, and of TI images


def max_rel(a, b) -> float:
    """Largest |a - b| relative to the largest |b| (over lists of tensors)."""
    a, b = (a if isinstance(a, list) else [a]), (b if isinstance(b, list) else [b])
    return max(
        float((x - y).abs().max() / y.abs().max().clamp_min(1e-12))
        for x, y in zip(a, b, strict=True)
    )


def main(source: Path, target: Path, paired: Path, out: Path) -> None:
    group = distributed.group_from_env()
    device = distributed.start(group, "cpu")
    cfg = AdaptConfig(
        batch_size=BATCH, ti_batch_size=BATCH, ti_views=2, device="cpu", amp=False, nc_weight=1.0
    )
    src = read_checkpoint(source)
    # Freshly initialised weights: their pseudo-labels spread over several classes.
    torch.manual_seed(0)
    src["state_dict"] = build_model(src["meta"]).state_dict()
    enc = default_encoding("depth")
    kw = dict(paired=paired, cfg=cfg, encoding=enc, device=device)
    seed_everything(0)
    alone = prepare(src, source, target, "depth", **kw)
    seed_everything(0)
    split = prepare(src, source, target, "depth", **kw, group=group)
    r, n = group.rank, group.world_size
    res: dict = {"world_size": n}

    # The TI source features: cached once, each process computing a share.
    res["ti_features"] = max_rel(split.ti_feats, alone.ti_feats)

    # The pseudo-labels (centroids) and the neighbours' predictions: over the whole target set,
    # gathered across processes.
    weights = {"pl": 1.0, "nc": 1.0}
    targets = refresh_targets(alone.model, alone.target_set, device, cfg, weights)
    split_targets = refresh_targets(split.model, split.target_set, device, cfg, weights, group)
    res["labels_equal"] = bool(torch.equal(targets.labels, split_targets.labels))
    res["labels_classes"] = int(targets.labels.unique().numel())
    res["neighbours"] = max_rel(split_targets.neighbour_probs, targets.neighbour_probs)

    # One global batch (target + TI), and this process's share of it.
    items = [alone.target_set[i] for i in range(BATCH)]
    x, idx = torch.stack([t[0] for t in items]), torch.tensor([t[1] for t in items])
    ti = [alone.ti_set[i] for i in range(BATCH)]
    ti_batch = (
        torch.stack([t[0] for t in ti]),
        torch.tensor([t[1] for t in ti]),
        torch.tensor([t[2] for t in ti]),
    )
    share = slice(r, None, n)
    ti_share = tuple(t[share] for t in ti_batch)

    # BatchNorm moments of every layer, and the whole-batch BatchNorm itself (its outputs).
    alone.model.train()
    split.model.train()
    # (no_grad: DDP expects a backward after each forward that records a graph)
    with torch.no_grad(), MomentCollector(alone.model.backbone) as ma:
        feats_a, logits_a = alone.forward(torch.cat([x, ti_batch[0]]), BATCH)
    with torch.no_grad(), MomentCollector(split.model.backbone, group) as mb:
        feats_b, logits_b = split.forward(torch.cat([x[share], ti_share[0]]), BATCH // n)
    res["bn_layers"] = len(ma.means)
    res["bn_means"] = max_rel(mb.means, ma.means)
    res["bn_variances"] = max_rel(mb.variances, ma.variances)
    res["logits"] = max_rel(logits_b, logits_a[:BATCH][share])
    res["running_var"] = max_rel(
        [m.running_var for m in split.model.modules() if isinstance(m, torch.nn.BatchNorm2d)],
        [m.running_var for m in alone.model.modules() if isinstance(m, torch.nn.BatchNorm2d)],
    )

    # The diversity term: entropy of the batch-mean prediction over the whole batch.
    div_a = losses.entropy(logits_a.softmax(-1).mean(0))
    div_b = losses.entropy(distributed.batch_mean(logits_b.softmax(-1), group))
    res["diversity"] = max_rel(div_b.detach(), div_a.detach())

    # The loss terms and their gradients, term by term: DDP's average of the shares' gradients
    # equals the one-process gradient. In float64, so that no ReLU or max-pool decision flips
    # on float32 rounding (one flip alone moves a gradient by ~1e-3).
    torch.manual_seed(0)
    pair = []
    for g in (distributed.Group(), group):
        seed_everything(0)
        run = prepare(src, source, target, "depth", **kw)
        run.model.double()
        if g.active:  # what prepare() does in a group, after the switch to float64
            globalize_batchnorm(run.model, g)
            joint = run.cfg.joint_batch  # the same batch composition as prepare() chose
            forward = FeaturesAndLogits(run.model, joint=joint)
            run.forward = distributed.data_parallel(forward, device)
            run.group = g
        run.model.train()
        pair.append(run)
    alone, split = pair
    x, ti_batch = x.double(), (ti_batch[0].double(), *ti_batch[1:])
    ti_share = tuple(t[share] for t in ti_batch)
    res["terms"], res["gradients"] = {}, {}
    for term in ("im", "pl", "nc", "bn", "ti"):
        for run in pair:
            run.optimizer.zero_grad(set_to_none=True)
        terms_a = alone.losses(x, idx, ti_batch, targets)
        terms_b = split.losses(x[share], idx[share], ti_share, targets)
        a, b = terms_a[term], terms_b[term]
        # (+ 0 x the TI term: DDP wants every parameter in each backward; the BN-moment term
        # alone does not reach the last layers)
        (a + 0 * terms_a["ti"]).backward()
        (b + 0 * terms_b["ti"]).backward()
        b_mean = distributed.mean_over_ranks({"b": float(b)}, group)["b"]
        res["terms"][term] = abs(b_mean - float(a)) / abs(float(a))
        res["gradients"][term] = max(
            max_rel(pb.grad, pa.grad)
            for (name, pa), pb in zip(
                alone.model.named_parameters(), split.model.parameters(), strict=True
            )
            # (a Linear bias right before a BatchNorm gets a zero gradient, up to rounding;
            # the BN-moment term does not reach the layers after the last BatchNorm's input)
            if pa.grad is not None and name != "bottleneck.0.bias"
        )
    if group.is_main:
        out.write_text(json.dumps(res, indent=2))
    distributed.stop(group)


if __name__ == "__main__":
    main(*(Path(a) for a in sys.argv[1:5]))
