"""Report: PCA and t-SNE of the latent means, an interactive latent map, reconstructions, prior samples and an
interpolation, as one self-contained HTML page (plus the PNGs and a coordinates table joinable on `id`), all
logged to MLflow.

The page is a list of `Section`s (anchor id, heading, HTML fragment) under a table of contents; adding a figure
is one line, e.g. `sections.append(png_section("traversals", "Latent traversals", staging / "traversals.png"))`.
The page itself (templates, the latent map's script) is latent/page.py's.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import latent
from latent.analysis import attribute_vector, informative_dims, kl_per_dim, pca, probe_report, sample_prior, tsne, umap
from latent.analysis.dr import fit_rows
from latent.config import ReportConfig, stable_hash
from latent.data.dataset import read_dataset_info
from latent.explore.disentangle import evaluate_latent_space, factor_columns
from latent.explore.figures import as_image, image_grid_png, pyplot
from latent.explore.grids import ImageGrid, arithmetic_grid, interpolation_grid, traversal_grid
from latent.explore.modalities import TEXT_COLUMNS, domain_sections, domain_thumbnails
from latent.explore.space import LatentSpace, image_geometry
from latent.models.io import load_logged_model
from latent.page import Section, latent_map_section, png_section, render_html, table_html
from latent.progress import reporter
from latent.tables import load_latent_arrays, open_latent_dataset, read_latent_table, read_table_info
from latent.tracking import Tracking, latest_stage_run, stage_run, tag
from latent.workspace import Workspace, atomic_write_text, publish_dir

logger = logging.getLogger(__name__)

REPORT_HTML = "report.html"
COORDINATES = "coordinates.parquet"
THUMBNAIL_MAX_SIDE = 32  # pixels; larger images are shrunk so 5,000 thumbnails stay well under a megabyte or two
ACTIVE_DIM_KL = 0.01  # nats: a dimension carrying less than this is treated as collapsed (inactive)
TRAVERSAL_STEPS = 9
PROBE_BUDGETS = (10, 100, 1000, None)
TSNE_MIN_ROWS = 5  # fewer rows have too few neighbours for t-SNE: the map then shows their PCA coordinates
CATEGORICAL_MAX_LEVELS = 24  # a column with at most this many distinct values is coloured by category


@dataclass(frozen=True)
class ReportResult:
    report_dir: str
    html_path: str
    coordinates_path: str
    run_id: str
    metrics: dict[str, float]
    reused: bool = False


# ---- the interactive latent map ----------------------------------------------------------------------------


def _number(v: float) -> float | None:
    return None if not math.isfinite(v) else float(f"{v:.4g}")


def _is_categorical(values: np.ndarray) -> bool:
    if values.dtype.kind not in "fiub":
        return True
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    return (values.dtype.kind != "f" or np.all(finite == np.round(finite))) and len(np.unique(finite)) <= (
        CATEGORICAL_MAX_LEVELS
    )


def map_column(name: str, values: np.ndarray) -> dict:
    """A colour-by column for the map: categorical (levels + a code per point) or continuous (a value per point;
    null where missing)."""
    values = np.asarray(values)
    if name in TEXT_COLUMNS:  # a document's start or a SMILES: shown beside the hovered point, not a colour
        return {"name": name, "kind": "text", "values": [None if v is None else str(v) for v in values.tolist()]}
    if not _is_categorical(values):
        return {"name": name, "kind": "continuous", "values": [_number(float(v)) for v in values]}
    if values.dtype.kind in "fiub":
        as_float = values.astype(np.float64)
        present = np.isfinite(as_float)
        keys = [int(v) if p else None for v, p in zip(as_float, present, strict=True)]
    else:
        keys = [None if v is None else str(v) for v in values.tolist()]
    levels = sorted({k for k in keys if k is not None})
    names = [str(level) for level in levels]
    if any(k is None for k in keys):
        levels.append(None)
        names.append("missing")
    index = {level: i for i, level in enumerate(levels)}
    return {"name": name, "kind": "categorical", "levels": names, "codes": [index[k] for k in keys]}


def map_rows(n: int, limit: int, seed: int) -> np.ndarray:
    """Positions of the rows shown on the map, ascending: all n, or a seeded sample of `limit` of them."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def map_payload(
    ids: np.ndarray,
    projections: list[tuple[str, np.ndarray, tuple[str, str]]],
    columns: dict[str, np.ndarray],
    thumbnails: list[str] | None,
    total_rows: int,
) -> dict:
    """What the map's script reads: ids, 2-D coordinates per projection, colour-by columns, thumbnails."""
    return {
        "total": int(total_rows),
        "ids": [str(i) for i in ids],
        "projections": [
            {
                "name": name,
                "axes": list(axes),
                "x": [_number(float(v)) for v in xy[:, 0]],
                "y": [_number(float(v)) for v in xy[:, 1]],
            }
            for name, xy, axes in projections
        ],
        "columns": [map_column(name, values) for name, values in columns.items()],
        "thumbnails": thumbnails,
    }


