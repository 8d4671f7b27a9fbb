"""The CLI's fixed choices as Enums: --help lists them and a bad value gets Typer's own error.

Their values are the library's own lists (tests/test_cli.py checks that they agree); the
commands pass ``.value`` on (``common.settings`` does so itself), so the library only ever sees
plain strings.
"""

from __future__ import annotations

from enum import Enum


class Modality(str, Enum):
    depth = "depth"
    ir = "ir"


class Method(str, Enum):
    socket_rms = "socket-rms"
    socket = "socket"
    shot = "shot"
    source_only = "source-only"


class Arch(str, Enum):
    resnet18 = "resnet18"
    resnet34 = "resnet34"
    resnet50 = "resnet50"
    mobilenet_v3_small = "mobilenet_v3_small"
    mobilenet_v3_large = "mobilenet_v3_large"
    efficientnet_b0 = "efficientnet_b0"


class CalibMethod(str, Enum):
    entropy = "entropy"
    percentile = "percentile"
    minmax = "minmax"


class Int8Mode(str, Enum):
    auto = "auto"
    explicit = "explicit"
    implicit = "implicit"


class BNScale(str, Enum):
    sum = "sum"
    rms = "rms"


class TIDistance(str, Enum):
    euclidean = "euclidean"
    cosine = "cosine"


class Shift(str, Enum):
    depth_sensor = "depth-sensor"
    mount = "mount"
    thermal = "thermal"
    prior = "prior"


class TIShapes(str, Enum):
    default = "default"
    unlike = "unlike"


class DepthMap(str, Enum):
    raw = "raw"
    filled = "filled"


class Resolution(str, Enum):
    HR = "HR"
    LR = "LR"


class OrtDevice(str, Enum):
    cpu = "cpu"
    cuda = "cuda"
    tensorrt = "tensorrt"
