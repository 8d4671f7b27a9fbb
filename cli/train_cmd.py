"""`socket-edge train-source`, `adapt` and `eval`."""

from __future__ import annotations

from pathlib import Path

import typer

from .choices import Arch, BNScale, Method, Modality, TIDistance, plain
from .common import emit_json, examples


def train_source(
    data: Path = typer.Argument(..., help="Labelled RGB images: DATA/<class>/<image>."),
    out: Path = typer.Option(..., "--out", "-o", help="Checkpoint to write (.pt)."),
    val: Path = typer.Option(None, "--val", help="Labelled validation folder, scored each epoch."),
    arch: Arch = typer.Option(None, "--arch", help="Backbone (default resnet18)."),
    image_size: int = typer.Option(None, "--image-size", min=16, help="Input side in pixels (64)."),
    epochs: int = typer.Option(
        None, "--epochs", min=1, help="Epochs (default: as many as --steps needs)."
    ),
    steps: int = typer.Option(
        None, "--steps", min=1, help="Update budget when --epochs is not given (3000)."
    ),
    batch_size: int = typer.Option(None, "--batch-size", min=2, help="Images per step (32)."),
    lr: float = typer.Option(
        None, "--lr", help="Peak SGD learning rate, warm-up then cosine (0.05)."
    ),
    seed: int = typer.Option(None, "--seed", help="Seed (0); CPU runs are deterministic."),
    device: str = typer.Option(
        None, "--device", help="cpu, cuda or cuda:N (default: cuda if present)."
    ),
    weights: Path = typer.Option(
        None, "--weights", help="Local torchvision ImageNet weights to start from."
    ),
    config: Path = typer.Option(
        None, "--config", help="Pipeline TOML; its \\[train] table sets defaults, flags override."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from the last epoch's state file."
    ),
    workers: int = typer.Option(None, "--workers", min=0, help="Data-loading processes (0)."),
) -> None:
    """Train an RGB source model: torchvision backbone + bottleneck + weight-normalised classifier.

    SGD with Nesterov momentum and label smoothing 0.1; a state file each epoch lets a killed run
    continue with --resume; per-epoch figures go to OUT.log.jsonl.
    """
    from socket_edge.config import merge, section
    from socket_edge.guard import option_errors
    from socket_edge.supervised import TrainConfig, train_supervised

    flags = dict(
        arch=plain(arch),
        image_size=image_size,
        epochs=epochs,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        device=device,
        workers=workers,
    )
    settings = merge(section(config, "train", TrainConfig), **flags)
    given = {k: "--" + k.replace("_", "-") for k, v in flags.items() if v is not None}
    with option_errors(given, config, "train"):
        cfg = TrainConfig(**settings)
    result = train_supervised(
        data, out, cfg, modality="rgb", val=val, weights=weights, resume=resume
    )
    last = result["history"][-1] if result["history"] else {}
    val_txt = f", val top-1 {last['val_acc']:.3f}" if "val_acc" in last else ""
    typer.echo(f"wrote {out} ({len(result['classes'])} classes{val_txt})")


