"""User-facing errors: one line naming the file and the problem, shown without a traceback."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class SocketEdgeError(Exception):
    """An error caused by the user's input; the CLI prints it as one line and exits non-zero."""

    def __init__(
        self, message: str, path: str | Path | None = None, *, settings: tuple[str, ...] = ()
    ):
        self.path = None if path is None else Path(path)
        # Settings (fields of the settings dataclasses) the message names; the CLI shows them as
        # the flags that set them, the Python API as they are.
        self.settings = settings
        self.message = message
        super().__init__(f"{path}: {message}" if path is not None else message)

    def blame(self, path: str | Path, message: str) -> None:
        """Make this the error of ``path`` (e.g. the config file that gave the bad value), with
        ``message``; it then names no settings."""
        self.path, self.message, self.settings = Path(path), message, ()
        self.args = (f"{path}: {message}",)

    def for_cli(self, flags: Mapping[str, str] | None = None) -> str:
        """The message with each named setting shown as its flag (max_drop -> --max-drop);
        ``flags`` names the flags of settings whose flag is not ``--field-name``.

        A message that also uses the name as a plain word quotes the setting: `reference`."""
        text = self.message
        for name in sorted(self.settings, key=len, reverse=True):
            flag = (flags or {}).get(name) or flag_for(name)
            if f"`{name}`" in text:
                text = text.replace(f"`{name}`", flag)
                continue
            # A whole word only: not inside 'socket-edge[plot]', 'source-only' or 'max_drops'.
            text = re.sub(rf"(?<![\w\-\[]){re.escape(name)}(?![\w\-\]])", flag, text)
        return f"{self.path}: {text}" if self.path is not None else text


def flag_for(setting: str) -> str:
    """The command-line flag of a settings field, by convention (max_drop -> --max-drop)."""
    return "--" + setting.replace("_", "-")


class DataError(SocketEdgeError):
    """A bad image, folder or data layout."""


class BagError(DataError):
    """A robot recording (ROS 1/2 bag, mcap) that cannot be read as asked: the bag, the topic."""


class CheckpointError(SocketEdgeError):
    """A file that is not a socket-edge checkpoint, or one that does not fit what was asked."""


class ArtifactError(SocketEdgeError):
    """A bad or incompatible ONNX model, engine, sidecar or calibration cache."""


class Int8GateError(ArtifactError):
    """INT8 could not be kept within its budgets against FP32; nothing was written."""


class DivergenceError(SocketEdgeError):
    """Training produced NaN/inf (loss or weights): the run stopped, nothing was written."""

    every_rank = True  # every process of a group raises it alike; rank 0 prints it


class SettingError(SocketEdgeError):
    """A setting out of range or not finite; ``field`` names it (in ``settings`` too, so that the
    CLI shows the flag, and the config file's table where the value came from there)."""

    def __init__(self, field: str, requirement: str, value: Any):
        self.field, self.requirement, self.value = field, requirement, value
        super().__init__(f"{field} must be {requirement}, got {value!r}", settings=(field,))