def thumbnails(x: np.ndarray, geometry: tuple[int, int, int]) -> list[str]:
    """Base64 PNGs, one per row, at most THUMBNAIL_MAX_SIDE pixels a side. Grayscale is shown dark on light,
    as in the report's figures."""
    from PIL import Image

    c, h, w = geometry
    factor = min(1.0, THUMBNAIL_MAX_SIDE / max(h, w))
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    out = []
    for row in x:
        pixels = np.rint(as_image(row, geometry) * 255).astype(np.uint8)
        image = Image.fromarray(255 - pixels if c == 1 else pixels, "L" if c == 1 else "RGB")
        if factor < 1.0:
            image = image.resize(size, Image.Resampling.BOX)
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        out.append(base64.b64encode(buffer.getvalue()).decode())
    return out


def _factor_columns(table_path: Path, ids: list[str]) -> dict[str, np.ndarray]:
    """The latent table's ground-truth factor columns (e.g. shape_idx, scale_value) for the given rows."""
    schema = open_latent_dataset(table_path).schema
    known = {"id", "label", "split", "z_mean", "z_logvar", "recon_error"}
    names = [
        f.name
        for f in schema
        if f.name not in known
        and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_string(f.type))
    ]
    if not names:
        return {}
    frame = read_latent_table(table_path, columns=["id", *names]).set_index("id").loc[ids]
    return {name: frame[name].to_numpy() for name in names}


# ---- the figures -------------------------------------------------------------------------------------------


