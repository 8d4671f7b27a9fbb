"""The built-in benchmark's geometry: a random scene (an object on a floor before a wall, a
camera above it) and its G-buffer, sphere-traced once for all three sensors (``sensors``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .shapes import SDF
from .shifts import Shift

F32 = np.float32
FOV_DEG = 50.0


@dataclass
class Scene:
    """Random parameters of one scene (geometry and all three modalities' appearance)."""

    rng_seed: tuple
    cam_height: float
    cam_rot: np.ndarray  # (3, 3) camera-to-world
    center: np.ndarray  # (3,) object centre, world
    scale: float
    obj_rot: np.ndarray  # (3, 3) object-to-world
    aspect: np.ndarray  # (3,) anisotropic stretch of the object
    wall_z: float
    light: np.ndarray  # (3,) unit vector towards the light


def _rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], F32)


def _rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], F32)


def _rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], F32)


def random_scene(rng: np.random.Generator, seed: tuple, shift: Shift | None = None) -> Scene:
    shift = shift or Shift()
    cam_height = rng.uniform(0.7, 1.3) + shift.cam_raise
    dist = rng.uniform(0.95, 1.35)
    scale = rng.uniform(0.27, 0.33)
    x = rng.uniform(-0.25, 0.25) * dist
    center = np.array([x, -cam_height + 0.62 * scale, dist], F32)
    # Aim the camera at the object, with some jitter so it is not always centred.
    to_obj = center - np.array([0, 0, 0], F32)
    yaw = np.arctan2(to_obj[0], to_obj[2]) + rng.normal(0, 0.06)
    pitch = np.arctan2(-to_obj[1], np.hypot(to_obj[0], to_obj[2])) + rng.normal(0, 0.05)
    pitch += shift.cam_tilt  # a mount tilted further down than the object's direction
    cam_rot = _rot_y(yaw) @ _rot_x(pitch)
    obj_rot = (
        _rot_y(rng.uniform(0, 2 * np.pi))
        @ _rot_x(rng.normal(0, 0.12))
        @ _rot_z(rng.normal(0, 0.12))
    )
    aspect = np.exp(rng.normal(0, 0.08, 3)).astype(F32)
    light = np.array([rng.uniform(-1, 1), rng.uniform(0.4, 1.2), rng.uniform(-1.0, -0.1)], F32)
    return Scene(
        rng_seed=seed,
        cam_height=float(cam_height),
        cam_rot=cam_rot.astype(F32),
        center=center,
        scale=float(scale),
        obj_rot=obj_rot.astype(F32),
        aspect=aspect,
        wall_z=float(rng.uniform(2.9, 5.0)),
        light=light / np.linalg.norm(light),
    )


@dataclass
class GBuffer:
    material: np.ndarray  # (H, W) int8: 1 object, 2 floor, 3 wall
    depth: np.ndarray  # (H, W) z-distance along the optical axis, metres
    pos: np.ndarray  # (H, W, 3) world position
    local: np.ndarray  # (H, W, 3) object coordinates (object pixels), else world
    normal: np.ndarray  # (H, W, 3) world normal
    cos_view: np.ndarray  # (H, W) cosine between normal and the ray towards the camera
    shadow: np.ndarray  # (H, W) 1 = lit, 0 = in the object's shadow
    mirror: np.ndarray  # (H, W, 3) object coordinates reflected in the floor, NaN elsewhere


def _object_sdf(sdf: SDF, scene: Scene):
    inv_scale = 1.0 / (scene.scale * scene.aspect)
    step_scale = scene.scale * float(scene.aspect.min())

    def to_local(p: np.ndarray) -> np.ndarray:
        return ((p - scene.center) @ scene.obj_rot) * inv_scale

    def dist(p: np.ndarray) -> np.ndarray:
        return sdf(to_local(p)).astype(F32) * step_scale

    return dist, to_local


