"""The `shapes` source: the dSprites grid, generated (3 shapes × 6 scales × 40 orientations × 32 × 32 positions), and
the one definition of its factors and of its ground-truth renderer, which the disentanglement metrics reuse.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latent.config import stable_hash
from latent.data.sources.base import (
    Plan,
    Rows,
    Source,
    labels_array,
    register_source,
)

SHAPES = ("square", "ellipse", "heart")
SHAPE_FACTORS = {"shape": 3, "scale": 6, "orientation": 40, "pos_x": 32, "pos_y": 32}  # name -> number of values
FACTOR_NAMES = tuple(SHAPE_FACTORS)
FACTOR_SIZES = tuple(SHAPE_FACTORS.values())
GRID = int(np.prod(FACTOR_SIZES))  # 737,280 images
IMAGE_SIZE = 64  # images are IMAGE_SIZE × IMAGE_SIZE, one channel, pixels 0 or 1


def shapes_factor_values(indices: np.ndarray) -> dict[str, np.ndarray]:
    """Factor values of dSprites grid indices (n, 5): scale in [0.5, 1], orientation in [0, 2π), positions in [0, 1]."""
    return {
        "shape": indices[:, 0].astype(np.float32),
        "scale": np.linspace(0.5, 1.0, SHAPE_FACTORS["scale"], dtype=np.float32)[indices[:, 1]],
        "orientation": (2 * np.pi * indices[:, 2] / SHAPE_FACTORS["orientation"]).astype(np.float32),
        "pos_x": np.linspace(0.0, 1.0, SHAPE_FACTORS["pos_x"], dtype=np.float32)[indices[:, 3]],
        "pos_y": np.linspace(0.0, 1.0, SHAPE_FACTORS["pos_y"], dtype=np.float32)[indices[:, 4]],
    }


def render_shapes(indices: np.ndarray, size: int = IMAGE_SIZE, chunk: int = 512) -> np.ndarray:
    """Binary size×size images (n, size²) for dSprites grid indices (n, 5), rendered `chunk` at a time so that a
    worker's memory does not grow with the partition."""
    if len(indices) > chunk:
        return np.concatenate(
            [render_shapes(indices[i : i + chunk], size, chunk) for i in range(0, len(indices), chunk)]
        )
    values = shapes_factor_values(indices)
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    gy, gx = np.meshgrid(coords, coords, indexing="ij")
    n = len(indices)
    margin = 0.2  # the largest shape stays inside the image wherever it is placed
    cx = (margin + (1 - 2 * margin) * values["pos_x"])[:, None, None]
    cy = (margin + (1 - 2 * margin) * values["pos_y"])[:, None, None]
    radius = (0.16 * values["scale"])[:, None, None]
    theta = values["orientation"][:, None, None]
    dx, dy = gx[None] - cx, gy[None] - cy
    u = (np.cos(theta) * dx + np.sin(theta) * dy) / radius
    v = (-np.sin(theta) * dx + np.cos(theta) * dy) / radius
    out = np.zeros((n, size, size), dtype=bool)
    kind = indices[:, 0]
    square = kind == 0
    out[square] = (np.abs(u[square]) <= 0.85) & (np.abs(v[square]) <= 0.85)
    ellipse = kind == 1
    out[ellipse] = (u[ellipse] / 1.0) ** 2 + (v[ellipse] / 0.5) ** 2 <= 1.0
    heart = kind == 2
    hu, hv = u[heart] * 1.2, -v[heart] * 1.2 + 0.25  # the implicit heart curve, upright, centred
    out[heart] = (hu**2 + hv**2 - 1) ** 3 - hu**2 * hv**3 <= 0
    return out.reshape(n, size * size).astype(np.uint8)


@register_source
class ShapesSource(Source):
    name = "shapes"
    GRID = GRID

    def fingerprint(self) -> str:
        return stable_hash({"source": "shapes", "v": 1, **self.cfg.shapes.model_dump()})

    def plan(self, raw_dir: Path, shard_rows: int) -> Plan:
        n = self.cfg.shapes.n_samples
        total = self.GRID if n is None else min(n, self.GRID)
        parts = [[start, min(start + shard_rows, total)] for start in range(0, total, shard_rows)]
        return Plan(parts, (1, IMAGE_SIZE, IMAGE_SIZE), 1.0, total)

    def flat_indices(self, start: int, stop: int) -> np.ndarray:
        n = self.cfg.shapes.n_samples
        if n is None or n >= self.GRID:
            return np.arange(start, stop)
        rng = np.random.default_rng(self.cfg.shapes.seed)
        return np.sort(rng.choice(self.GRID, n, replace=False))[start:stop]

    def read(self, partition: list[int]) -> Rows:
        flat = self.flat_indices(*partition)
        indices = np.stack(np.unravel_index(flat, FACTOR_SIZES), axis=1)
        values = shapes_factor_values(indices)
        extra = {
            **{f"{k}_idx": indices[:, i].astype(np.int64) for i, k in enumerate(FACTOR_NAMES)},
            **{f"{k}_value": v for k, v in values.items()},
        }
        return Rows(
            [f"shapes-{i:06d}" for i in flat], render_shapes(indices), labels_array(indices[:, 0], len(flat)), extra
        )