def _scatter(path: Path, coords: np.ndarray, labels: np.ndarray, title: str, axes: tuple[str, str]) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=110)
    has_labels = labels is not None and len(labels) and not np.all(labels < 0)
    points = ax.scatter(coords[:, 0], coords[:, 1], c=labels if has_labels else None, cmap="tab10", s=6, alpha=0.8)
    if has_labels:
        fig.colorbar(points, ax=ax, label="label")
    ax.set_title(title)
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _kl_bars(path: Path, kl: np.ndarray) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=110)
    order = np.argsort(-kl, kind="stable")
    ax.bar(np.arange(len(kl)), kl[order], color=["#3b75af" if v > ACTIVE_DIM_KL else "#bbbbbb" for v in kl[order]])
    ax.set_xticks(np.arange(len(kl)), [f"z{d}" for d in order], fontsize=7, rotation=90 if len(kl) > 16 else 0)
    ax.set_ylabel("mean KL (nats)")
    ax.set_title(f"KL per dimension, sorted; grey: inactive (KL ≤ {ACTIVE_DIM_KL})")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _generation_sections(space: LatentSpace, cfg: ReportConfig, kl: np.ndarray, staging: Path) -> list[Section]:
    """Reconstructions, prior samples, interpolations, traversals and (with labels) latent arithmetic."""
    geometry = space.image_shape
    codes = space.codes
    test_ids = sorted(str(i) for i in codes["id"][codes["split"] == "test"]) or sorted(str(i) for i in codes["id"])
    if len(test_ids) < 2:
        return []
    shown = test_ids[: cfg.n_reconstructions]
    x = space.inputs(shown)
    recon = space.decode(space.z_mean(shown))
    sections = []

    def grid(name: str, section_id: str, title: str, image_grid: ImageGrid) -> None:
        image_grid_png(staging / name, image_grid.rows, geometry, title, image_grid.row_titles, image_grid.col_titles)
        sections.append(png_section(section_id, title, staging / name))

    grid(
        "reconstructions.png",
        "reconstructions",
        "Reconstructions (top: test inputs, bottom: decoded posterior means)",
        ImageGrid([list(x), list(recon)], row_titles=["input", "recon"]),
    )
    samples = sample_prior(space.model, cfg.n_samples, cfg.seed)
    per_row = 16
    grid(
        "samples.png",
        "samples",
        "Samples decoded from the prior N(0, I)",
        ImageGrid([list(samples[i : i + per_row]) for i in range(0, len(samples), per_row)]),
    )
    a, b = test_ids[0], test_ids[1]
    interpolation = interpolation_grid(space, a, b, cfg.interpolation_steps, ("linear", "slerp"))
    grid(
        "interpolation.png",
        "interpolation",
        f"Interpolation from {a} to {b} (ends: the inputs)",
        interpolation.grid,
    )
    dims = informative_dims(kl, cfg.traversal_dims)
    traversal = traversal_grid(space, [a], dims, kl, TRAVERSAL_STEPS)
    grid(
        "traversals.png",
        "traversals",
        f"Latent traversals around {a}: each dimension from −3σ to +3σ, most informative first",
        traversal.grids[0],
    )
    labels = codes["label"]
    classes = np.unique(labels[labels >= 0]) if labels.dtype.kind in "iu" else np.array([])
    if len(classes) >= 2:
        plus, minus = int(classes[-1]), int(classes[0])
        z = codes["z_mean"].astype(np.float64)
        vector = attribute_vector(z[labels == plus], z[labels == minus])
        targets = sorted(str(i) for i in codes["id"][labels == minus])[:4]
        arithmetic = arithmetic_grid(space, vector, targets, [0.0, 0.5, 1.0, 1.5, 2.0])
        grid(
            "arithmetic.png",
            "arithmetic",
            f"Latent arithmetic: z + s·(mean z[label = {plus}] − mean z[label = {minus}]) on label-{minus} rows",
            arithmetic.grid,
        )
    return sections


def _disentanglement_section(scores: dict[str, float]) -> Section:
    described = {
        "mig": "MIG: gap between the two latents most informative about each factor, ÷ factor entropy",
        "dci_disentanglement": "DCI disentanglement: each latent predicts one factor (tree importances)",
        "dci_completeness": "DCI completeness: each factor is predicted by one latent",
        "dci_informativeness_test": "DCI informativeness: test accuracy of the factor classifiers",
        "sap": "SAP: gap between the two latents that best predict each factor (linear SVM)",
        "modularity": "Modularity: each latent depends on one factor",
        "explicitness_test": "Explicitness: test AUC of linear factor classifiers",
        "factorvae_eval_accuracy": "FactorVAE score (interventional: fixed factor → least-variance latent)",
        "beta_vae_eval_accuracy": "β-VAE score (interventional: fixed factor from code differences)",
    }
    rows = "".join(
        f"<tr><th>{html.escape(text)}</th><td>{scores[key]:.3f}</td></tr>"
        for key, text in described.items()
        if key in scores
    )
    body = (
        "<p>Estimators and defaults of google-research/disentanglement_lib (equal to theirs on the same inputs), on "
        "the table's ground-truth factor columns; 1 is perfectly disentangled. The interventional scores (shapes "
        "only) render fresh samples with one factor fixed and encode them through the model. Sample budgets are "
        "set by <code>report.disentanglement_budget</code>; <code>latent disentangle --budget full</code> uses theirs.</p>"
        f"<table>{rows}</table>"
    )
    return Section("disentanglement", "Disentanglement of the ground-truth factors", body)


