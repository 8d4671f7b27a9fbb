"""`socket-edge doctor`."""

from __future__ import annotations

import typer

from .common import JsonOut, emit_json, examples


def doctor(json_out: JsonOut = None) -> None:
    """Show the backends, devices and versions this machine has (torch, CUDA, ONNX Runtime, TensorRT, Jetson)."""
    from rich.console import Console
    from rich.table import Table

    from socket_edge.doctor import report

    info = report()
    if str(json_out) != "-":
        table = Table(title="socket-edge doctor", show_header=False)
        for key, value in info.items():
            if isinstance(value, list):
                value = ", ".join(str(v) for v in value) or "none"
            elif isinstance(value, dict):
                value = ", ".join(f"{k}: {v}" for k, v in value.items())
            table.add_row(key, "[dim]not found[/dim]" if value is None else str(value))
        Console().print(table)
    emit_json(info, json_out)


def register(app: typer.Typer) -> None:
    app.command(epilog=examples("socket-edge doctor", "socket-edge doctor --json -"))(doctor)
