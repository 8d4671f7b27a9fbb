"""Signed distance functions of the built-in benchmark's objects, in object coordinates.

Every shape fits in a sphere of radius ~1 around the origin, y is up, and the shape rests roughly
on y = -0.6. Each function maps points (M, 3) to distances (M,). Convex polyhedra use the maximum
of their face planes' signed distances, a lower bound of the true distance, which is all sphere
tracing needs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

SDF = Callable[[np.ndarray], np.ndarray]


def _len(v: np.ndarray) -> np.ndarray:
    return np.sqrt((v * v).sum(-1))


def sphere(p: np.ndarray, r: float = 0.8) -> np.ndarray:
    return _len(p) - r


def box(p: np.ndarray, b=(0.6, 0.6, 0.6), rounding: float = 0.03) -> np.ndarray:
    q = np.abs(p) - (np.asarray(b, dtype=p.dtype) - rounding)
    outside = _len(np.maximum(q, 0.0))
    inside = np.minimum(q.max(-1), 0.0)
    return outside + inside - rounding


def cylinder(p: np.ndarray, r: float = 0.55, h: float = 0.65, axis: int = 1) -> np.ndarray:
    other = [i for i in range(3) if i != axis]
    dx = _len(p[:, other]) - r
    dy = np.abs(p[:, axis]) - h
    d = np.stack([dx, dy], -1)
    return np.minimum(np.maximum(dx, dy), 0.0) + _len(np.maximum(d, 0.0))


def cone(p: np.ndarray, h: float = 0.7, r_base: float = 0.75, r_top: float = 0.02) -> np.ndarray:
    """Capped cone along y, base (radius r_base) at y = -h, top (r_top) at y = +h."""
    qx, qy = _len(p[:, [0, 2]]), p[:, 1]
    k1 = np.array([r_top, h], dtype=p.dtype)
    k2 = np.array([r_top - r_base, 2 * h], dtype=p.dtype)
    ca_x = qx - np.minimum(qx, np.where(qy < 0, r_base, r_top))
    ca_y = np.abs(qy) - h
    q = np.stack([qx, qy], -1)
    t = np.clip(((k1 - q) * k2).sum(-1) / (k2 * k2).sum(), 0.0, 1.0)
    cb = q - k1 + k2 * t[:, None]
    s = np.where((cb[:, 0] < 0) & (ca_y < 0), -1.0, 1.0)
    return s * np.sqrt(np.minimum(ca_x**2 + ca_y**2, (cb * cb).sum(-1)))


def torus(p: np.ndarray, major: float = 0.6, minor: float = 0.24) -> np.ndarray:
    q = np.stack([_len(p[:, [0, 2]]) - major, p[:, 1]], -1)
    return _len(q) - minor


def capsule(p: np.ndarray, h: float = 0.45, r: float = 0.38) -> np.ndarray:
    q = p.copy()
    q[:, 1] -= np.clip(q[:, 1], -h, h)
    return _len(q) - r


def convex(p: np.ndarray, normals: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Intersection of half-spaces n . p <= offset (normals unit length)."""
    return (p @ normals.T - offsets).max(-1)


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


_PYRAMID = (
    np.concatenate(
        [_unit([[1, 0.55, 0], [-1, 0.55, 0], [0, 0.55, 1], [0, 0.55, -1]]), [[0, -1, 0]]]
    ),
    np.array([0.42, 0.42, 0.42, 0.42, 0.6], np.float32),
)
_OCTA = (
    _unit([[sx, sy, sz] for sx in (1, -1) for sy in (1, -1) for sz in (1, -1)]),
    np.full(8, 0.85 / np.sqrt(3), np.float32),
)
_TETRA = (
    _unit([[1, 1, 1], [-1, -1, 1], [-1, 1, -1], [1, -1, -1]]),
    np.full(4, 0.42, np.float32),
)


