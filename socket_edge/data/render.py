"""A small sphere-tracing renderer for the built-in benchmark: one scene, three sensors.

A scene is an object (an SDF from ``shapes.py``) resting on a floor in front of a wall, seen by a
camera slightly above it. Geometry is traced once into a G-buffer; each modality then shades it:

- RGB: random colours and textures, a directional light with soft shadows, specular highlights,
  exposure and sensor noise (8-bit).
- depth: z-distance in millimetres with depth-dependent noise, disparity quantisation, flying
  pixels at edges, holes at grazing angles, projector shadows, dark/shiny patches and beyond the
  sensor's range (16-bit, 0 = no reading).
- IR (thermal): per-surface temperatures (object hotter or colder than the room), heat gradients,
  emissivity falling off at grazing angles, a warm footprint under hot objects, optical blur,
  fixed-pattern and temporal noise (14-bit counts in a 16-bit PNG).

Colour, texture, lighting and temperature are random; only the geometry carries over between
modalities, so an RGB classifier has to transfer what it knows about shape.

The geometry (scene, tracing) is ``scene``; the three sensors' shading is ``sensors``; this module
renders one scene in each modality asked for.
"""

from __future__ import annotations

import numpy as np

from .scene import random_scene, trace
from .sensors import shade_depth, shade_ir, shade_rgb
from .shapes import SDF
from .shifts import Shift

SUPERSAMPLE = 2


def render(
    sdf: SDF, seed: tuple, size: int, modalities: tuple[str, ...], shift: Shift | None = None
) -> dict[str, np.ndarray]:
    """Render one random scene of ``sdf`` in each of ``modalities``; same seed, same images
    (``shift``: a deployment shift, see shifts.py)."""
    rng = np.random.default_rng(list(seed))
    scene = random_scene(rng, seed, shift)
    g = trace(sdf, scene, size * SUPERSAMPLE, mirror="ir" in modalities)
    shaders = {"rgb": shade_rgb, "depth": shade_depth, "ir": shade_ir}
    out = {}
    for i, m in enumerate(("rgb", "depth", "ir")):
        if m in modalities:
            rng_m = np.random.default_rng([*seed, 101 + i])
            out[m] = shaders[m](g, scene, rng_m, SUPERSAMPLE, shift)
    return out
