"""`socket-edge convert` (public dataset layouts -> socket-edge layout); filled in by the converters."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    return None