def trace(sdf: SDF, scene: Scene, size: int, mirror: bool = False) -> GBuffer:
    """Trace one scene at ``size`` x ``size`` pixels into a G-buffer (``mirror``: also the
    object's reflection in the floor, which only thermal IR needs)."""
    n = size
    f = (n / 2) / np.tan(np.radians(FOV_DEG / 2))
    jj, ii = np.meshgrid(np.arange(n, dtype=F32), np.arange(n, dtype=F32))
    d_cam = np.stack([(jj + 0.5 - n / 2) / f, -(ii + 0.5 - n / 2) / f, np.ones_like(jj)], -1)
    d_cam /= np.linalg.norm(d_cam, axis=-1, keepdims=True)
    d = (d_cam.reshape(-1, 3) @ scene.cam_rot.T).astype(F32)  # world ray directions

    # Background: floor (y = -h) and wall (z = wall_z), exact.
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = np.where(d[:, 1] < -1e-6, -scene.cam_height / d[:, 1], np.inf)
        t_wall = np.where(d[:, 2] > 1e-6, scene.wall_z / d[:, 2], np.inf)
    t_bg = np.minimum(t_floor, t_wall).astype(F32)
    material = np.where(t_floor < t_wall, 2, 3).astype(np.int8)
    t_hit = t_bg.copy()

    # Object: sphere-trace only the rays that cross its bounding sphere.
    dist, to_local = _object_sdf(sdf, scene)
    hit, t = march(dist, scene, np.zeros_like(d), d, t_bg)
    t_hit[hit] = t[hit]
    material[hit] = 1

    pos = d * t_hit[:, None]
    normal = np.zeros_like(pos)
    normal[material == 2] = (0, 1, 0)
    normal[material == 3] = (0, 0, -1)
    local = pos.copy()
    obj = np.nonzero(material == 1)[0]
    if obj.size:
        e = 1e-3 * scene.scale
        p = pos[obj]
        grad = np.stack([dist(p + off) - dist(p - off) for off in np.eye(3, dtype=F32) * e], -1)
        normal[obj] = grad / np.maximum(np.linalg.norm(grad, axis=-1, keepdims=True), 1e-12)
        local[obj] = to_local(p)
    cos_view = np.clip(-(normal * d).sum(-1), 0.0, 1.0)
    shadow = _soft_shadow(dist, scene, pos, normal, material)
    reflection = (
        _mirror(dist, to_local, scene, pos, d, material)
        if mirror
        else np.full(pos.shape, np.nan, F32)
    )
    depth = t_hit * d_cam.reshape(-1, 3)[:, 2]
    shape2 = (n, n)
    return GBuffer(
        material=material.reshape(shape2),
        depth=depth.reshape(shape2).astype(F32),
        pos=pos.reshape(n, n, 3),
        local=local.reshape(n, n, 3),
        normal=normal.reshape(n, n, 3),
        cos_view=cos_view.reshape(shape2).astype(F32),
        shadow=shadow.reshape(shape2).astype(F32),
        mirror=reflection.reshape(n, n, 3),
    )


def march(dist, scene: Scene, origins: np.ndarray, dirs: np.ndarray, t_max: np.ndarray):
    """Sphere-trace rays against the object; (hit mask, distance). Only rays that cross the
    object's bounding sphere are traced."""
    hit = np.zeros(len(dirs), bool)
    t_out = np.full(len(dirs), np.inf, F32)
    radius = 1.25 * scene.scale * float(scene.aspect.max())
    oc = origins - scene.center
    b = -(oc * dirs).sum(-1)
    disc = b * b - ((oc * oc).sum(-1) - radius * radius)
    idx = np.nonzero((disc > 0) & (b + np.sqrt(np.maximum(disc, 0)) > 0))[0]
    if idx.size == 0:
        return hit, t_out
    root = np.sqrt(disc[idx])
    t = np.maximum(b[idx] - root, 0.0).astype(F32)
    t_end = np.minimum(b[idx] + root, t_max[idx])
    alive = np.ones(idx.size, bool)
    found = np.zeros(idx.size, bool)
    eps = 1e-3 * scene.scale
    for _ in range(80):
        a = np.nonzero(alive)[0]
        if a.size == 0:
            break
        h = dist(origins[idx[a]] + dirs[idx[a]] * t[a, None])
        done = h < eps
        found[a[done]] = True
        t[a] += np.where(done, 0.0, 0.9 * h)
        alive[a] = ~done & (t[a] < t_end[a])
    hit[idx[found]] = True
    t_out[idx[found]] = t[found]
    return hit, t_out


def _mirror(dist, to_local, scene: Scene, pos, d, material) -> np.ndarray:
    """Object coordinates seen in the floor's mirror reflection (NaN where the object is not)."""
    out = np.full(pos.shape, np.nan, F32)
    floor = np.nonzero(material == 2)[0]
    if floor.size == 0:
        return out
    dirs = d[floor] * np.array([1, -1, 1], F32)
    origins = pos[floor] + np.array([0, 1e-3, 0], F32)
    hit, t = march(dist, scene, origins, dirs, np.full(floor.size, np.inf, F32))
    out[floor[hit]] = to_local(origins[hit] + dirs[hit] * t[hit, None])
    return out


def _soft_shadow(dist, scene: Scene, pos, normal, material) -> np.ndarray:
    shadow = np.ones(pos.shape[0], F32)
    origin = pos + normal * (2e-3 * scene.scale)
    lit = (normal @ scene.light) > 0
    # Rays towards the light that cross the object's bounding sphere.
    oc = origin - scene.center
    b = oc @ scene.light
    radius = 1.25 * scene.scale * float(scene.aspect.max())
    disc = b * b - ((oc * oc).sum(-1) - radius * radius)
    idx = np.nonzero(lit & (disc > 0) & (-b + np.sqrt(np.maximum(disc, 0)) > 0))[0]
    idx = idx[material[idx] != 1] if idx.size else idx  # self-shadowing is left to shading
    if idx.size:
        t = np.full(idx.size, 1e-3, F32)
        res = np.ones(idx.size, F32)
        for _ in range(40):
            h = dist(origin[idx] + scene.light * t[:, None])
            res = np.minimum(res, 8.0 * h / t)
            t += np.clip(h, 0.01 * scene.scale, 0.2)
        shadow[idx] = np.clip(res, 0.0, 1.0)
    shadow[~lit] = 0.0
    return shadow
