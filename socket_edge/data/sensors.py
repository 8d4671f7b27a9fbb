"""The three sensors of the built-in benchmark, each shading one traced scene (``scene``): RGB,
depth and IR (thermal), with their textures, lighting, temperatures and sensor noise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scene import F32, FOV_DEG, GBuffer, Scene
from .shifts import Shift


def downsample(a: np.ndarray, k: int) -> np.ndarray:
    h, w = a.shape[:2]
    return a.reshape(h // k, k, w // k, k, *a.shape[2:]).mean(axis=(1, 3))


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur with edge padding."""
    if sigma <= 0:
        return img
    r = max(1, int(3 * sigma))
    x = np.arange(-r, r + 1, dtype=F32)
    k = np.exp(-(x**2) / (2 * sigma**2))
    k /= k.sum()
    h, w = img.shape
    tmp = np.pad(img, ((0, 0), (r, r)), mode="edge")
    out = sum(k[i] * tmp[:, i : i + w] for i in range(2 * r + 1))
    tmp = np.pad(out, ((r, r), (0, 0)), mode="edge")
    return sum(k[i] * tmp[i : i + h] for i in range(2 * r + 1)).astype(F32)


# --------------------------------------------------------------------------- textures


def _pattern(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
    """A random procedural pattern in [0, 1] over points p (..., 3)."""
    kind = rng.integers(0, 5)
    if kind == 0:  # plain
        return np.zeros(p.shape[:-1], F32)
    if kind == 1:  # stripes
        axis = rng.normal(size=3).astype(F32)
        axis /= np.linalg.norm(axis)
        return (np.sin(rng.uniform(6, 22) * (p @ axis) + rng.uniform(0, 6.3)) > 0).astype(F32)
    if kind == 2:  # checker
        freq = rng.uniform(3, 9)
        return (np.floor(p * freq).astype(np.int64).sum(-1) % 2).astype(F32)
    if kind == 3:  # dots
        freq = rng.uniform(4, 10)
        q = (p * freq) % 1.0 - 0.5
        return (np.sqrt((q * q).sum(-1)) < rng.uniform(0.2, 0.4)).astype(F32)
    # smooth noise: a few random plane waves
    out = np.zeros(p.shape[:-1], F32)
    for _ in range(4):
        axis = rng.normal(size=3).astype(F32) * rng.uniform(3, 14)
        out += np.sin(p @ axis + rng.uniform(0, 6.3))
    return (0.5 + out / 8).clip(0, 1)


def _colour(rng: np.random.Generator) -> np.ndarray:
    import colorsys

    h, s, v = rng.uniform(0, 1), rng.uniform(0.0, 1.0), rng.uniform(0.15, 1.0)
    return np.array(colorsys.hsv_to_rgb(h, s, v), F32)


def _albedo(rng, g: GBuffer) -> np.ndarray:
    """Object: any colour and pattern. Floor and wall: a colour with a faint pattern (a room)."""
    alb = np.zeros(g.material.shape + (3,), F32)
    for mat, coords, contrast in ((1, g.local, 1.0), (2, g.pos, 0.25), (3, g.pos, 0.15)):
        sel = g.material == mat
        c1 = _colour(rng)
        c2 = c1 + contrast * (_colour(rng) - c1)
        pat = _pattern(rng, coords[sel])
        alb[sel] = c1 * (1 - pat[:, None]) + c2 * pat[:, None]
    return alb


# --------------------------------------------------------------------------- modalities


def shade_rgb(
    g: GBuffer, scene: Scene, rng: np.random.Generator, ss: int, shift: Shift | None = None
) -> np.ndarray:
    """8-bit RGB (H, W, 3)."""
    alb = _albedo(rng, g)
    ambient = rng.uniform(0.15, 0.5)
    light_col = np.array([1, 1, 1], F32) + rng.normal(0, 0.08, 3).astype(F32)
    diffuse = np.clip(g.normal @ scene.light, 0, 1) * g.shadow
    # Blinn-Phong highlight; view vector is towards the camera at the origin.
    view = -g.pos / np.maximum(np.linalg.norm(g.pos, axis=-1, keepdims=True), 1e-6)
    half = view + scene.light
    half /= np.maximum(np.linalg.norm(half, axis=-1, keepdims=True), 1e-6)
    shininess = rng.uniform(8, 64)
    spec = rng.uniform(0, 0.6) * np.clip((g.normal * half).sum(-1), 0, 1) ** shininess * g.shadow
    spec = np.where(g.material == 1, spec, 0.2 * spec)
    img = alb * (ambient + (1 - ambient) * diffuse[..., None] * light_col) + spec[..., None]
    img = downsample(img, ss) * rng.uniform(0.7, 1.3)  # exposure
    img = np.clip(img, 0, 1) ** (1 / 2.2)
    img = img + rng.normal(0, rng.uniform(0.005, 0.03), img.shape)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def shade_depth(
    g: GBuffer, scene: Scene, rng: np.random.Generator, ss: int, shift: Shift | None = None
) -> np.ndarray:
    """16-bit depth in millimetres (H, W), 0 = no reading."""
    shift = shift or Shift()
    z = g.depth.astype(np.float64)
    # Holes at grazing angles, decided per subsample, before averaging (flying pixels survive).
    graze = rng.uniform(0.08, 0.2)
    valid = (g.cos_view > graze) | (rng.random(z.shape) < g.cos_view / graze)
    # Dark or shiny objects return patchy readings.
    if rng.random() < 0.35:
        patch = _pattern(np.random.default_rng(rng.integers(1 << 31)), g.local * 1.5)
        valid &= ~((g.material == 1) & (patch > 0.5) & (rng.random(z.shape) < 0.8))
    zs = np.where(valid, z, 0.0)
    n = downsample((zs > 0).astype(np.float64), ss)
    z = np.where(n > 0, downsample(zs, ss) / np.maximum(n, 1e-9), 0.0)  # mean of valid subsamples
    h, w = z.shape
    # Projector shadows: a baseline to the right of the camera hides background just left of
    # a closer surface.
    f_px = (w / 2) / np.tan(np.radians(FOV_DEG / 2))
    fb = f_px * rng.uniform(0.05, 0.1)  # focal length (px) x baseline (m)
    shadowed = np.zeros_like(z, bool)
    for k in range(1, max(2, int(fb / 1.0) + 2)):
        right = np.pad(z[:, k:], ((0, 0), (0, k)), constant_values=0)
        closer = (right > 0) & (z > 0) & (right < z - 0.05)
        gap = fb * (1 / np.maximum(right, 1e-3) - 1 / np.maximum(z, 1e-3))
        shadowed |= closer & (k <= gap)
    z = np.where(shadowed, 0.0, z)
    # Axial noise grows with the square of distance, then disparity is quantised.
    sigma = (0.001 + 0.0025 * z**2) * rng.uniform(0.7, 1.5) * shift.depth_noise
    z = np.where(z > 0, z + rng.normal(0, 1, z.shape) * sigma, 0.0)
    sub = 8.0
    fb_mm_px = 580.0 * 75.0  # a Kinect-class sensor: focal 580 px, baseline 75 mm
    disp = np.round(fb_mm_px / np.maximum(z * 1000, 1) * sub) / sub
    z_mm = np.where(z > 0, fb_mm_px / np.maximum(disp, 1e-6), 0.0)
    # Speckle dropout and the sensor's range limits.
    z_mm[rng.random(z.shape) < rng.uniform(*shift.depth_dropout)] = 0
    max_range = rng.uniform(3500, 6000) * shift.depth_range
    z_mm[(z_mm > max_range) | (z_mm < 400)] = 0
    return np.clip(np.round(z_mm), 0, 65535).astype(np.uint16)


def _surroundings_temperature(
    g: GBuffer, scene: Scene, rng: np.random.Generator, t_room: float, delta: float
) -> np.ndarray:
    """The temperature (degrees C) of every pixel before the object is painted in:
    floor and wall offsets and gradients, the object's footprint, warm clutter on the wall."""
    temp = np.full(g.material.shape, t_room, np.float64)
    floor, wall = g.material == 2, g.material == 3
    # Floor and wall: offsets and gradients; a warm (or cool) footprint under the object.
    temp[floor] += rng.normal(-1, 1) + rng.normal(0, 0.4) * g.pos[floor][:, 2]
    temp[wall] += rng.normal(0, 1) + rng.normal(0, 0.4) * g.pos[wall][:, 1]
    d2 = ((g.pos[floor] - scene.center) ** 2)[:, [0, 2]].sum(-1) / (1.2 * scene.scale) ** 2
    temp[floor] += 0.3 * delta * np.exp(-d2) * rng.uniform(0, 1)
    # Warm clutter on the wall (pipes, vents, lamps): heat that has nothing to do with the object.
    rows, cols = np.nonzero(wall)
    for _ in range(rng.integers(0, 4)):
        x0, y0 = rng.uniform(-1.5, 1.5), rng.uniform(-1.0, 1.0)
        half_w, half_h = rng.uniform(0.05, 0.6), rng.uniform(0.05, 0.6)
        p = g.pos[rows, cols]
        inside = (np.abs(p[:, 0] - x0) < half_w) & (np.abs(p[:, 1] - y0) < half_h)
        temp[rows[inside], cols[inside]] += rng.uniform(2, 15)
    return temp


@dataclass
class ObjectHeat:
    """The object's temperature field: a gradient along ``axis`` plus hot spots (motors,
    batteries) inside the body, around ``base + delta``."""

    base: float
    delta: float
    axis: np.ndarray
    grad: float
    spots: list[tuple[np.ndarray, float, float]]  # (centre, width, amplitude)

    @classmethod
    def draw(cls, rng: np.random.Generator, base: float, delta: float) -> ObjectHeat:
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        grad = rng.uniform(0, 0.5)
        spots = [
            (rng.normal(0, 0.5, 3), rng.uniform(0.15, 0.4), rng.uniform(-0.3, 1.0) * abs(delta))
            for _ in range(rng.integers(0, 4))
        ]
        return cls(base, delta, axis, grad, spots)

    def temperature(self, local: np.ndarray) -> np.ndarray:
        """At object-local points ``local`` (N, 3)."""
        t = self.base + self.delta + self.grad * abs(self.delta) * (local @ self.axis)
        for centre, width, amp in self.spots:
            t = t + amp * np.exp(-((local - centre) ** 2).sum(-1) / (2 * width**2))
        return t


def _radiance(t):
    return ((t + 273.15) / 300.0) ** 4


def _apparent_temperature(
    g: GBuffer, rng: np.random.Generator, temp: np.ndarray, heat: ObjectHeat, t_room: float
) -> np.ndarray:
    """What a perfect sensor would read: emission falls at grazing angles and the rest is
    reflected: the room, or on a glossy floor a mirror image of the object."""
    obj, floor = g.material == 1, g.material == 2
    eps0 = np.where(obj, rng.uniform(0.55, 0.97), rng.uniform(0.85, 0.97))
    eps0 = np.where(floor, rng.uniform(0.6, 0.95), eps0)
    eps = eps0 * (1 - 0.7 * (1 - g.cos_view) ** 3)
    reflected = np.full(g.material.shape, _radiance(t_room))
    seen = ~np.isnan(g.mirror[..., 0])
    reflected[seen] = _radiance(heat.temperature(g.mirror[seen]))
    rad = eps * _radiance(temp) + (1 - eps) * reflected
    return 300.0 * rad**0.25 - 273.15


def _microbolometer(t_apparent: np.ndarray, rng: np.random.Generator, ss: int) -> np.ndarray:
    """The sensor's reading in degrees: half resolution, blur, AGC halos, vignetting, noise."""
    img = downsample(t_apparent, ss * 2)  # the sensor has half the output resolution
    img = np.kron(img, np.ones((2, 2)))
    img = blur(img.astype(F32), rng.uniform(0.8, 1.4)).astype(np.float64)
    halo = rng.uniform(0, 0.8)  # AGC / detail enhancement overshoot around hot objects
    img = img + halo * (img - blur(img.astype(F32), 3.0))
    h, w = img.shape
    yy, xx = np.mgrid[0:h, 0:w]
    r2 = ((yy - h / 2) ** 2 + (xx - w / 2) ** 2) / (h / 2) ** 2
    img -= rng.uniform(0, 1.5) * r2  # vignetting, kelvin
    img += rng.normal(0, 0.15, (1, w))  # column fixed-pattern noise
    img += rng.normal(0, rng.uniform(0.03, 0.12), img.shape)  # temporal noise (NETD)
    return img


def shade_ir(
    g: GBuffer, scene: Scene, rng: np.random.Generator, ss: int, shift: Shift | None = None
) -> np.ndarray:
    """Thermal IR as 14-bit counts in a uint16 array (H, W); ~100 counts per kelvin.

    A low-resolution microbolometer: the scene is seen at half the output resolution, blurred,
    with AGC/sharpening halos, vignetting, column and temporal noise.
    """
    shift = shift or Shift()
    t_object = rng.uniform(15, 28)  # the object's base temperature is delta above this
    t_room = t_object + shift.room_warming  # a warmer room; objects keep their temperature
    delta = rng.uniform(3, 25) * (1 if rng.random() < 0.7 else -0.5)
    temp = _surroundings_temperature(g, scene, rng, t_room, delta)
    heat = ObjectHeat.draw(rng, t_object, delta)
    obj = g.material == 1
    temp[obj] = heat.temperature(g.local[obj])
    img = _microbolometer(_apparent_temperature(g, rng, temp, heat, t_room), rng, ss)
    counts = shift.ir_offset + shift.ir_gain * (img - 20.0)
    return np.clip(np.round(counts), 0, 16383).astype(np.uint16)
