"""Report: PCA and t-SNE of the latent means, an interactive latent map, reconstructions, prior samples and an
interpolation, as one self-contained HTML page (plus the PNGs and a coordinates table joinable on `id`), all
logged to MLflow.

The page is a list of `Section`s (anchor id, heading, HTML fragment) under a table of contents; adding a figure
is one line, e.g. `sections.append(png_section("traversals", "Latent traversals", staging / "traversals.png"))`.
Everything is inline (images as data URIs, plotly.js embedded once), so the page needs no network and works in
MLflow's artifact viewer, which shows HTML artifacts in an iframe sandboxed with `allow-scripts` only.
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


# ---- the page ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """One part of the report page: `id` is its anchor, `body` an HTML fragment built by this module (trusted:
    escape anything that comes from data). `needs_plotly` embeds plotly.js (once) in the page's head."""

    id: str
    title: str
    body: str
    needs_plotly: bool = False


def png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def img_html(path: Path, alt: str) -> str:
    """An <img> with the PNG at `path` embedded, so the page stays one file."""
    return f'<img alt="{html.escape(alt)}" src="{png_data_uri(Path(path).read_bytes())}">'


def png_section(section_id: str, title: str, path: Path, alt: str | None = None) -> Section:
    """A section showing one PNG figure."""
    return Section(section_id, title, img_html(path, alt or title))


def table_html(rows: dict[str, str]) -> str:
    return (
        "<table>"
        + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows.items())
        + "</table>"
    )


