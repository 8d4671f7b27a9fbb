"""One TOML file for the whole pipeline, which a team can commit; command-line flags override it.

    [synth]          # socket-edge synth / demo: size, per_class, seed
    [train]          # train-source: arch, image_size, epochs, batch_size, lr, seed, device, ...
    [adapt]          # adapt: method, epochs, lr, pl_weight, im_weight, bn_weight, ti_weight, ...
    [export]         # export: opset, batch, calib_size, calib_method, max_drop, fp16, ...
    [bench]          # bench: batches, warmup_s, duration_s, threads, ...
    [demo]           # demo: modality, quick, arch

Each command reads its own table; keys are the settings' field names (dashes or underscores).
Unknown keys are an error naming the file, the table and the key, so a typo never passes
silently. The CLI lays the table under the flags given and over the dataclass's defaults
(``socket_edge.cli.common.settings``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from .errors import SocketEdgeError

SECTIONS = ("synth", "train", "adapt", "export", "bench", "demo")


def read_toml(path: str | Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SocketEdgeError("no such config file", path) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SocketEdgeError(f"not valid TOML ({exc})", path) from None


def section(path: str | Path | None, name: str, target: type | None = None) -> dict[str, Any]:
    """The settings of table ``name`` (keys normalised to underscores), checked against ``target``.

    ``target`` is the dataclass the settings build; keys it has no field for are an error.
    """
    if path is None:
        return {}
    data = read_toml(path)
    unknown_tables = sorted(k for k, v in data.items() if isinstance(v, dict) and k not in SECTIONS)
    if unknown_tables:
        raise SocketEdgeError(f"unknown tables {unknown_tables} (known: {list(SECTIONS)})", path)
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise SocketEdgeError(f"{name} must be a table ([{name}]), got {table!r}", path)
    settings = {k.replace("-", "_"): v for k, v in table.items()}
    if target is not None:
        fields = {f.name: str(f.type) for f in dataclasses.fields(target)}
        unknown = sorted(set(settings) - set(fields))
        if unknown:
            raise SocketEdgeError(
                f"[{name}] has unknown settings {unknown} (known: {sorted(fields)})", path
            )
        # TOML has strings and arrays; the dataclasses want paths and tuples.
        for key, value in settings.items():
            if "Path" in fields[key] and isinstance(value, str):
                settings[key] = Path(value)
            elif fields[key].startswith("tuple") and isinstance(value, list):
                settings[key] = tuple(value)
    return settings