def adapt(
    source: Path = typer.Option(
        ..., "--source", help="The RGB source checkpoint (from train-source)."
    ),
    target: Path = typer.Option(
        ...,
        "--target",
        help="Unlabelled target images (flat, or class subfolders whose names are ignored).",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Adapted checkpoint to write (.pt)."),
    modality: Modality = typer.Option(..., "--modality", help="Target modality."),
    paired: Path = typer.Option(
        None, "--paired", help="Task-irrelevant pairs: rgb/<stem> + <modality>/<stem>."
    ),
    method: Method = typer.Option(
        None, "--method", help="socket (default: as published), shot or source-only."
    ),
    epochs: int = typer.Option(
        None, "--epochs", min=1, help="Passes over the target images (default 10)."
    ),
    batch_size: int = typer.Option(
        None,
        "--batch-size",
        min=2,
        help="Target images per step (default 64); under torchrun, of all processes together.",
    ),
    lr: float = typer.Option(
        None, "--lr", help="Bottleneck learning rate (backbone 0.1x; default 0.01)."
    ),
    pl_weight: float = typer.Option(None, "--pl-weight", help="a: pseudo-label loss weight (0.3)."),
    im_weight: float = typer.Option(
        None, "--im-weight", help="b: information maximisation weight (1.0)."
    ),
    bn_weight: float = typer.Option(
        None, "--bn-weight", help="c: BatchNorm moment matching weight (0.5)."
    ),
    ti_weight: float = typer.Option(
        None, "--ti-weight", help="d: TI feature alignment weight (0.5)."
    ),
    bn_scale: BNScale = typer.Option(
        None,
        "--bn-scale",
        help="BN term: sum of L2 norms (published, default) or per-channel rms.",
    ),
    ti_distance: TIDistance = typer.Option(
        None,
        "--ti-distance",
        help="TI term: euclidean (published, default) or scale-free cosine.",
    ),
    joint_batch: bool = typer.Option(
        None,
        "--joint-batch/--separate-batch",
        help="One forward (one BatchNorm batch) for target + TI images; published: separate.",
    ),
    seed: int = typer.Option(None, "--seed", help="Seed (default 0); CPU runs are deterministic."),
    device: str = typer.Option(
        None, "--device", help="cpu, cuda or cuda:N (default: cuda if present)."
    ),
    config: Path = typer.Option(
        None, "--config", help="TOML with these settings (\\[adapt] table); flags override it."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from the last epoch's state file."
    ),
    eval_data: Path = typer.Option(
        None, "--eval", help="Labelled target folder scored after each epoch (monitoring only)."
    ),
    encoding: str = typer.Option(
        None,
        "--encoding",
        help="Encoding overrides, e.g. 'colormap=jet,range=fixed,lo=300,hi=5000'.",
    ),
    workers: int = typer.Option(
        None, "--workers", min=0, help="Data-loading processes (default 0)."
    ),
    init: Path = typer.Option(
        None,
        "--init",
        help="Re-adapt: start from this adapted model (e.g. the deployed one) instead of the "
        "source; TI features and BN statistics still come from --source.",
    ),
) -> None:
    """Adapt an RGB model to depth or IR with SOCKET (or the SHOT / source-only baselines).

    Needs only the RGB model, unlabelled target images and task-irrelevant RGB + target pairs.
    Writes the adapted checkpoint, a per-epoch log OUT.log.jsonl, and a state file each epoch
    so that a killed run continues with --resume. Runs under torchrun as it is (several GPUs or
    machines; see the README).
    """
    from socket_edge.adapt import AdaptConfig, load_config
    from socket_edge.adapt import adapt as run
    from socket_edge.console import main_process
    from socket_edge.data.encoding import default_encoding
    from socket_edge.guard import option_errors

    settings = load_config(config) if config else {}
    flags = dict(
        method=plain(method),
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        pl_weight=pl_weight,
        im_weight=im_weight,
        bn_weight=bn_weight,
        ti_weight=ti_weight,
        bn_scale=plain(bn_scale),
        ti_distance=plain(ti_distance),
        joint_batch=joint_batch,
        seed=seed,
        device=device,
        workers=workers,
    )
    given = {k: "--" + k.replace("_", "-") for k, v in flags.items() if v is not None}
    with option_errors(given, config, "adapt"):
        cfg = AdaptConfig(**{**settings, **{k: v for k, v in flags.items() if v is not None}})
    enc = (
        default_encoding(modality.value, **parse_encoding(encoding))
        if init is None or encoding is not None
        else None  # --init without --encoding keeps the deployed model's encoding
    )
    result = run(
        source,
        target,
        out,
        modality.value,
        paired=paired,
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


def evaluate(
    model: Path = typer.Argument(
        ..., help="A checkpoint (.pt), ONNX model (.onnx) or TensorRT engine (.engine)."
    ),
    data: Path = typer.Option(
        ..., "--data", help="Labelled folder of the model's modality: DIR/<class>/<image>."
    ),
    json_out: Path = typer.Option(
        None, "--json", help="Write {top1, n, per_class} as JSON ('-' = stdout)."
    ),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    device: str = typer.Option(None, "--device", help="cpu or cuda (checkpoints)."),
    no_verify: bool = typer.Option(
        False,
        "--no-verify",
        help="Do not check the model against its sidecar (sha256, metadata, lineage).",
    ),
) -> None:
    """Top-1 and per-class accuracy of a model on labelled data.

    An ONNX model or engine is first checked against its sidecar: its sha256, its embedded
    classes/modality/encoding, and that an INT8 file or engine belongs to the FP32 model beside it.
    """
    from rich.console import Console
    from rich.table import Table

    from socket_edge.evaluate import evaluate_artifact

    result = evaluate_artifact(
        model, data, batch_size=batch_size, device=device, verify=not no_verify
    )
    if str(json_out) != "-":
        table = Table(title=f"{model.name} on {data}")
        table.add_column("class")
        table.add_column("top-1", justify="right")
        for name, acc in result.per_class.items():
            table.add_row(name, f"{acc:.3f}")
        table.add_row("[bold]all[/bold]", f"[bold]{result.top1:.3f}[/bold] (n={result.n})")
        Console().print(table)
    emit_json(result.to_dict(), json_out)


def register(app: typer.Typer) -> None:
    app.command(
        "train-source",
        epilog=examples(
            "socket-edge train-source data/synth/source_rgb/train --val data/synth/source_rgb/val --out src.pt",
            "socket-edge train-source DATA/train --arch mobilenet_v3_small --image-size 128 --weights mnv3s_imagenet.pth --out src.pt",
        ),
    )(train_source)
    app.command(
        epilog=examples(
            "socket-edge adapt --source src.pt --target data/synth/depth/target/train "
            "--paired data/synth/depth/paired --modality depth --out depth.pt",
            "socket-edge adapt --source src.pt --target DATA/ir --modality ir --method shot --out ir-shot.pt",
            "socket-edge adapt ... --out depth.pt --resume   # continue a killed run",
            "socket-edge adapt --init depth.pt --source src.pt --target robot/new_frames "
            "--paired data/synth/depth/paired --modality depth --epochs 3 --out depth-v2.pt",
            "torchrun --nproc-per-node 4 -m socket_edge adapt ... --batch-size 256 --out depth.pt"
            "   # 4 GPUs, the same result as one",
        ),
    )(adapt)
    app.command(
        "eval",
        epilog=examples(
            "socket-edge eval adapted.pt --data data/synth/depth/target/test",
            "socket-edge eval model.int8-cpu.onnx --data DIR/test --json acc.json",
            "socket-edge eval edited.onnx --data DIR/test --no-verify   # skip the sidecar checks",
        ),
    )(evaluate)
