"""Helpers shared by the command modules: settings from flags and --config, help, JSON output.

Conventions (docs/architecture.md, "The command line"):

* Options are declared as ``Annotated[T | None, typer.Option(...)] = None`` when they set a field
  of a settings dataclass; ``settings()`` builds the dataclass from the flags actually given,
  the ``--config`` file's table under them and the dataclass's defaults under both. Defaults live
  in the dataclass only: ``--help`` shows them (``defaults_from``), help texts never restate them.
* Library errors name settings (``SocketEdgeError(..., settings=("max_drop",))``); the CLI shows
  them as flags (``--max-drop``; ``FLAGS`` where the flag is named otherwise).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperCommand

from socket_edge.errors import SocketEdgeError

# Settings whose flag is not --field-name (for SocketEdgeError.for_cli).
FLAGS = {
    "batches": "--batch",
    "verify": "--no-verify",
    "workspace_mib": "--workspace",
    "modalities": "--modality",
    "eval_data": "--eval",
    "pl_keep_classes": "--keep-classes",
    "stream_seconds": "--stream",
}

# Options every command that writes a report shares.
JsonOut = Annotated[
    Path | None, typer.Option("--json", help="Write the result as JSON ('-' = stdout).")
]


def config_option(table: str, what: str = "sets defaults, flags override") -> Any:
    """The ``--config`` option of a command that reads table ``table`` of the pipeline TOML."""
    # \\[ keeps Rich from reading '[train]' as markup.
    return Annotated[
        Path | None, typer.Option("--config", help=f"Pipeline TOML; its \\[{table}] table {what}.")
    ]


def settings(cls: type, ctx: typer.Context, table: str | None, **converted: Any) -> Any:
    """The settings dataclass ``cls`` of this command: the flags given on the command line, over
    the ``--config`` file's ``[table]``, over ``cls``'s defaults.

    Options named like a field of ``cls`` are taken from ``ctx.params`` (None = not given; Enum
    choices as their values); ``converted`` gives the fields whose option is named or typed
    otherwise (None = not given). A bad value from the file is reported as the file's, with its
    table; a bad value from a flag names the flag (``for_cli``).
    """
    from socket_edge.config import section

    names = {f.name for f in dataclasses.fields(cls)}
    flags = {k: plain(v) for k, v in ctx.params.items() if k in names}
    given = {k: v for k, v in {**flags, **converted}.items() if v is not None}
    config = ctx.params.get("config")
    from_file = section(config, table, cls) if table else {}
    _check_choices(ctx, from_file, config, table)
    try:
        return cls(**{**from_file, **given})
    except SocketEdgeError as exc:
        if config is not None and any(s in from_file and s not in given for s in exc.settings):
            exc.blame(config, f"[{table}] {exc.message}")
        raise


def _check_choices(ctx: typer.Context, from_file: dict, config: Any, table: str | None) -> None:
    """File values of fields whose flag has fixed choices must be among them, as flags must."""
    for name, choices in _choices(ctx.command.callback).items():
        value = from_file.get(name)
        values = value if isinstance(value, (list, tuple)) else [value]
        if value is not None and any(v not in choices for v in values):
            raise SocketEdgeError(
                f"[{table}] {name} must be one of {', '.join(choices)}, got {value!r}", config
            )


def _choices(function: Any) -> dict[str, list[str]]:
    """Parameter name -> the values of its Enum choice (in Annotated, Optional or a list)."""
    import inspect
    import typing

    hints = typing.get_type_hints(inspect.unwrap(function))
    out = {}
    for name, hint in hints.items():
        for arg in (hint, *typing.get_args(hint), *_inner(hint)):
            if isinstance(arg, type) and issubclass(arg, Enum):
                out[name] = [e.value for e in arg]
    return out


def _inner(hint: Any) -> list:
    import typing

    return [a for arg in typing.get_args(hint) for a in typing.get_args(arg)]


def plain(value: Any) -> Any:
    """An Enum choice as its plain string (what the library takes); other values as they are."""
    return value.value if isinstance(value, Enum) else value


def defaults_from(target: str, **renamed: str) -> type[TyperCommand]:
    """A command class whose ``--help`` shows, for each option left at None, the default of the
    field it sets in the settings dataclass ``target`` ('module:Class').

    The dataclass is imported only to render help, so the CLI's import stays light;
    ``renamed`` maps option parameters to fields where the names differ.
    """

    class Command(TyperCommand):
        def format_help(self, ctx, formatter) -> None:
            # Click's default_map of this context only: the options keep default None (= not
            # given), and nothing shared between invocations changes.
            shown = _help_defaults(self.params, _field_defaults(target), renamed)
            ctx.default_map = {**shown, **(ctx.default_map or {})}
            super().format_help(ctx, formatter)

    return Command


def _field_defaults(target: str) -> dict[str, Any]:
    import importlib

    module, _, name = target.partition(":")
    cls = getattr(importlib.import_module(module), name)
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _help_defaults(params, defaults: dict[str, Any], renamed: dict[str, str]) -> dict[str, Any]:
    """Parameter name -> the default its --help shows, for the options left at None."""
    shown = {}
    for param in params:
        value = defaults.get(renamed.get(param.name, param.name))
        if param.default is not None or value is None or isinstance(param, TyperArgument):
            continue
        if isinstance(value, (list, tuple)):
            if not value:
                continue
            value = (", " if param.multiple else ",").join(str(v) for v in value)
        elif not isinstance(value, bool):
            value = str(value)
        shown[param.name] = value
    return shown


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


def parse_int_list(text: str | None, option: str) -> list[int] | None:
    """'1,8,32' -> [1, 8, 32]; None (not given) stays None."""
    if text is None:
        return None
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


# Options of the commands that read robot recordings (socket_edge.data.bags).
Every = Annotated[
    int | None,
    typer.Option("--every", min=1, help="Bags: keep every N-th frame (30 Hz frames repeat)."),
]
Stride = Annotated[
    float | None,
    typer.Option("--stride", min=0.0, help="Bags: keep frames at least this many seconds apart."),
]
Tolerance = Annotated[
    float | None,
    typer.Option(
        "--tolerance",
        help="Bags: seconds a TI pair's stamps may differ (default: half the target topic's "
        "median frame interval).",
    ),
]


def sampling(every: int | None, stride: float | None) -> Any:
    """--every / --stride as a bags.Sampling (None when neither is given)."""
    if every is None and stride is None:
        return None
    from socket_edge.data.bags import Sampling

    return Sampling(every or 1, stride or 0.0)