def _probe_section(space: LatentSpace, cfg: ReportConfig) -> tuple[Section, dict[str, float]] | None:
    """Probe accuracy on latents vs raw inputs, for tables with class labels and train/test rows."""
    codes = space.codes
    labels = codes["label"]
    if labels.dtype.kind not in "iu" or len(np.unique(labels[labels >= 0])) < 2:
        return None
    z, x, y = {}, {}, {}
    rng = np.random.default_rng(cfg.seed)
    for split in ("train", "test"):
        ids = codes["id"][(codes["split"] == split) & (labels >= 0)]
        if len(ids) < 2:
            return None
        if len(ids) > cfg.probe_max_rows:
            ids = np.sort(rng.choice(ids, cfg.probe_max_rows, replace=False))
        ids = [str(i) for i in ids]
        z[split], x[split], y[split] = space.z_mean(ids), space.inputs(ids), labels[space.positions(ids)]
    scores = probe_report(z, x, y, PROBE_BUDGETS, seed=cfg.seed, max_test=cfg.probe_max_rows)
    budgets = [str(b) for b in PROBE_BUDGETS if b is not None and b < len(y["train"])] + ["all"]
    head = "".join(f"<th>{b} labels</th>" for b in budgets)
    rows = "".join(
        f"<tr><th>{space_} · {method}</th>"
        + "".join(f"<td>{scores.get(f'probe_{space_}_{method}_{b}', float('nan')):.3f}</td>" for b in budgets)
        + "</tr>"
        for space_ in ("latent", "raw")
        for method in ("logistic", "knn")
    )
    body = (
        f"<p>Test accuracy of probes trained on {len(y['train']):,} labelled train rows or fewer: logistic "
        "regression (what a linear readout gets) and 5-nearest neighbours (local structure), on the latent means "
        "and on the raw inputs. Small budgets are class-stratified draws, averaged over 3.</p>"
        f"<table><tr><th>inputs · probe</th>{head}</tr>{rows}</table>"
    )
    return Section("probes", "Probes: labels from the latent space vs the raw inputs", body), scores


def _scree(path: Path, ratios: np.ndarray) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
    idx = np.arange(1, len(ratios) + 1)
    ax.bar(idx, ratios, label="explained variance ratio")
    ax.plot(idx, np.cumsum(ratios), marker="o", color="black", label="cumulative")
    ax.set_xlabel("principal component")
    ax.set_ylim(0, 1.05)
    ax.legend()
    ax.set_title("PCA of z_mean")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ---- the stage ---------------------------------------------------------------------------------------------


