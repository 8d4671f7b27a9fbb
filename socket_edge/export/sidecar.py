"""Moved to :mod:`socket_edge.artifact` (the one module that owns sidecars); kept for imports."""

from ..artifact import (  # noqa: F401
    FORMAT,
    FORMAT_VERSION,
    INPUT_UNITS,
    dump_sidecar,
    make_sidecar,
    read_sidecar,
    sidecar_info,
    sidecar_path,
    write_sidecar,
)
