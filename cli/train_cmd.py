"""`socket-edge train-source` and `adapt`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .choices import Arch, BNScale, Method, Modality, TIDistance
from .common import (
    Every,
    Stride,
    Tolerance,
    config_option,
    defaults_from,
    examples,
    sampling,
    settings,
)

# Options train-source and adapt share.
Seed = Annotated[int | None, typer.Option("--seed", help="Seed; CPU runs are deterministic.")]
Device = Annotated[
    str | None, typer.Option("--device", help="cpu, cuda or cuda:N (default: cuda if present).")
]
Workers = Annotated[int | None, typer.Option("--workers", min=0, help="Data-loading processes.")]
Resume = Annotated[
    bool, typer.Option("--resume", help="Continue from the last epoch's state file.")
]
Out = Annotated[Path, typer.Option("--out", "-o", help="Checkpoint to write (.pt).")]


def train_source(
    ctx: typer.Context,
    data: Annotated[Path, typer.Argument(help="Labelled RGB images: DATA/<class>/<image>.")],
    out: Out,
    val: Annotated[
        Path | None, typer.Option("--val", help="Labelled validation folder, scored each epoch.")
    ] = None,
    arch: Annotated[Arch | None, typer.Option("--arch", help="Backbone.")] = None,
    image_size: Annotated[
        int | None, typer.Option("--image-size", min=16, help="Input side in pixels.")
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option("--epochs", min=1, help="Epochs (default: as many as --steps needs)."),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option("--steps", min=1, help="Update budget when --epochs is not given."),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=2, help="Images per step.")
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option("--lr", help="Peak SGD learning rate, warm-up then cosine."),
    ] = None,
    stop_at_val: Annotated[
        float | None,
        typer.Option(
            "--stop-at-val",
            min=0.0,
            max=1.0,
            help="Stop after the first epoch whose --val top-1 reaches this fraction (a model "
            "left weak on purpose, e.g. for a benchmark).",
        ),
    ] = None,
    seed: Seed = None,
    device: Device = None,
    weights: Annotated[
        Path | None,
        typer.Option("--weights", help="Local torchvision ImageNet weights to start from."),
    ] = None,
    config: config_option("train") = None,
    resume: Resume = False,
    workers: Workers = None,
) -> None:
    """Train an RGB source model: torchvision backbone + bottleneck + weight-normalised classifier.

    SGD with Nesterov momentum and label smoothing 0.1; a state file each epoch lets a killed run
    continue with --resume; per-epoch figures go to OUT.log.jsonl.
    """
    from socket_edge.supervised import TrainConfig, train_supervised

    cfg = settings(TrainConfig, ctx, "train")
    result = train_supervised(
        data, out, cfg, modality="rgb", val=val, weights=weights, resume=resume
    )
    last = result["history"][-1] if result["history"] else {}
    val_txt = f", val top-1 {last['val_acc']:.3f}" if "val_acc" in last else ""
    typer.echo(f"wrote {out} ({len(result['classes'])} classes{val_txt})")


def adapt(
    ctx: typer.Context,
    source: Annotated[
        Path, typer.Option("--source", help="The RGB source checkpoint (from train-source).")
    ],
    target: Annotated[
        Path,
        typer.Option(
            "--target",
            help="Unlabelled target images (flat, or class subfolders whose names are ignored), "
            "or a bag (.bag, .db3, .mcap) with --target-topic.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Adapted checkpoint to write (.pt).")],
    modality: Annotated[Modality, typer.Option("--modality", help="Target modality.")],
    paired: Annotated[
        Path | None,
        typer.Option(
            "--paired",
            help="Task-irrelevant pairs: rgb/<stem> + <modality>/<stem>, or a bag with "
            "--pair-topics.",
        ),
    ] = None,
    held_out: Annotated[
        Path | None,
        typer.Option(
            "--held-out-pairs",
            help="More TI pairs, kept out of --paired: after adapting, the share on which the "
            "adapted model's class agrees with the source's on the RGB partner (label-free: "
            "compare settings by it).",
        ),
    ] = None,
    target_topic: Annotated[
        str | None, typer.Option("--target-topic", help="The --target bag's image topic.")
    ] = None,
    pair_topics: Annotated[
        str | None,
        typer.Option(
            "--pair-topics",
            help="RGB_TOPIC,TARGET_TOPIC of the --paired bag, matched on header.stamp.",
        ),
    ] = None,
    every: Every = None,
    stride: Stride = None,
    tolerance: Tolerance = None,
    method: Annotated[
        Method | None,
        typer.Option(
            "--method",
            help="socket-rms (default: SOCKET with the scale-free BN term, the backbone at the "
            "full learning rate and TI weight 1), socket (as published), shot or source-only.",
        ),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(
            "--epochs",
            min=1,
            help="Passes over the target images (default: as many as --steps needs).",
        ),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option(
            "--steps",
            min=1,
            help="Update budget when --epochs is not given (default 600: 20 epochs of 2,000 "
            "images, 2 of 20,000).",
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size",
            min=2,
            help="Target images per step; under torchrun, of all processes together.",
        ),
    ] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Bottleneck learning rate.")] = None,
    backbone_lr_mult: Annotated[
        float | None,
        typer.Option(
            "--backbone-lr-mult",
            min=0,
            help="Backbone learning rate as a multiple of --lr (socket-rms 1, published 0.1).",
        ),
    ] = None,
    pl_weight: Annotated[
        float | None, typer.Option("--pl-weight", help="a: pseudo-label loss weight.")
    ] = None,
    im_weight: Annotated[
        float | None, typer.Option("--im-weight", help="b: information maximisation weight.")
    ] = None,
    bn_weight: Annotated[
        float | None, typer.Option("--bn-weight", help="c: BatchNorm moment matching weight.")
    ] = None,
    ti_weight: Annotated[
        float | None,
        typer.Option(
            "--ti-weight", help="d: TI feature alignment weight (socket-rms 1, published 0.5)."
        ),
    ] = None,
    bn_scale: Annotated[
        BNScale | None,
        typer.Option(
            "--bn-scale",
            help="BN term: sum of L2 norms (published) or per-channel rms (socket-rms's).",
        ),
    ] = None,
    ti_distance: Annotated[
        TIDistance | None,
        typer.Option("--ti-distance", help="TI term: euclidean (published) or scale-free cosine."),
    ] = None,
    joint_batch: Annotated[
        bool | None,
        typer.Option(
            "--joint-batch/--separate-batch",
            help="One forward (one BatchNorm batch) for target + TI images; published: separate.",
        ),
    ] = None,
    pl_keep_classes: Annotated[
        bool | None,
        typer.Option(
            "--keep-classes/--drop-empty-classes",
            help="Pseudo-labels: a class no image is assigned to keeps its centroid; "
            "published (SHOT): it is dropped for good.",
        ),
    ] = None,
    nc_weight: Annotated[
        float | None,
        typer.Option(
            "--nc-weight",
            help="Neighbourhood consistency weight: each prediction pulled towards those of its "
            "nearest target images (0: off, as published).",
        ),
    ] = None,
    balance_classes: Annotated[
        bool | None,
        typer.Option(
            "--balance-classes/--no-balance-classes",
            help="After training, offset the classifier's bias so that the mean prediction over "
            "the target images is uniform (socket-rms's; published: off).",
        ),
    ] = None,
    seed: Seed = None,
    device: Device = None,
    config: config_option("adapt") = None,
    resume: Resume = False,
    eval_data: Annotated[
        Path | None,
        typer.Option(
            "--eval", help="Labelled target folder scored after each epoch (monitoring only)."
        ),
    ] = None,
    encoding: Annotated[
        str | None,
        typer.Option(
            "--encoding",
            help="Encoding overrides, e.g. 'colormap=jet,range=fixed,lo=300,hi=5000'.",
        ),
    ] = None,
    workers: Workers = None,
    init: Annotated[
        Path | None,
        typer.Option(
            "--init",
            help="Re-adapt: start from this adapted model (e.g. the deployed one) instead of the "
            "source; TI features and BN statistics still come from --source.",
        ),
    ] = None,
) -> None:
    """Adapt an RGB model to depth or IR with SOCKET (or the SHOT / source-only baselines).

    Needs only the RGB model, unlabelled target images and task-irrelevant RGB + target pairs.
    Writes the adapted checkpoint, a per-epoch log OUT.log.jsonl, and a state file each epoch
    so that a killed run continues with --resume. Runs under torchrun as it is (several GPUs or
    machines; see the README).
    """
    from socket_edge.adapt import AdaptConfig
    from socket_edge.adapt import adapt as run
    from socket_edge.adapt.validators import check_held_out, score_pairs
    from socket_edge.console import main_process
    from socket_edge.data import bags
    from socket_edge.data.encoding import default_encoding
    from socket_edge.errors import SocketEdgeError

    cfg = settings(AdaptConfig, ctx, "adapt")
    pick = sampling(every, stride)
    target_src = bags.source(target, target_topic, pick, "target_topic")
    if paired is None and (pair_topics is not None or tolerance is not None):
        raise SocketEdgeError("--pair-topics and --tolerance need a --paired bag")
    paired_src = (
        bags.pairs_source(paired, pair_topics, modality.value, tolerance, pick)
        if paired is not None
        else None
    )
    bags.check_sampled(pick, target_src, paired_src)
    held_out_count = check_held_out(paired, held_out, modality.value) if held_out is not None else 0
    enc = (
        default_encoding(modality.value, **parse_encoding(encoding))
        if init is None or encoding is not None
        else None  # --init without --encoding keeps the deployed model's encoding
    )
    result = run(
        source,
        target_src,
        out,
        modality.value,
        paired=paired_src,
        config=cfg,
        encoding=enc,
        eval_data=eval_data,
        resume=resume,
        init=init,
    )
    if not main_process():  # under torchrun, rank 0 wrote the file and says so
        return
    acc = f", target top-1 {result['eval_top1']:.3f}" if "eval_top1" in result else ""
    typer.echo(f"wrote {out} ({result['method']}, {len(result['history'])} epochs{acc})")
    if held_out is not None:
        got = score_pairs(out, source, held_out, cfg.device)
        typer.echo(
            f"agreement with the source on {held_out_count} held-out TI pairs: "
            f"{got['ti_agreement']:.3f} (feature cosine {got['ti_feature_cosine']:.3f})"
        )


def parse_encoding(text: str | None) -> dict:
    """'colormap=jet,lo=300' -> {'colormap': 'jet', 'lo': 300.0}."""
    from socket_edge.errors import SocketEdgeError

    out: dict = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise SocketEdgeError(f"--encoding takes key=value pairs, got {item!r}")
        key, value = key.strip(), value.strip()
        if key in ("lo", "hi"):
            out[key] = float(value)
        elif key == "invert":
            out[key] = value.lower() in ("1", "true", "yes")
        else:
            out[key] = value
    return out


def register(app: typer.Typer) -> None:
    app.command(
        "train-source",
        cls=defaults_from("socket_edge.supervised:TrainConfig"),
        epilog=examples(
            "socket-edge train-source data/synth/source_rgb/train --val data/synth/source_rgb/val --out src.pt",
            "socket-edge train-source DATA/train --arch mobilenet_v3_small --image-size 128 --weights mnv3s_imagenet.pth --out src.pt",
        ),
    )(train_source)
    app.command(
        cls=defaults_from("socket_edge.adapt.config:AdaptConfig"),
        epilog=examples(
            "socket-edge adapt --source src.pt --target data/synth/depth/target/train "
            "--paired data/synth/depth/paired --modality depth --out depth.pt",
            "socket-edge adapt --source src.pt --target DATA/ir --modality ir --method shot --out ir-shot.pt",
            "socket-edge adapt ... --paired pairs/train --held-out-pairs pairs/held_out "
            "--bn-scale sum --out depth-b.pt   # compare settings without labels",
            "socket-edge adapt ... --out depth.pt --resume   # continue a killed run",
            "socket-edge adapt --init depth.pt --source src.pt --target robot/new_frames "
            "--paired data/synth/depth/paired --modality depth --epochs 3 --out depth-v2.pt",
            "socket-edge adapt --source src.pt --target drive.mcap --target-topic "
            "/camera/depth/image_rect_raw --paired drive.mcap --pair-topics "
            "/camera/color/image_raw,/camera/depth/image_rect_raw --modality depth --every 10 "
            "--out depth.pt",
            "torchrun --nproc-per-node 4 -m socket_edge adapt ... --batch-size 256 --out depth.pt"
            "   # 4 GPUs, the same result as one",
        ),
    )(adapt)