def build_report(
    table_path: str | Path,
    dataset_path: str | Path,
    model_uri: str,
    cfg: ReportConfig,
    workspace: Workspace,
    tracking: Tracking | None,
    reuse: bool = False,
) -> ReportResult:
    """Build the report; with reuse, a finished report of the same table, model and report config is returned."""
    table = read_table_info(table_path)
    dataset = read_dataset_info(dataset_path)
    key = stable_hash({"table": str(table.path), "model": model_uri, "report": cfg.model_dump(mode="json")})
    if reuse and tracking is not None:
        cached = latest_stage_run(tracking, "report", report_key=key)
        report_dir = Path(cached.data.tags.get(tag("report_dir"), "")) if cached else None
        if cached is not None and report_dir and (report_dir / REPORT_HTML).is_file():
            return ReportResult(
                str(report_dir),
                str(report_dir / REPORT_HTML),
                str(report_dir / COORDINATES),
                cached.info.run_id,
                dict(cached.data.metrics),
                reused=True,
            )
    stage_tags = {
        tag("table_path"): str(table.path),
        tag("dataset_version"): dataset.version,
        tag("model_uri"): model_uri,
        tag("report_key"): key,
    }
    with stage_run(tracking, "report", stage_tags) as run:
        run_id = run.run_id
        progress = reporter()
        progress.start("report", "report", 5)
        try:
            model = load_logged_model(model_uri, tracking.uri if tracking else None)
            codes = load_latent_arrays(table.path)
            z = codes["z_mean"]
            progress.advance("report", 1, "PCA")
            p = pca(z)
            pca2 = p.coords[:, :2] if p.coords.shape[1] >= 2 else np.column_stack([p.coords[:, 0], np.zeros(len(z))])
            progress.advance("report", 1, "t-SNE")
            shown = map_rows(len(z), cfg.map_points, cfg.seed)
            fitted = fit_rows(len(z), cfg.tsne_max_rows, cfg.seed, keep=shown)  # the map's rows are always fitted
            subset = fitted if len(fitted) < len(z) else None
            started = time.perf_counter()
            if len(z) >= TSNE_MIN_ROWS:
                t = tsne(z, cfg.tsne_perplexity, cfg.seed, rows=subset, n_iter=cfg.tsne_iterations)
            else:  # t-SNE needs neighbours: a table this small is mapped by its PCA coordinates (said in the report)
                t = pca2.copy()
            tsne_seconds = time.perf_counter() - started
            u = umap(z, seed=cfg.seed, rows=subset) if cfg.umap else None
            progress.advance("report", 1, "figures")

            geometry = image_geometry(dataset)
            space = LatentSpace(table, dataset, model, codes)
            shown_ids = [str(i) for i in codes["id"][shown]]
            payload = map_payload(
                codes["id"][shown],
                [
                    ("t-SNE", t[shown], ("t-SNE 1", "t-SNE 2")),
                    ("PCA", pca2[shown], ("PC 1", "PC 2")),
                    *([("UMAP", u[shown], ("UMAP 1", "UMAP 2"))] if u is not None else []),
                ],
                {
                    "label": codes["label"][shown],
                    "split": codes["split"][shown],
                    "recon_error": codes["recon_error"][shown],
                    **_factor_columns(table.path, shown_ids),
                },
                thumbnails(space.inputs(shown_ids), geometry) if geometry else domain_thumbnails(space, shown_ids),
                len(z),
            )
            extra_metrics: dict[str, float] = {}

            final = workspace.report_dir(run_id)
            with publish_dir(final, replace=True) as staging:
                coords = pa.table(
                    {
                        "id": pa.array(codes["id"].tolist(), pa.string()),
                        "split": pa.array(codes["split"].tolist(), pa.string()),
                        "label": pa.array(codes["label"], pa.int64(), from_pandas=True),  # NaN: no label
                        "pca_1": pa.array(pca2[:, 0], pa.float32()),
                        "pca_2": pa.array(pca2[:, 1], pa.float32()),
                        "tsne_1": pa.array(t[:, 0], pa.float32()),
                        "tsne_2": pa.array(t[:, 1], pa.float32()),
                        "tsne_fitted": pa.array(np.isin(np.arange(len(z)), fitted)),
                        **(
                            {"umap_1": pa.array(u[:, 0], pa.float32()), "umap_2": pa.array(u[:, 1], pa.float32())}
                            if u is not None
                            else {}
                        ),
                    }
                ).replace_schema_metadata({"latent.table_path": str(table.path), "latent.model_uri": model_uri})
                pq.write_table(coords, staging / COORDINATES, compression="zstd")

                sections = [latent_map_section(payload)]
                _scatter(staging / "pca.png", pca2, codes["label"], "PCA of z_mean", ("PC 1", "PC 2"))
                sections.append(png_section("pca", "PCA of z_mean, coloured by label", staging / "pca.png"))
                _scree(staging / "pca_scree.png", p.explained_variance_ratio)
                sections.append(png_section("pca-variance", "PCA explained variance", staging / "pca_scree.png"))
                if len(z) >= TSNE_MIN_ROWS:
                    _scatter(staging / "tsne.png", t, codes["label"], "t-SNE of z_mean", ("t-SNE 1", "t-SNE 2"))
                    sections.append(png_section("tsne", "t-SNE of z_mean, coloured by label", staging / "tsne.png"))
                else:
                    sections.append(
                        Section(
                            "tsne",
                            "t-SNE",
                            f"<p>Skipped: the table has {len(z)} rows and t-SNE needs at least {TSNE_MIN_ROWS}; "
                            "the map shows the PCA coordinates.</p>",
                        )
                    )
                if u is not None:
                    _scatter(staging / "umap.png", u, codes["label"], "UMAP of z_mean", ("UMAP 1", "UMAP 2"))
                    sections.append(png_section("umap", "UMAP of z_mean, coloured by label", staging / "umap.png"))
                kl = kl_per_dim(codes["z_mean"], codes["z_logvar"])
                _kl_bars(staging / "kl_per_dim.png", kl)
                sections.append(
                    png_section(
                        "kl", "Information per latent dimension (mean KL to the prior)", staging / "kl_per_dim.png"
                    )
                )
                extra_metrics["active_dims"] = float(np.sum(kl > ACTIVE_DIM_KL))

                if geometry:
                    sections += _generation_sections(space, cfg, kl, staging)
                modality_sections, modality_metrics = domain_sections(space, cfg, kl, staging)
                sections += modality_sections
                extra_metrics.update(modality_metrics)
                if cfg.disentanglement and factor_columns(table.path):
                    progress.advance("report", 0, "disentanglement")
                    scores = evaluate_latent_space(
                        table.path, model, dataset.path, seed=cfg.seed, budget=cfg.disentanglement_budget
                    )
                    sections.append(_disentanglement_section(scores))
                    extra_metrics.update({f"disentanglement_{k}": v for k, v in scores.items()})
                if cfg.probes:
                    progress.advance("report", 0, "probes")
                    probe = _probe_section(space, cfg)
                    if probe is not None:
                        sections.append(probe[0])
                        extra_metrics.update(probe[1])

                metrics = {
                    f"pca_explained_variance_ratio_{i + 1}": float(r) for i, r in enumerate(p.explained_variance_ratio)
                }
                metrics["tsne_seconds"] = tsne_seconds
                metrics["tsne_fitted_rows"] = float(len(fitted))
                metrics.update(extra_metrics)
                metrics["mean_recon_error"] = float(np.mean(codes["recon_error"]))
                facts = {
                    "latent table": str(table.path),
                    "rows": str(len(z)),
                    "latent dim": str(z.shape[1]),
                    "t-SNE": f"fitted on {len(fitted):,} rows"
                    + (
                        f", {len(z) - len(fitted):,} placed beside their nearest fitted rows"
                        if subset is not None
                        else ""
                    ),
                    "model": model_uri,
                    "dataset version": dataset.version,
                    "MLflow run": run_id,
                    "created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                    "latent version": latent.__version__,
                }
                overview = Section(
                    "overview",
                    "Overview",
                    table_html(facts) + "<h3>Metrics</h3>" + table_html({k: f"{v:.4g}" for k, v in metrics.items()}),
                )
                atomic_write_text(staging / REPORT_HTML, render_html("latent report", [overview, *sections]))
                atomic_write_text(staging / "metrics.json", json.dumps(metrics, indent=2))
            progress.advance("report", 1, "logging")
            run.log_metrics(metrics)
            run.log_artifacts(final, "report")
            run.set_tags({tag("report_dir"): str(final)})
            progress.advance("report", 1)
        finally:
            progress.finish("report")
        logger.info("report %s", final / REPORT_HTML)
        return ReportResult(str(final), str(final / REPORT_HTML), str(final / COORDINATES), run_id, metrics)