def _tent(p: np.ndarray) -> np.ndarray:
    # A steep triangular roof (apex up), extruded along z.
    n = np.concatenate([_unit([[1, 0.45, 0], [-1, 0.45, 0]]), [[0, -1, 0], [0, 0, 1], [0, 0, -1]]])
    off = np.array([0.4, 0.4, 0.6, 0.7, 0.7], np.float32)
    return convex(p, n.astype(np.float32), off)


def _stairs(p: np.ndarray) -> np.ndarray:
    # Three steps rising along x.
    steps = [
        box(_shift(p, (-0.45 + 0.45 * k, -0.6 + 0.2 * (k + 1), 0)), (0.25, 0.2 * (k + 1), 0.4))
        for k in range(3)
    ]
    return np.minimum(np.minimum(steps[0], steps[1]), steps[2])


def _shift(p: np.ndarray, d) -> np.ndarray:
    return p - np.asarray(d, dtype=p.dtype)


TASK_SHAPES: dict[str, SDF] = {
    "sphere": sphere,
    "cube": box,
    "cylinder": cylinder,
    "cone": cone,
    "torus": torus,
    "capsule": capsule,
    "pyramid": lambda p: convex(p, *_PYRAMID),
    "stairs": _stairs,
    "octahedron": lambda p: convex(p, *_OCTA),
    "tent": _tent,
}

# Task-irrelevant (TI) shapes: disjoint from the task classes, seen only as RGB + target pairs.
TI_SHAPES: dict[str, SDF] = {
    "jack": lambda p: np.minimum(
        np.minimum(box(p, (0.75, 0.16, 0.16)), box(p, (0.16, 0.75, 0.16))),
        box(p, (0.16, 0.16, 0.75)),
    ),
    "dumbbell": lambda p: np.minimum(
        np.minimum(sphere(_shift(p, (0.55, 0, 0)), 0.33), sphere(_shift(p, (-0.55, 0, 0)), 0.33)),
        cylinder(p, 0.1, 0.55, axis=0),
    ),
    "cup": lambda p: np.maximum(
        cylinder(p, 0.5, 0.6), -cylinder(_shift(p, (0, 0.15, 0)), 0.4, 0.6)
    ),
    "mushroom": lambda p: np.minimum(
        cylinder(_shift(p, (0, -0.3, 0)), 0.18, 0.35),
        np.maximum(sphere(_shift(p, (0, 0.0, 0)), 0.65), -_shift(p, (0, 0.0, 0))[:, 1]),
    ),
    "l_block": lambda p: np.minimum(
        box(_shift(p, (-0.25, -0.3, 0)), (0.55, 0.25, 0.35)),
        box(_shift(p, (-0.55, 0.2, 0)), (0.25, 0.6, 0.35)),
    ),
    "tetrahedron": lambda p: convex(p, *_TETRA),
    "snowman": lambda p: np.minimum(
        sphere(_shift(p, (0, -0.25, 0)), 0.48), sphere(_shift(p, (0, 0.45, 0)), 0.32)
    ),
    "arch": lambda p: np.maximum(
        box(p, (0.7, 0.5, 0.3)), -cylinder(_shift(p, (0, -0.5, 0)), 0.4, 0.5, axis=2)
    ),
}

# TI shapes unlike the task objects (thin, flat, open), for the suite's "TI unlike task" variant
# (`socket-edge synth --ti-shapes unlike`): alignment must then carry over from other geometry.
TI_UNLIKE_SHAPES: dict[str, SDF] = {
    "plate": lambda p: cylinder(p, 0.8, 0.05),
    "rod": lambda p: cylinder(p, 0.08, 0.85, axis=0),
    "frame": lambda p: np.maximum(box(p, (0.75, 0.75, 0.08)), -box(p, (0.5, 0.5, 0.2))),
    "cross": lambda p: np.minimum(box(p, (0.8, 0.15, 0.08)), box(p, (0.15, 0.8, 0.08))),
}
TI_SHAPE_SETS = {"default": TI_SHAPES, "unlike": TI_UNLIKE_SHAPES}
