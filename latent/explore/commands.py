"""The exploration commands' analyses: each turns one analysis of a `LatentSpace` into a folder under
`<workspace>/analysis/` (PNG grid for image data, `points.parquet` with every code and decoded sample,
`analysis.json`), published atomically and logged to an MLflow run."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from latent.analysis.arithmetic import attribute_vector
from latent.analysis.traversal import informative_dims, kl_per_dim
from latent.config import stable_hash
from latent.data.arrow import vectors_to_arrow
from latent.errors import LatentError
from latent.explore.figures import image_grid_png
from latent.explore.grids import ImageGrid, arithmetic_grid, interpolation_grid, traversal_grid
from latent.explore.space import LatentSpace
from latent.query import select_ids
from latent.tracking import Tracking, stage_run, tag
from latent.workspace import Workspace, atomic_write_text, publish_dir


@dataclass(frozen=True)
class AnalysisResult:
    kind: str
    directory: str
    image_path: str | None
    points_path: str | None
    run_id: str | None
    facts: dict[str, Any]


def _points_table(groups: list[str], positions: list[float], z: np.ndarray, x: np.ndarray) -> pa.Table:
    return pa.table(
        {
            "group": pa.array(groups, pa.string()),
            "position": pa.array(positions, pa.float64()),
            "z": vectors_to_arrow(np.asarray(z, np.float32)),
            "x": vectors_to_arrow(np.asarray(x, np.float32)),
        }
    )


def _publish(
    kind: str,
    space: LatentSpace,
    params: dict[str, Any],
    points: pa.Table | None,
    grids: list[tuple[str, str, ImageGrid]],
    facts: dict[str, Any],
    workspace: Workspace,
    tracking: Tracking | None,
) -> AnalysisResult:
    """Write points.parquet, one PNG per grid (image data only) and analysis.json into
    <workspace>/analysis/<kind>-<hash of table, model and params>, atomically, then log it to MLflow."""
    from latent.explore.modalities import describe_decoded

    if points is not None and (
        words := describe_decoded(space.dataset.path, np.stack(points.column("x").to_numpy(zero_copy_only=False)))
    ):
        facts = {**facts, "decoded_top_words": words}  # text: each decoded point as its most probable words
    from latent.explore.molecules import decoded_smiles

    if points is not None and (
        smiles := decoded_smiles(space.dataset.path, np.stack(points.column("x").to_numpy(zero_copy_only=False)))
    ):
        facts = {**facts, "decoded_smiles": smiles}  # molecules: each decoded point as a SMILES
    key = stable_hash({"kind": kind, "table": str(space.table.path), "model": space.model_uri, **params})[:12]
    final = workspace.root / "analysis" / f"{kind}-{key}"
    shape = space.image_shape
    image_path = None
    with publish_dir(final, replace=True) as staging:
        if points is not None:
            pq.write_table(points, staging / "points.parquet", compression="zstd")
        if shape is not None:
            for name, title, grid in grids:
                image_grid_png(staging / name, grid.rows, shape, title, grid.row_titles, grid.col_titles)
            image_path = str(final / grids[0][0]) if grids else None
        description = {"kind": kind, "table": str(space.table.path), "model_uri": space.model_uri, **params, **facts}
        atomic_write_text(staging / "analysis.json", json.dumps(description, indent=2, default=str))
    run_id = None
    if tracking is not None:
        stage_tags = {
            tag("table_path"): str(space.table.path),
            tag("model_uri"): space.model_uri,
            tag("analysis"): kind,
        }
        with stage_run(tracking, "analysis", stage_tags, run_name=kind) as run:
            run.log_params({k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in params.items()})
            run.log_metrics({k: v for k, v in facts.items() if isinstance(v, int | float)})
            run.log_artifacts(final, f"analysis/{kind}")
            run_id = run.run_id
    points_path = str(final / "points.parquet") if points is not None else None
    return AnalysisResult(kind, str(final), image_path, points_path, run_id, facts)


def write_interpolation(
    space: LatentSpace,
    from_id: str,
    to_id: str,
    steps: int,
    slerp: bool,
    workspace: Workspace,
    tracking: Tracking | None,
) -> AnalysisResult:
    """Decode a linear or spherical path between the posterior means of two rows; the strip shows the two inputs
    at its ends."""
    if steps < 2:
        raise LatentError(f"--steps: expected at least 2, got {steps}")
    mode = "slerp" if slerp else "linear"
    result = interpolation_grid(space, from_id, to_id, steps, (mode,))
    path, decoded = result.codes[0], result.decoded[0]
    grids = []
    if result.grid is not None:
        title = f"{mode} interpolation {from_id} → {to_id} ({steps} steps; ends: the inputs)"
        grids.append(("interpolation.png", title, result.grid))
    points = _points_table([mode] * steps, list(result.t), path, decoded)
    norms = np.linalg.norm(path, axis=1)
    facts = {"path_norm_min": float(norms.min()), "path_norm_max": float(norms.max())}
    params = {"from": from_id, "to": to_id, "steps": steps, "slerp": slerp}
    return _publish("interpolation", space, params, points, grids, facts, workspace, tracking)


def write_arithmetic(
    space: LatentSpace,
    workspace: Workspace,
    plus: str,
    minus: str,
    apply_to: str | None,
    rows: int,
    strengths: list[float],
    tracking: Tracking | None,
) -> AnalysisResult:
    """attribute = mean z_mean where `plus` − mean z_mean where `minus` (SQL predicates on the latent table),
    added with each strength to the first `rows` rows matching `apply_to` (default: `minus`) and decoded."""
    with_ids = select_ids(workspace, space.table.path, plus)
    without_ids = select_ids(workspace, space.table.path, minus)
    for predicate, ids in ((plus, with_ids), (minus, without_ids)):
        if not ids:
            raise LatentError(f"predicate {predicate!r} matches no row of {space.table.path}")
    vector = attribute_vector(space.z_mean(with_ids), space.z_mean(without_ids))
    target_ids = select_ids(workspace, space.table.path, apply_to or minus, limit=rows)
    if not target_ids:
        raise LatentError(f"predicate {apply_to!r} matches no row of {space.table.path}")
    result = arithmetic_grid(space, vector, target_ids, strengths)
    moved, decoded = result.codes, result.decoded
    grids = []
    if result.grid is not None:
        grids.append(("arithmetic.png", f"z + s·(mean[{plus}] − mean[{minus}])", result.grid))
    n, s = len(target_ids), len(strengths)
    points = _points_table(
        [i for i in target_ids for _ in strengths],
        [float(v) for _ in target_ids for v in strengths],
        moved.reshape(n * s, -1),
        decoded.reshape(n * s, -1),
    )
    facts = {
        "rows_plus": len(with_ids),
        "rows_minus": len(without_ids),
        "vector_norm": float(np.linalg.norm(vector)),
        "vector": [float(v) for v in vector],
    }
    params = {"plus": plus, "minus": minus, "apply": apply_to or minus, "rows": rows, "strengths": strengths}
    return _publish("arithmetic", space, params, points, grids, facts, workspace, tracking)


def write_traversals(
    space: LatentSpace,
    anchors: list[str] | None,
    n_anchors: int,
    max_dims: int,
    steps: int,
    workspace: Workspace,
    tracking: Tracking | None,
    span: float = 3.0,
    seed: int = 0,
) -> AnalysisResult:
    """Sweep each of the `max_dims` most informative dimensions (by KL) from −span·σ to +span·σ around each anchor
    (given ids, or `n_anchors` seeded rows of the test split); σ is the spread of z_mean in that dimension."""
    if steps < 2:
        raise LatentError(f"--steps: expected at least 2, got {steps}")
    codes = space.codes
    kl = kl_per_dim(codes["z_mean"], codes["z_logvar"])
    order = informative_dims(kl, max_dims)
    if not anchors:
        pool = codes["id"][codes["split"] == "test"]
        pool = pool if len(pool) else codes["id"]
        rng = np.random.default_rng(seed)
        anchors = [str(i) for i in rng.choice(pool, size=min(n_anchors, len(pool)), replace=False)]
    result = traversal_grid(space, anchors, order, kl, steps, span)
    grid, decoded, offsets = result.codes, result.decoded, result.offsets
    grids = [
        (f"traversal-{i}.png", f"traversals around {anchor} (rows: dimensions by KL)", image_grid)
        for i, (anchor, image_grid) in enumerate(zip(anchors, result.grids, strict=False))
    ]
    groups = [f"{anchor}/z{d}" for anchor in anchors for d in order for _ in range(steps)]
    positions = [float(o) for _ in anchors for _ in order for o in offsets]
    points = _points_table(groups, positions, grid.reshape(-1, grid.shape[-1]), decoded.reshape(-1, decoded.shape[-1]))
    facts = {"dims_by_kl": order, "kl_per_dim": [float(v) for v in kl], "anchors": anchors}
    params = {"anchors": anchors, "max_dims": max_dims, "steps": steps, "span": span}
    return _publish("traversals", space, params, points, grids, facts, workspace, tracking)


def write_disentanglement(
    space: LatentSpace,
    workspace: Workspace,
    tracking: Tracking | None,
    budget: int | str = 1000,
    interventional: bool = True,
    seed: int = 0,
) -> AnalysisResult:
    """The disentanglement metrics of a table with ground-truth factor columns (`evaluate_latent_space`), saved as
    analysis.json and logged as MLflow metrics."""
    from latent.explore.disentangle import evaluate_latent_space

    scores = evaluate_latent_space(
        space.table.path, space.model, space.dataset.path, seed=seed, budget=budget, interventional=interventional
    )
    params = {"budget": budget, "interventional": interventional, "seed": seed}
    return _publish("disentanglement", space, params, None, [], scores, workspace, tracking)
