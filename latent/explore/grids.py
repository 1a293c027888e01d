"""The decoded grids that the exploration commands and the report both show: an interpolation between two rows,
traversals of the informative dimensions around anchor rows, and latent arithmetic. Each returns the codes and
their decodings, and, when the rows are images (`LatentSpace.image_shape`), the grid of images with its titles."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from latent.analysis.arithmetic import apply_vector
from latent.analysis.generate import interpolate
from latent.analysis.traversal import traversal_codes, traversal_offsets
from latent.explore.space import LatentSpace


@dataclass(frozen=True)
class ImageGrid:
    """Rows of flat images, with optional row and column titles."""

    rows: list[list[np.ndarray]]
    row_titles: list[str] | None = None
    col_titles: list[str] | None = None


@dataclass(frozen=True)
class Interpolation:
    modes: tuple[str, ...]  # "linear" and/or "slerp", one grid row each
    t: np.ndarray  # (steps,)
    codes: np.ndarray  # (modes, steps, k)
    decoded: np.ndarray  # (modes, steps, d)
    grid: ImageGrid | None  # each row: the start input, the decoded path, the end input


def interpolation_grid(
    space: LatentSpace, from_id: str, to_id: str, steps: int, modes: tuple[str, ...] = ("linear",)
) -> Interpolation:
    """Paths of `steps` points between the posterior means of two rows, linear and/or spherical, decoded."""
    z0, z1 = space.z_mean([from_id, to_id])
    codes = np.stack([interpolate(z0, z1, steps, slerp=mode == "slerp") for mode in modes])
    decoded = space.decode(codes)
    t = np.linspace(0.0, 1.0, steps)
    grid = None
    if space.image_shape:
        ends = space.inputs([from_id, to_id])
        grid = ImageGrid(
            [[ends[0], *decoded[m], ends[1]] for m in range(len(modes))],
            list(modes) if len(modes) > 1 else None,
            [from_id, *[f"{v:.2f}" for v in t], to_id],
        )
    return Interpolation(tuple(modes), t, codes, decoded, grid)


@dataclass(frozen=True)
class Traversal:
    anchors: list[str]
    dims: list[int]
    offsets: np.ndarray  # (steps,), in σ
    codes: np.ndarray  # (anchors, dims, steps, k)
    decoded: np.ndarray  # (anchors, dims, steps, d)
    grids: list[ImageGrid]  # one per anchor (empty unless the rows are images): a row per dimension


def traversal_grid(
    space: LatentSpace, anchors: list[str], dims: list[int], kl: np.ndarray, steps: int, span: float = 3.0
) -> Traversal:
    """Each dimension in `dims` swept from −span·σ to +span·σ around each anchor's posterior mean (σ: the spread of
    z_mean in that dimension over the table), decoded. `kl` (per dimension) titles the rows."""
    sigma = space.codes["z_mean"].astype(np.float64).std(axis=0)
    codes = traversal_codes(space.z_mean(anchors), dims, sigma, steps, span)
    decoded = space.decode(codes)
    offsets = traversal_offsets(steps, span)
    grids = []
    if space.image_shape:
        row_titles = [f"z{d} KL {kl[d]:.2f}" for d in dims]
        col_titles = [f"{o:+.3g}σ" for o in offsets]
        grids = [ImageGrid([list(row) for row in decoded[i]], row_titles, col_titles) for i in range(len(anchors))]
    return Traversal(list(anchors), list(dims), offsets, codes, decoded, grids)


@dataclass(frozen=True)
class Arithmetic:
    target_ids: list[str]
    strengths: list[float]
    codes: np.ndarray  # (targets, strengths, k)
    decoded: np.ndarray  # (targets, strengths, d)
    grid: ImageGrid | None  # a row per target: its input, then one decoding per strength


def arithmetic_grid(
    space: LatentSpace, vector: np.ndarray, target_ids: list[str], strengths: list[float]
) -> Arithmetic:
    """The target rows' posterior means moved by each strength times `vector`, decoded."""
    codes = apply_vector(space.z_mean(target_ids), vector, strengths)
    decoded = space.decode(codes)
    grid = None
    if space.image_shape:
        inputs = space.inputs(target_ids)
        grid = ImageGrid(
            [[inputs[r], *decoded[r]] for r in range(len(target_ids))],
            list(target_ids),
            ["input", *[f"s={s:g}" for s in strengths]],
        )
    return Arithmetic(list(target_ids), list(strengths), codes, decoded, grid)
