"""Commands of this group are added as the library grows."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    return None
