"""Small helpers shared by the command modules."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from socket_edge.errors import SocketEdgeError


def emit_json(obj: Any, path: Path | None) -> None:
    """Write ``obj`` as JSON to ``path`` (atomically), or to stdout when ``path`` is '-'."""
    if path is None:
        return
    if str(path) == "-":
        sys.stdout.write(json.dumps(obj, indent=2) + "\n")
        return
    from socket_edge.files import write_json

    write_json(path, obj)
    typer.echo(f"wrote {path}", err=True)


def parse_int_list(text: str, option: str) -> list[int]:
    """'1,8,32' -> [1, 8, 32]."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SocketEdgeError(f"{option} takes comma-separated integers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise SocketEdgeError(f"{option} takes positive integers, got {text!r}")
    return values


def examples(*lines: str) -> str:
    """An 'Examples' block for a command's --help epilog."""
    return "[bold]Examples[/bold]\n\n" + "\n\n".join(f"  [cyan]$ {ln}[/cyan]" for ln in lines)


def given(ctx: typer.Context, name: str) -> bool:
    """Whether option ``name`` (the function parameter) was set on the command line."""
    # Compared by name: newer Typer vendors click, older Typer depends on it.
    source = ctx.get_parameter_source(name)
    return source is not None and source.name != "DEFAULT"


def overlay(
    ctx: typer.Context, settings: dict[str, Any], flags: dict[str, tuple[str, Any]]
) -> dict:
    """Config-file ``settings`` with the flags given on the command line on top.

    ``flags`` maps a config field to (command-line parameter, value); a flag left at its default
    fills only the fields the file does not set.
    """
    chosen = {f: v for f, (param, v) in flags.items() if given(ctx, param) or f not in settings}
    return {**settings, **chosen}
