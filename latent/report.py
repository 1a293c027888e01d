"""Report: PCA and t-SNE of the latent means, reconstructions, prior samples and an interpolation,
as PNGs, a coordinates table joinable on `id`, and one self-contained HTML page, all logged to MLflow."""

from __future__ import annotations

import base64
import html
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

import latent
from latent.analysis import interpolate, pca, sample_prior, tsne
from latent.config import ReportConfig, stable_hash
from latent.data.dataset import load_dataset_arrays, read_dataset_info
from latent.models.io import load_logged_model
from latent.progress import reporter
from latent.tables import load_latent_arrays, read_table_info
from latent.tracking import Tracking, latest_stage_run, stage_run, tag
from latent.workspace import Workspace, atomic_write_text, publish_dir

REPORT_HTML = "report.html"
COORDINATES = "coordinates.parquet"


@dataclass(frozen=True)
class ReportResult:
    report_dir: str
    html_path: str
    coordinates_path: str
    run_id: str
    metrics: dict[str, float]
    reused: bool = False


def _figure():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _scatter(path: Path, coords: np.ndarray, labels: np.ndarray, title: str, axes: tuple[str, str]) -> None:
    plt = _figure()
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


def _image_grid(path: Path, rows: list[np.ndarray], shape: tuple[int, int], title: str, row_titles: list[str]) -> None:
    plt = _figure()
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(0.8 * n_cols + 0.8, 0.85 * n_rows + 0.5), dpi=110, squeeze=False)
    for r, images in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(images):
                ax.imshow(np.clip(images[c], 0, 1).reshape(shape), cmap="gray_r", vmin=0, vmax=1)
            else:
                ax.axis("off")
        axes[r][0].set_ylabel(row_titles[r], rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _scree(path: Path, ratios: np.ndarray) -> None:
    plt = _figure()
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


def _html(title: str, facts: dict[str, str], figures: list[tuple[str, Path]], metrics: dict[str, float]) -> str:
    def img(p: Path) -> str:
        return "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode()

    fact_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts.items())
    metric_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{v:.4g}</td></tr>" for k, v in metrics.items())
    sections = "".join(
        f'<section><h2>{html.escape(caption)}</h2><img alt="{html.escape(caption)}" src="{img(p)}"></section>'
        for caption, p in figures
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin-bottom:1.5em}} th,td{{border:1px solid #ccc;padding:4px 8px;text-align:left}}
th{{background:#f4f4f4}} img{{max-width:100%;border:1px solid #eee}} section{{margin:1.5em 0}}
</style></head><body>
<h1>{html.escape(title)}</h1>
<table>{fact_rows}</table>
<h2>Metrics</h2><table>{metric_rows}</table>
{sections}
</body></html>
"""


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
            started = time.perf_counter()
            t = tsne(z, cfg.tsne_perplexity, cfg.seed)
            tsne_seconds = time.perf_counter() - started
            progress.advance("report", 1, "figures")

            final = workspace.report_dir(run_id)
            with publish_dir(final, replace=True) as staging:
                coords = pa.table(
                    {
                        "id": pa.array(codes["id"].tolist(), pa.string()),
                        "split": pa.array(codes["split"].tolist(), pa.string()),
                        "label": pa.array(codes["label"], pa.int64()),
                        "pca_1": pa.array(pca2[:, 0], pa.float32()),
                        "pca_2": pa.array(pca2[:, 1], pa.float32()),
                        "tsne_1": pa.array(t[:, 0], pa.float32()),
                        "tsne_2": pa.array(t[:, 1], pa.float32()),
                    }
                ).replace_schema_metadata({"latent.table_path": str(table.path), "latent.model_uri": model_uri})
                pq.write_table(coords, staging / COORDINATES, compression="zstd")

                figures: list[tuple[str, Path]] = []
                _scatter(staging / "pca.png", pca2, codes["label"], "PCA of z_mean", ("PC 1", "PC 2"))
                figures.append(("PCA of z_mean, coloured by label", staging / "pca.png"))
                _scree(staging / "pca_scree.png", p.explained_variance_ratio)
                figures.append(("PCA explained variance", staging / "pca_scree.png"))
                _scatter(staging / "tsne.png", t, codes["label"], "t-SNE of z_mean", ("t-SNE 1", "t-SNE 2"))
                figures.append(("t-SNE of z_mean, coloured by label", staging / "tsne.png"))

                shape = (dataset.shape.get("height", 0), dataset.shape.get("width", 0))
                is_image = dataset.shape.get("channels") == 1 and shape[0] * shape[1] == dataset.feature_dim
                if is_image:
                    ids, x_test, _ = load_dataset_arrays(dataset.path, ("test",))
                    if len(x_test) < 2:
                        ids, x_test, _ = load_dataset_arrays(dataset.path)
                    order = np.argsort(ids)
                    x_test = x_test[order][: cfg.n_reconstructions]
                    with torch.no_grad():
                        mean, _ = model.encode(torch.from_numpy(x_test))
                        recon = model.decode(mean).numpy()
                    _image_grid(
                        staging / "reconstructions.png",
                        [list(x_test), list(recon)],
                        shape,
                        "Test images and their reconstructions",
                        ["input", "recon"],
                    )
                    figures.append(
                        (
                            "Reconstructions (top: input, bottom: decoded posterior mean)",
                            staging / "reconstructions.png",
                        )
                    )
                    samples = sample_prior(model, cfg.n_samples, cfg.seed)
                    per_row = 16
                    _image_grid(
                        staging / "samples.png",
                        [list(samples[i : i + per_row]) for i in range(0, len(samples), per_row)],
                        shape,
                        "Samples from the prior N(0, I)",
                        [""] * ((len(samples) + per_row - 1) // per_row),
                    )
                    figures.append(("Samples decoded from the prior", staging / "samples.png"))
                    path = interpolate(mean[0].numpy(), mean[1].numpy(), cfg.interpolation_steps)
                    with torch.no_grad():
                        strip = model.decode(torch.from_numpy(path.astype(np.float32))).numpy()
                    _image_grid(
                        staging / "interpolation.png",
                        [[x_test[0], *strip, x_test[1]]],
                        shape,
                        f"Linear interpolation between test rows {ids[order][0]} and {ids[order][1]}",
                        ["path"],
                    )
                    figures.append(
                        ("Interpolation between two test images (ends: the inputs)", staging / "interpolation.png")
                    )

                metrics = {
                    f"pca_explained_variance_ratio_{i + 1}": float(r) for i, r in enumerate(p.explained_variance_ratio)
                }
                metrics["tsne_seconds"] = tsne_seconds
                metrics["mean_recon_error"] = float(np.mean(codes["recon_error"]))
                facts = {
                    "latent table": str(table.path),
                    "rows": str(len(z)),
                    "latent dim": str(z.shape[1]),
                    "model": model_uri,
                    "dataset version": dataset.version,
                    "MLflow run": run_id,
                    "created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                    "latent version": latent.__version__,
                }
                atomic_write_text(staging / REPORT_HTML, _html("latent report", facts, figures, metrics))
                atomic_write_text(staging / "metrics.json", json.dumps(metrics, indent=2))
            progress.advance("report", 1, "logging")
            run.log_metrics(metrics)
            run.log_artifacts(final, "report")
            run.set_tags({tag("report_dir"): str(final)})
            progress.advance("report", 1)
        finally:
            progress.finish("report")
        return ReportResult(str(final), str(final / REPORT_HTML), str(final / COORDINATES), run_id, metrics)