def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    # inside a <script> element, "</script" would end it early; "<\/" means the same to JavaScript
    return get_plotlyjs().replace("</script", "<\\/script")


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin-bottom:1.5em} th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f4f4f4} img{max-width:100%;border:1px solid #eee} section{margin:2em 0}
nav ol{columns:2;padding-left:1.5em} nav a{text-decoration:none}
.latent-map-controls{display:flex;gap:1.5em;align-items:center;margin-bottom:.5em;flex-wrap:wrap}
.latent-map-controls button{padding:3px 10px;border:1px solid #888;background:#fff;cursor:pointer}
.latent-map-controls button[aria-pressed=true]{background:#333;color:#fff}
.latent-map{display:flex;gap:1em;align-items:flex-start}
#latent-map-plot{flex:1;min-width:0;height:600px;border:1px solid #eee}
#latent-map-panel{width:250px;flex:none;font-size:.9em}
#latent-map-thumb{width:128px;height:auto;image-rendering:pixelated;border:1px solid #ccc;display:block}
#latent-map-id{font-family:ui-monospace,monospace;font-weight:bold;margin:.5em 0;word-break:break-all}
#latent-map-panel table{width:100%;table-layout:fixed;overflow-wrap:anywhere} #latent-map-panel th{width:60%}
.hint{color:#666}
"""


def render_html(title: str, sections: list[Section]) -> str:
    """The whole page: a title, a table of contents and the sections in order."""
    ids = [s.id for s in sections]
    if len(set(ids)) != len(ids):
        raise ValueError(f"report sections need distinct ids, got {ids}")
    toc = "".join(f'<li><a href="#{html.escape(s.id)}">{html.escape(s.title)}</a></li>' for s in sections)
    body = "\n".join(
        f'<section id="{html.escape(s.id)}"><h2>{html.escape(s.title)}</h2>\n{s.body}\n</section>' for s in sections
    )
    plotly = f'<script id="plotly-js">{_plotly_js()}</script>' if any(s.needs_plotly for s in sections) else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_STYLE}</style>
{plotly}
</head><body>
<h1>{html.escape(title)}</h1>
<nav><ol>{toc}</ol></nav>
{body}
</body></html>
"""


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


_MAP_SCRIPT = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("latent-map-data").textContent);
  var gd = document.getElementById("latent-map-plot");
  var select = document.getElementById("latent-map-color");
  var buttons = document.querySelectorAll("#latent-map-projection button");
  var thumb = document.getElementById("latent-map-thumb");
  var idBox = document.getElementById("latent-map-id");
  var details = document.getElementById("latent-map-details");
  var status = document.getElementById("latent-map-status");
  var palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2",
    "#c7c7c7", "#dbdb8d", "#9edae5", "#393b79", "#637939", "#8c6d31", "#843c39"];
  var projection = 0, colorBy = 0, pinned = null;
  // a document's start (text) or a SMILES (molecules) goes into the hover box too, wrapped, without markup
  var textColumn = data.columns.filter(function (c) { return c.kind === "text"; })[0];
  var hoverIds = !textColumn ? data.ids : data.ids.map(function (id, i) {
    var t = (textColumn.values[i] || "").replace(/</g, "\u2039").replace(/>/g, "\u203a");
    return id + "<br>" + (t.match(/.{1,60}(\s|$)|\S+/g) || []).join("<br>");
  });

  function valueOf(column, row) {
    if (column.kind === "text") return column.values[row] === null ? "" : column.values[row];
    if (column.kind === "categorical") return column.levels[column.codes[row]];
    var v = column.values[row];
    return v === null ? "missing" : String(v);
  }

  function show(row) {
    if (thumb && data.thumbnails) thumb.src = "data:image/png;base64," + data.thumbnails[row];
    idBox.textContent = data.ids[row];
    while (details.firstChild) details.removeChild(details.firstChild);
    data.columns.forEach(function (column) {
      var tr = details.insertRow(), th = document.createElement("th"), td = tr.insertCell();
      th.textContent = column.name;
      tr.insertBefore(th, td);
      td.textContent = valueOf(column, row);
    });
    idBox.dataset.row = String(row);
  }

  function pick(rows, values) {
    return rows.map(function (i) { return values[i]; });
  }

  function traces() {
    var p = data.projections[projection], column = data.columns[colorBy];
    var all = data.ids.map(function (_, i) { return i; });
    function trace(rows, name, marker, value) {
      return {type: "scatter", mode: "markers", name: name, x: pick(rows, p.x), y: pick(rows, p.y),
        customdata: rows, text: pick(rows, hoverIds), marker: marker,
        hovertemplate: "%{text}<br>" + column.name + ": " + value + "<extra></extra>"};
    }
    if (column.kind === "categorical") {
      var groups = column.levels.map(function () { return []; });
      column.codes.forEach(function (code, i) { groups[code].push(i); });
      return groups.map(function (rows, k) {
        var color = column.levels[k] === "missing" ? "#bbbbbb" : palette[k % palette.length];
        return trace(rows, column.levels[k], {size: 6, opacity: 0.8, color: color}, column.levels[k]);
      }).filter(function (t) { return t.x.length > 0; });
    }
    var present = all.filter(function (i) { return column.values[i] !== null; });
    var missing = all.filter(function (i) { return column.values[i] === null; });
    var out = [trace(present, column.name, {size: 6, opacity: 0.85, color: pick(present, column.values),
      colorscale: "Viridis", showscale: true, colorbar: {title: {text: column.name}}}, "%{marker.color:.4g}")];
    if (missing.length) out.push(trace(missing, "missing", {size: 6, opacity: 0.6, color: "#bbbbbb"}, "missing"));
    return out;
  }

  function draw() {
    var p = data.projections[projection], column = data.columns[colorBy];
    var layout = {
      uirevision: p.name, hovermode: "closest", dragmode: "pan", showlegend: column.kind === "categorical",
      legend: {title: {text: column.name}}, margin: {l: 55, r: 10, t: 36, b: 50},
      xaxis: {title: {text: p.axes[0]}, zeroline: false}, yaxis: {title: {text: p.axes[1]}, zeroline: false}
    };
    var config = {responsive: true, scrollZoom: true, displaylogo: false,
      modeBarButtonsToRemove: ["toImage", "sendChartToCloud", "select2d", "lasso2d"]};
    buttons.forEach(function (b, i) { b.setAttribute("aria-pressed", String(i === projection)); });
    return Plotly.react(gd, traces(), layout, config);
  }

  data.columns.forEach(function (column, i) {
    if (column.kind !== "text") select.add(new Option(column.name, String(i)));
  });
  select.addEventListener("change", function () { colorBy = Number(select.value); draw(); });
  buttons.forEach(function (b, i) { b.addEventListener("click", function () { projection = i; draw(); }); });
  show(0);
  draw().then(function () {
    gd.on("plotly_hover", function (e) { show(e.points[0].customdata); });
    gd.on("plotly_click", function (e) { pinned = e.points[0].customdata; show(pinned); });
    gd.on("plotly_unhover", function () { if (pinned !== null) show(pinned); });
    gd.dataset.ready = "true";
  });
  status.textContent = data.ids.length === data.total ? "all " + data.total + " rows" :
    data.ids.length + " of " + data.total + " rows (a seeded sample; coordinates.parquet has every row)";
})();
"""


def latent_map_section(payload: dict) -> Section:
    """The interactive map: t-SNE / PCA toggle, colour by any column, pan and zoom, and a side panel showing
    the hovered (or clicked) point's thumbnail, id and values."""
    projections = "".join(
        f'<button type="button" aria-pressed="{str(i == 0).lower()}">{html.escape(p["name"])}</button>'
        for i, p in enumerate(payload["projections"])
    )
    thumb = (
        '<img id="latent-map-thumb" alt="the selected row">' if payload["thumbnails"] else ""
    )  # its src is set by the script before the page finishes loading
    # "<" escaped: the JSON (ids come from file names) can never end its <script> element
    data = json.dumps(payload, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
    body = f"""<div class="latent-map-controls">
<span id="latent-map-projection">{projections}</span>
<label>colour by <select id="latent-map-color"></select></label>
<span class="hint" id="latent-map-status"></span>
</div>
<div class="latent-map">
<div id="latent-map-plot"></div>
<aside id="latent-map-panel">{thumb}<div id="latent-map-id"></div><table id="latent-map-details"></table>
<p class="hint">Hover a point to see it here; click to keep it. Drag to pan, scroll to zoom, double-click to reset.</p>
</aside>
</div>
<script type="application/json" id="latent-map-data">{data}</script>
<script>{_MAP_SCRIPT}</script>"""
    return Section("latent-map", "Latent map (interactive)", body, needs_plotly=True)


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
