"""Moving in a latent space: interpolation between rows, attribute arithmetic and per-dimension traversals.

The array functions (`kl_per_dim`, `attribute_vector`, `traversal_codes`, ...) are pure; `LatentSpace` binds a
latent table to the model and dataset it came from, and the `write_*` functions turn one analysis into a folder
under `<workspace>/analysis/` (PNG grid for image data, `points.parquet` with every code and decoded sample) that is
published atomically and logged to an MLflow run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import torch

from latent.analysis.figures import image_grid_png
from latent.analysis.generate import interpolate
from latent.config import stable_hash
from latent.data.arrow import vectors_to_arrow
from latent.data.dataset import DatasetInfo, read_dataset_info
from latent.errors import LatentError
from latent.models.io import load_logged_model
from latent.query import select_ids
from latent.tables import LatentTable, latest_table, load_latent_arrays, read_table_info
from latent.tracking import Tracking, stage_run, tag
from latent.workspace import Workspace, atomic_write_text, publish_dir

# ---- pure functions of codes -------------------------------------------------------------------------------------


def kl_per_dim(z_mean: np.ndarray, z_logvar: np.ndarray) -> np.ndarray:
    """Mean KL(q(z_j|x) ‖ N(0, 1)) of each latent dimension over the rows: the information each one carries."""
    z_mean = np.asarray(z_mean, np.float64)
    z_logvar = np.asarray(z_logvar, np.float64)
    return np.mean(0.5 * (z_mean**2 + np.exp(z_logvar) - z_logvar - 1.0), axis=0)


def attribute_vector(z_with: np.ndarray, z_without: np.ndarray) -> np.ndarray:
    """Mean code of the rows with an attribute minus the mean code of the rows without it."""
    if len(z_with) == 0 or len(z_without) == 0:
        raise LatentError("attribute vector: both predicates must match at least one row")
    return np.asarray(z_with, np.float64).mean(0) - np.asarray(z_without, np.float64).mean(0)


def apply_vector(z: np.ndarray, vector: np.ndarray, strengths: list[float]) -> np.ndarray:
    """Codes moved along `vector`: shape (rows, len(strengths), k), strength 0 being the rows themselves."""
    z = np.asarray(z, np.float64)
    return z[:, None, :] + np.asarray(strengths, np.float64)[None, :, None] * np.asarray(vector)[None, None, :]


def traversal_codes(
    anchors: np.ndarray, dims: list[int], sigma: np.ndarray, steps: int, span: float = 3.0
) -> np.ndarray:
    """Each dimension in `dims` swept over anchor ± span·σ (σ per dimension), the others held at the anchor:
    shape (anchors, len(dims), steps, k)."""
    anchors = np.asarray(anchors, np.float64)
    offsets = np.linspace(-span, span, steps)
    out = np.repeat(anchors[:, None, None, :], len(dims), axis=1).repeat(steps, axis=2)
    for i, d in enumerate(dims):
        out[:, i, :, d] = anchors[:, None, d] + offsets[None, :] * sigma[d]
    return out


# ---- a latent table with its model and dataset -------------------------------------------------------------------


@dataclass
class LatentSpace:
    table: LatentTable
    dataset: DatasetInfo
    model: torch.nn.Module
    codes: dict[str, np.ndarray]
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def model_uri(self) -> str:
        return self.table.info["model"]["uri"]

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        """(channels, height, width) when the rows are images, else None."""
        s = self.dataset.shape
        shape = (s.get("channels", 0), s.get("height", 0), s.get("width", 0))
        return shape if all(shape) and int(np.prod(shape)) == self.dataset.feature_dim else None

    def positions(self, ids: list[str]) -> np.ndarray:
        if not self._index:
            self._index = {str(i): n for n, i in enumerate(self.codes["id"])}
        missing = [i for i in ids if i not in self._index]
        if missing:
            raise LatentError(f"{self.table.path}: no row with id {', '.join(map(repr, missing[:5]))}")
        return np.asarray([self._index[i] for i in ids], dtype=np.int64)

    def z_mean(self, ids: list[str]) -> np.ndarray:
        return self.codes["z_mean"][self.positions(ids)].astype(np.float64)

    def inputs(self, ids: list[str]) -> np.ndarray:
        """The model inputs of these rows (as training saw them), in the order given."""
        files = sorted(str(p) for p in Path(self.dataset.path).glob("part-*.parquet"))
        table = ds.dataset(files, format="parquet").to_table(columns=["id", "x"], filter=ds.field("id").isin(ids))
        found = {str(i): n for n, i in enumerate(table.column("id").to_pylist())}
        missing = [i for i in ids if i not in found]
        if missing:
            raise LatentError(f"{self.dataset.path}: dataset has no row with id {', '.join(map(repr, missing[:5]))}")
        x = self.dataset.transform.apply(table.column("x"))
        return x[[found[i] for i in ids]]

    @torch.no_grad()
    def decode(self, z: np.ndarray) -> np.ndarray:
        flat = np.asarray(z, np.float32).reshape(-1, z.shape[-1])
        out = self.model.decode(torch.from_numpy(flat)).numpy()
        return out.reshape(*z.shape[:-1], out.shape[-1])


def resolve_table(workspace: Workspace, ref: str | Path | None) -> LatentTable:
    """A latent table by directory, by its SQL view name (`latent tables` / `latent query` show them), or the newest."""
    if ref is None:
        return latest_table(workspace)
    path = Path(ref)
    if path.is_dir():
        return read_table_info(path)
    from latent.query import view_names
    from latent.tables import list_tables

    names = view_names(list_tables(workspace))
    if ref == "latents" and names:
        return next(iter(names.values()))
    if str(ref) in names:
        return names[str(ref)]
    raise LatentError(f"table {str(ref)!r}: not a latent table directory nor a view name in {workspace.root}")


def open_latent_space(table: LatentTable, tracking_uri: str | None) -> LatentSpace:
    dataset_path = Path(table.info["dataset"]["path"])
    if not (dataset_path / "manifest.json").is_file():
        raise LatentError(
            f"{table.path}: its dataset table {dataset_path} is gone; rerun `latent preprocess` with the same config"
        )
    model = load_logged_model(table.info["model"]["uri"], tracking_uri)
    model.eval()
    return LatentSpace(table, read_dataset_info(dataset_path), model, load_latent_arrays(table.path))


# ---- analyses that write a folder and log it -------------------------------------------------------------------


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
    grids: list[tuple[str, list[list[np.ndarray]], str, list[str] | None, list[str] | None]],
    facts: dict[str, Any],
    workspace: Workspace,
    tracking: Tracking | None,
) -> AnalysisResult:
    """Write points.parquet, one PNG per grid (image data only) and analysis.json into
    <workspace>/analysis/<kind>-<hash of table, model and params>, atomically, then log it to MLflow."""
    from latent.analysis.modalities import describe_decoded

    if points is not None and (
        words := describe_decoded(space.dataset.path, np.stack(points.column("x").to_numpy(zero_copy_only=False)))
    ):
        facts = {**facts, "decoded_top_words": words}  # text: each decoded point as its most probable words
    from latent.chem import decoded_smiles

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
            for name, rows, title, row_titles, col_titles in grids:
                image_grid_png(staging / name, rows, shape, title, row_titles, col_titles)
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
    z0, z1 = space.z_mean([from_id, to_id])
    path = interpolate(z0, z1, steps, slerp=slerp)
    decoded = space.decode(path)
    ends = space.inputs([from_id, to_id]) if space.image_shape else None
    mode = "slerp" if slerp else "linear"
    grids = []
    if ends is not None:
        grids.append(
            (
                "interpolation.png",
                [[ends[0], *decoded, ends[1]]],
                f"{mode} interpolation {from_id} → {to_id} ({steps} steps; ends: the inputs)",
                None,
                [from_id, *[f"{t:.2f}" for t in np.linspace(0, 1, steps)], to_id],
            )
        )
    points = _points_table([mode] * steps, list(np.linspace(0, 1, steps)), path, decoded)
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
    moved = apply_vector(space.z_mean(target_ids), vector, strengths)
    decoded = space.decode(moved)
    grids = []
    if space.image_shape:
        inputs = space.inputs(target_ids)
        grids.append(
            (
                "arithmetic.png",
                [[inputs[r], *decoded[r]] for r in range(len(target_ids))],
                f"z + s·(mean[{plus}] − mean[{minus}])",
                target_ids,
                ["input", *[f"s={s:g}" for s in strengths]],
            )
        )
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
    order = [int(d) for d in np.argsort(-kl, kind="stable")[:max_dims]]
    sigma = codes["z_mean"].astype(np.float64).std(axis=0)
    if not anchors:
        pool = codes["id"][codes["split"] == "test"]
        pool = pool if len(pool) else codes["id"]
        rng = np.random.default_rng(seed)
        anchors = [str(i) for i in rng.choice(pool, size=min(n_anchors, len(pool)), replace=False)]
    grid = traversal_codes(space.z_mean(anchors), order, sigma, steps, span)
    decoded = space.decode(grid)
    offsets = np.linspace(-span, span, steps)
    grids = [
        (
            f"traversal-{i}.png",
            [list(decoded[i, j]) for j in range(len(order))],
            f"traversals around {anchor} (rows: dimensions by KL)",
            [f"z{d} KL {kl[d]:.2f}" for d in order],
            [f"{o:+.3g}σ" for o in offsets],
        )
        for i, anchor in enumerate(anchors)
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
    from latent.analysis.disentangle import evaluate_latent_space

    scores = evaluate_latent_space(
        space.table.path, space.model, space.dataset.path, seed=seed, budget=budget, interventional=interventional
    )
    params = {"budget": budget, "interventional": interventional, "seed": seed}
    return _publish("disentanglement", space, params, None, [], scores, workspace, tracking)
