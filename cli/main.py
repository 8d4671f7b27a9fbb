"""The `socket-edge` command: a thin Typer app over the socket_edge library.

Each command parses its options and calls one library function; heavy libraries are imported
inside the commands, so `socket-edge --help` answers at once and a CPU-only box never imports
TensorRT. Errors caused by input print as one line (no traceback unless --debug) and exit 2.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from socket_edge._version import __version__

app = typer.Typer(
    name="socket-edge",
    help=(
        "Turn an RGB image classifier into a depth or IR classifier (SOCKET: source-free "
        "cross-modal transfer) and ship it to a Jetson as an INT8 TensorRT engine.\n\n"
        "Start with [bold]socket-edge demo[/bold] (the whole pipeline on built-in data, CPU)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"socket-edge {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    """socket-edge: SOCKET adaptation RGB -> depth/IR, INT8 export and edge benchmarks."""


def _register() -> None:
    # One module per group of commands; each exposes register(app).
    from . import (
        bench_cmd,
        classify_cmd,
        convert_cmd,
        data_cmd,
        demo_cmd,
        doctor_cmd,
        eval_cmd,
        export_cmd,
        train_cmd,
    )

    for module in (
        demo_cmd, data_cmd, convert_cmd, train_cmd, eval_cmd, export_cmd, bench_cmd, doctor_cmd,
    ):  # fmt: skip
        module.register(app)
    classify_cmd.register(app)
    from . import monitor_cmd

    monitor_cmd.register(app)


_register()


def run() -> None:
    """Console-script entry point: one-line errors, exit codes 2 (input) / 1 (internal) / 130."""
    debug = "--debug" in sys.argv[1:]
    # --debug may come anywhere on the line, also after the command name.
    sys.argv = [sys.argv[0]] + [a for a in sys.argv[1:] if a != "--debug"]
    from socket_edge.errors import SocketEdgeError

    try:
        app()
    except SocketEdgeError as exc:
        if debug:
            raise
        _print_error(exc)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except OSError as exc:
        if debug:
            raise
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        typer.echo(f"error: {where}{exc.strerror or exc}", err=True)
        sys.exit(2)
    except Exception as exc:
        if debug:
            raise
        from socket_edge.extras import missing_module_hint

        if missing_module_hint(exc):  # e.g. torch on a robot install
            typer.echo(f"error: {missing_module_hint(exc)}", err=True)
            sys.exit(2)
        typer.echo(
            f"error: {type(exc).__name__}: {exc} (internal error; rerun with --debug for the traceback)",
            err=True,
        )
        sys.exit(1)


def _print_error(exc: Exception) -> None:
    """One line; under torchrun, other ranks than 0 name themselves, and stay silent on errors
    that every rank raises alike (rank 0 prints those)."""
    import os

    from socket_edge.console import main_process

    from .common import FLAGS

    text = exc.for_cli(FLAGS) if hasattr(exc, "for_cli") else str(exc)
    if main_process():
        typer.echo(f"error: {text}", err=True)
    elif not getattr(exc, "every_rank", False):
        typer.echo(f"error: rank {os.environ['RANK']}: {text}", err=True)


if __name__ == "__main__":
    run()
