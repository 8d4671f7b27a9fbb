"""A bench report as a terminal table (rich), Markdown, and a PNG plot of accuracy vs latency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import SocketEdgeError
from ..files import atomic_path, write_text
from .machine import describe as describe_machine

COLUMNS = (
    "artifact",
    "backend",
    "precision",
    "device",
    "batch",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "mean ms",
    "min ms",
    "max ms",
    "CV",
    "images/s",
    "top-1",
    "agree",
    "mJ/image",
    "peak RSS MB",
)
# The terminal table leaves out min/max (JSON and Markdown have them) to fit a terminal.
TERMINAL = tuple(c for c in COLUMNS if c not in ("min ms", "max ms"))


def _f(value: Any, fmt: str = ".2f") -> str:
    return "-" if value is None else format(value, fmt)


def row_cells(row: dict[str, Any]) -> list[str]:
    """The table cells of one row, as text (an error row shows its error)."""
    head = [
        row.get("name") or str(row.get("artifact")),
        row.get("backend") or "-",
        row.get("precision") or "-",
        row.get("device") or "-",
        _f(row.get("batch"), "d"),
    ]
    if row.get("error"):
        return head + ["error: " + row["error"]] + [""] * (len(COLUMNS) - len(head) - 1)
    lat = row["latency_ms"]
    return head + [
        _f(lat["p50"], ".3f"),
        _f(lat["p90"], ".3f"),
        _f(lat["p99"], ".3f"),
        _f(lat["mean"], ".3f"),
        _f(lat["min"], ".3f"),
        _f(lat["max"], ".3f"),
        _f(row.get("cv"), ".1%"),
        _f(row.get("throughput_ips"), ".1f"),
        _f(row.get("top1"), ".3f"),
        _f(row.get("agreement"), ".3f"),
        _f(row.get("energy_mj_per_image"), ".2f"),
        _f(row.get("peak_rss_mb"), ".0f"),
    ]


def settings_line(doc: dict[str, Any]) -> str:
    """How it was measured, in trtexec's spirit: clock, sync, copies, CUDA graphs, threads."""
    s = doc["settings"]
    gpu_rows = [r for r in doc["rows"] if (r.get("timing") or {}).get("gpu")]
    parts = [s["timing"], "latency = " + s["clock"]]
    if gpu_rows:
        t = gpu_rows[0]["timing"]
        graph = {True: "on", False: "off"}.get(t["cuda_graph"], t["cuda_graph"])
        parts.append(f"GPU: {t['gpu_sync']}, host-device copies {t['copies']}, CUDA graph {graph}")
    parts.append(f"threads {s['threads'] or 'backend default'}")
    if s.get("power_source"):
        parts.append(f"power: {s['power_note']}")
    if s.get("reference"):
        parts.append(f"agreement: top-1 agreement with {s['reference']}")
    return "; ".join(parts)


def to_markdown(doc: dict[str, Any]) -> str:
    lines = [
        f"Machine: {describe_machine(doc['machine'])}.",
        "",
        f"Data: `{doc['settings']['data']}`. {settings_line(doc)}.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for row in doc["rows"]:
        cells = [c.replace("|", "\\|") for c in row_cells(row)]
        lines.append("| " + " | ".join(cells) + " |")
    if doc.get("warnings"):
        lines += [""] + [f"- warning: {w}" for w in doc["warnings"]]
    return "\n".join(lines) + "\n"


def write_markdown(doc: dict[str, Any], path: str | Path) -> None:
    write_text(path, to_markdown(doc))


def print_table(doc: dict[str, Any], console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    if not console.is_terminal:
        console.width = max(console.width, 160)  # a log file or pipe: do not squeeze columns
    table = Table(
        title=f"socket-edge bench on {doc['settings']['data']}",
        caption=describe_machine(doc["machine"]),
    )
    keep = [COLUMNS.index(name) for name in TERMINAL]
    for name in TERMINAL:
        table.add_column(name, justify="left" if name in COLUMNS[:4] else "right")
    for row in doc["rows"]:
        cells = row_cells(row)
        if row.get("error"):
            cells[5] = "[red]error[/red]"
        table.add_row(*[cells[i] for i in keep])
    console.print(table)
    console.print(settings_line(doc), style="dim", markup=False)
    for row in doc["rows"]:
        t = row.get("trtexec")
        if t and not t.get("error"):
            console.print(
                f"trtexec {row['name']} batch {row['batch']}: GPU compute p50 "
                f"{t['gpu_compute_p50_ms']} ms, p99 {t['gpu_compute_p99_ms']} ms; host latency p50 "
                f"{t['latency_p50_ms']} ms (ours: p50 {row['latency_ms']['p50']:.3f} ms)",
                markup=False,
            )
    for row in doc["rows"]:
        if row.get("error"):
            console.print(f"error: {row['error']}", style="red", markup=False)
    for w in doc.get("warnings") or []:
        console.print(f"warning: {w}", style="yellow", markup=False)


def plot(doc: dict[str, Any], path: str | Path) -> None:
    """Accuracy (top-1, or agreement without labels) against p50 latency per image, one point per
    artifact and batch, written as PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SocketEdgeError(
            "plot needs matplotlib: pip install 'socket-edge[plot]'", path, settings=("plot",)
        ) from None
    rows = [r for r in doc["rows"] if not r.get("error")]
    labelled = any(r.get("top1") is not None for r in rows)
    key, label = (
        ("top1", "top-1 accuracy")
        if labelled
        else ("agreement", f"top-1 agreement with {doc['settings'].get('reference')}")
    )
    points = [r for r in rows if r.get(key) is not None]
    if not points:
        raise SocketEdgeError("nothing to plot: no row has latency and accuracy", path)
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for batch in sorted({r["batch"] for r in points}):
        sel = [r for r in points if r["batch"] == batch]
        xs = [r["latency_ms"]["p50"] / batch for r in sel]
        ys = [r[key] for r in sel]
        ax.scatter(xs, ys, s=40, label=f"batch {batch}", zorder=3)
        for r, x, y in zip(sel, xs, ys, strict=True):
            ax.annotate(
                f"{r['name']}", (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7
            )
    ax.set_xlabel("p50 latency per image (ms)")
    ax.set_ylabel(label)
    ax.set_xscale("log")
    fmt = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_formatter(fmt)
    ax.xaxis.set_minor_formatter(fmt)
    ax.tick_params(axis="x", which="minor", labelsize=7)
    lo, hi = min(r[key] for r in points), max(r[key] for r in points)
    pad = max(0.05 - (hi - lo), 0.0) / 2 + 0.01
    ax.set_ylim(max(lo - pad, 0.0), min(hi + pad, 1.0) + 0.01)
    ax.grid(True, alpha=0.3, which="both")
    ax.set_title("socket-edge bench: accuracy vs latency", fontsize=10)
    ax.legend(fontsize=8)
    fig.text(0.01, 0.005, describe_machine(doc["machine"])[:140], fontsize=6, alpha=0.7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
