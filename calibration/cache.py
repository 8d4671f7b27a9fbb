"""TensorRT's calibration cache (text format) from activation ranges, and a parser for it.

Format, as TensorRT's calibrators write and read it::

    TRT-<version>-EntropyCalibration2
    <tensor name>: <8 hex digits>
    ...

where the hex digits are the big-endian IEEE-754 float32 bits of the scale amax / 127. The
version is TensorRT's NV_TENSORRT_VERSION (8.5.2 -> 8502, 10.3.0 -> 100300). The format has no
room for comments, so the stamp (model + calibration set + method) lives in the sidecar
``model.calib.cache.json``; socket-edge's TensorRT calibrator checks it before reusing a cache.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

from socket_edge.errors import ArtifactError

ALGORITHM = "EntropyCalibration2"  # socket-edge builds with IInt8EntropyCalibrator2
# Header written on the workstation (JetPack 6.1/6.2); the socket-edge builder on the device
# rewrites it to the TensorRT version found there before handing the cache over.
DEFAULT_TRT_VERSION = "10.3.0"
# A scale of 0 would make TensorRT divide by zero; tensors that never left 0 get this floor.
MIN_AMAX = 1e-6

_HEADER = re.compile(r"^TRT-(\d+)-([A-Za-z0-9]+)$")
_LINE = re.compile(r"^(.+): ([0-9a-fA-F]{8})$")


def version_tag(version: str) -> int:
    """TensorRT's version number in cache headers: 8.5.2 -> 8502, 10.3.0 -> 100300."""
    try:
        parts = [int(p) for p in version.split(".")[:3]]
    except ValueError:
        raise ArtifactError(f"not a TensorRT version: {version!r}") from None
    major, minor, patch = (parts + [0, 0])[:3]
    return major * (10000 if major >= 10 else 1000) + minor * 100 + patch


def header(version: str = DEFAULT_TRT_VERSION, algorithm: str = ALGORITHM) -> str:
    return f"TRT-{version_tag(version)}-{algorithm}"


def scale_hex(amax: float) -> str:
    """8 hex digits: the float32 bits of max(amax, MIN_AMAX) / 127, big-endian."""
    return struct.pack(">f", max(float(amax), MIN_AMAX) / 127.0).hex()


def hex_scale(digits: str) -> float:
    return float(struct.unpack(">f", bytes.fromhex(digits))[0])


def format_cache(amax: dict[str, float], version: str = DEFAULT_TRT_VERSION) -> str:
    """The cache text for ``{tensor name: amax}`` (names in the given order)."""
    lines = [header(version)]
    for name, value in amax.items():
        if "\n" in name or not name:
            raise ArtifactError(f"tensor name {name!r} cannot be written to a calibration cache")
        lines.append(f"{name}: {scale_hex(value)}")
    return "\n".join(lines) + "\n"


@dataclass
class CalibrationCache:
    """A parsed cache: header fields and the scale (amax / 127) of each tensor."""

    version: int
    algorithm: str
    scales: dict[str, float]

    def amax(self) -> dict[str, float]:
        return {k: v * 127.0 for k, v in self.scales.items()}

    def with_version(self, version: str) -> str:
        """The same cache under another TensorRT version's header."""
        lines = [header(version, self.algorithm)]
        lines += [f"{k}: {struct.pack('>f', v).hex()}" for k, v in self.scales.items()]
        return "\n".join(lines) + "\n"


def parse_cache(data: bytes | str, path: str | Path | None = None) -> CalibrationCache:
    """Parse a TensorRT calibration cache; a malformed one fails naming the line."""
    where = path if path is not None else "calibration cache"
    if isinstance(data, bytes):
        try:
            data = data.decode("ascii")
        except UnicodeDecodeError:
            raise ArtifactError("not a TensorRT calibration cache (binary data)", where) from None
    lines = data.splitlines()
    if not lines:
        raise ArtifactError("empty calibration cache", where)
    m = _HEADER.match(lines[0].strip())
    if not m:
        raise ArtifactError(
            f"line 1: expected a header like 'TRT-8502-EntropyCalibration2', got {lines[0][:60]!r}",
            where,
        )
    scales: dict[str, float] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        lm = _LINE.match(line.rstrip())
        if not lm:
            raise ArtifactError(
                f"line {number}: expected '<tensor>: <8 hex digits>', got {line[:60]!r}", where
            )
        name, digits = lm.group(1), lm.group(2)
        if name in scales:
            raise ArtifactError(f"line {number}: tensor {name!r} appears twice", where)
        scales[name] = hex_scale(digits)
    return CalibrationCache(int(m.group(1)), m.group(2), scales)


def read_cache(path: str | Path) -> CalibrationCache:
    path = Path(path)
    if not path.is_file():
        raise ArtifactError("no such calibration cache", path)
    return parse_cache(path.read_bytes(), path)
