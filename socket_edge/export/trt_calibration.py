"""Implicit INT8 for TensorRT: the calibration cache (reused when its stamp fits) and
Polygraphy's entropy calibrator, with the profile it calibrates on (socket_edge.export.tensorrt
builds with them)."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..artifact import read_sidecar, write_sidecar
from ..calibration.cache import parse_cache, read_cache
from ..console import info, warn
from ..errors import ArtifactError, SocketEdgeError
from ..files import sha256_file

CALIB_BATCH = 8


@dataclass
class CacheSource:
    """The calibration cache to reuse or (re)write, and the stamp it must carry."""

    path: Path
    stamp: str | None  # expected stamp; None: no calibration set given, any stamp for this model
    model_sha256: str
    # The ``calibration`` record of a cache TensorRT writes (None: kept without a sidecar).
    calibration: dict[str, Any] | None = None


def cache_usable(source: CacheSource) -> tuple[bool, str]:
    """(usable, why not): the cache exists, parses, and its sidecar stamp fits this build."""
    if not source.path.exists():
        return False, "no cache yet"
    try:
        read_cache(source.path)
        doc = read_sidecar(source.path, verify_hash=True)
    except ArtifactError as exc:
        return False, str(exc)
    calib = doc.get("calibration") or {}
    if calib.get("model_sha256") != source.model_sha256:
        return False, "it was calibrated for another model (model sha256 differs)"
    if source.stamp is not None and calib.get("stamp") != source.stamp:
        return False, (
            f"its stamp {calib.get('stamp')} differs from {source.stamp} "
            "(calibration set or method changed)"
        )
    return True, ""


def entropy_calibrator(
    trt: Any, batcher: Any, source: CacheSource, input_name: str, scratch: Path
) -> Any:
    """Polygraphy's entropy calibrator: fed ``source``'s cache when its stamp fits (no images
    needed), else the calibration set, writing the new cache to ``scratch``."""
    from polygraphy.backend.trt import Calibrator

    usable, why = cache_usable(source)
    if usable:
        # TensorRT keys caches by its own version: present ours under the running one.
        text = parse_cache(source.path.read_bytes(), source.path).with_version(trt.__version__)
        info(f"reusing calibration cache {source.path.name} (stamp matches)")
        return Calibrator([], cache=io.BytesIO(text.encode("ascii")))
    if source.path.exists():
        warn(f"{source.path}: not reused: {why}; calibrating again")
    if batcher is None:
        raise ArtifactError(
            f"no usable calibration cache ({why}) and no calibration folder to calibrate with",
            source.path,
        )
    return Calibrator(({input_name: batch} for batch in batcher), cache=str(scratch))


@dataclass(frozen=True)
class Implicit:
    """Implicit INT8: Polygraphy's calibrator, the profile it calibrates on, and the scratch file
    of the cache it writes."""

    calibrator: Any
    profile: Any
    scratch: Path
    cache: CacheSource


@contextlib.contextmanager
def implicit_int8(
    mode: str, network: Any, batcher: Any, cache: CacheSource | None, out: Path
) -> Iterator[Implicit | None]:
    """The calibrator for implicit INT8 (None for other builds); freed, and its scratch cache
    removed unless kept, on the way out."""
    import tensorrt as trt
    from polygraphy.backend.trt import Profile

    if mode != "implicit":
        yield None
        return
    if cache is None:
        raise SocketEdgeError("implicit INT8 needs a calibration cache path")
    inp = network.get_input(0)
    cbatch = batcher.batch_size if batcher is not None else CALIB_BATCH
    # Polygraphy calibrates on the last profile: one fixed at the calibration batch size.
    profile = Profile().add(inp.name, *([cbatch, *input_chw(network)],) * 3)
    scratch = out.with_name(f".{cache.path.name}.{os.getpid()}.tmp")
    calibrator = entropy_calibrator(trt, batcher, cache, inp.name, scratch)
    try:
        yield Implicit(calibrator, profile, scratch, cache)
    finally:
        with contextlib.suppress(Exception):
            calibrator.free()
        scratch.unlink(missing_ok=True)


def input_chw(network: Any) -> list[int]:
    """The network input's shape without its batch axis."""
    inp = network.get_input(0)
    return [int(inp.shape[i]) for i in range(1, len(inp.shape))]


def keep_cache(implicit: Implicit, model_sidecar: dict[str, Any]) -> None:
    """Move the cache TensorRT wrote into place, with its sidecar (the model's, retitled)."""
    source = implicit.cache
    if not implicit.scratch.exists():
        return  # the cache was reused: TensorRT wrote none
    os.replace(implicit.scratch, source.path)
    if source.calibration is None:
        return
    doc = dict(model_sidecar)
    doc.update(
        {
            "artifact": source.path.name,
            "kind": "calibration-cache",
            "precision": "int8",
            "calibration": source.calibration,
        }
    )
    doc["sha256"] = sha256_file(source.path)
    write_sidecar(source.path, doc)
