"""Transfer learning and domain adaptation in latent space.

Three ways to get a latent space for a target domain, under the same compute budget:
  frozen  - the source model's encoder as it is;
  adapted - the source model fine-tuned on the target's unlabeled rows for `adapt_epochs` (optionally with the
            first encoder layers frozen);
  scratch - the same architecture trained on the target alone for `adapt_epochs`.
Each is judged by linear-probe accuracy on the target against the number of labels, and the domain shift between
source and target latents by MMD (RBF kernel, median-distance bandwidth) and the Fréchet distance of Gaussian fits.
The metrics are pure functions of arrays; the rest reads and writes tables, as every stage does.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latent.analysis.drift import mmd_rbf
from latent.analysis.probes import probe_accuracy
from latent.config import ShiftConfig
from latent.data.dataset import (
    DatasetInfo,
    is_dataset_table,
    load_dataset_arrays,
    read_dataset_info,
    write_dataset_table,
)
from latent.errors import DataError
from latent.tables import load_latent_arrays
from latent.workspace import Workspace, atomic_write_text, publish_dir

# ---- metrics: pure functions of arrays --------------------------------------------------------------------


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussian fits of a and b: |μa − μb|² + Tr(Σa + Σb − 2(ΣaΣb)^½)."""
    from scipy import linalg

    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    mu = a.mean(0) - b.mean(0)
    ca, cb = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root = linalg.sqrtm(ca @ cb)
    root = root.real if np.iscomplexobj(root) else root
    return float(mu @ mu + np.trace(ca + cb - 2 * root))


# ---- the target domain ---------------------------------------------------------------------------------------


def shift_images(x: np.ndarray, shape: tuple[int, int, int], shift: ShiftConfig) -> np.ndarray:
    """The documented shifts of images in [0, 1]: invert (1 − x), noise (+ N(0, σ²), clipped), rotate (degrees)."""
    if shift.kind == "invert":
        return (1.0 - x).astype(np.float32)
    if shift.kind == "noise":
        rng = np.random.default_rng(shift.seed)
        return np.clip(x + rng.normal(0, shift.noise_std, x.shape), 0, 1).astype(np.float32)
    from scipy.ndimage import rotate

    c, h, w = shape
    images = x.reshape(-1, c, h, w)
    turned = rotate(images, shift.rotate_degrees, axes=(2, 3), reshape=False, order=1, mode="constant")
    return np.clip(turned, 0, 1).reshape(len(x), -1).astype(np.float32)


def make_shifted_dataset(source: str | Path, shift: ShiftConfig, workspace: Workspace) -> DatasetInfo:
    """The source dataset's rows, shifted, as a new dataset table (same ids with a suffix, same labels)."""
    info = read_dataset_info(source)
    shape = (info.shape.get("channels", 0), info.shape.get("height", 0), info.shape.get("width", 0))
    if shape[0] * shape[1] * shape[2] != info.feature_dim:
        raise DataError(f"{info.path}: shifts apply to images, and this dataset is not images")
    ids, x, labels = load_dataset_arrays(info.path)
    shifted = shift_images(x, shape, shift)
    name = f"{info.version}-{shift.kind}"
    return write_dataset_table(
        workspace, name, shifted, labels=labels, ids=[f"{i}~{shift.kind}" for i in ids], shard_rows=65536, shape=shape
    )


def check_compatible(model_input_dim: int, model_uri: str, target: DatasetInfo, model_shape: tuple | None) -> None:
    if model_input_dim != target.feature_dim:
        target_shape = (target.shape.get("channels"), target.shape.get("height"), target.shape.get("width"))
        raise DataError(
            f"source model {model_uri} takes inputs of shape {model_shape or (model_input_dim,)} "
            f"({model_input_dim} values) but target dataset {target.path} has shape {target_shape} "
            f"({target.feature_dim} values)"
        )


# ---- evaluation and the report section ---------------------------------------------------------------------


@dataclass(frozen=True)
class TransferResult:
    report_dir: str
    html_path: str
    metrics: dict[str, float]
    accuracy: dict[str, dict[str, float]]


def _split(codes: dict[str, np.ndarray], split: str) -> tuple[np.ndarray, np.ndarray]:
    keep = codes["split"] == split
    return codes["z_mean"][keep], codes["label"][keep]


def evaluate_transfer(
    tables: dict[str, str],
    source_tables: dict[str, str],
    target_dataset: str,
    budgets: list[int],
    repeats: int,
    seed: int,
    out_dir: Path,
) -> TransferResult:
    """Probe accuracy vs labels for each approach's target table, raw-input probes for reference, and the source
    vs target shift (MMD, Fréchet) before (frozen source model) and after (adapted model) adaptation."""
    budget_list: list[int | None] = [*sorted(budgets), None]
    accuracy: dict[str, dict[str, float]] = {}
    for approach, path in tables.items():
        codes = load_latent_arrays(path)
        z_tr, y_tr = _split(codes, "train")
        z_te, y_te = _split(codes, "test")
        accuracy[approach] = probe_accuracy(z_tr, y_tr, z_te, y_te, budget_list, repeats, seed)
    _, x_tr, y_tr = load_dataset_arrays(target_dataset, ("train",))
    _, x_te, y_te = load_dataset_arrays(target_dataset, ("test",))
    accuracy["raw inputs"] = probe_accuracy(x_tr, y_tr, x_te, y_te, budget_list, repeats, seed)

    metrics: dict[str, float] = {}
    for approach, scores in accuracy.items():
        for budget, value in scores.items():
            metrics[f"accuracy_{approach.replace(' ', '_')}_{budget}"] = value
    for when, approach in (("before", "frozen"), ("after", "adapted")):
        src = load_latent_arrays(source_tables[approach])["z_mean"]
        tgt = load_latent_arrays(tables[approach])["z_mean"]
        metrics[f"mmd_{when}"] = mmd_rbf(src, tgt, seed=seed)
        metrics[f"frechet_{when}"] = frechet_distance(src, tgt)

    with publish_dir(out_dir, replace=True) as staging:
        _plot(accuracy, staging / "transfer_accuracy.png")
        (staging / "transfer.json").write_text(json.dumps({"accuracy": accuracy, "metrics": metrics}, indent=2))
        atomic_write_text(staging / "transfer.html", _html(accuracy, metrics, staging / "transfer_accuracy.png"))
    return TransferResult(str(out_dir), str(out_dir / "transfer.html"), metrics, accuracy)


def _plot(accuracy: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for approach, scores in accuracy.items():
        keys = list(scores)
        ax.plot(
            range(len(keys)),
            [scores[k] for k in keys],
            marker="o",
            label=approach,
            linestyle="--" if approach == "raw inputs" else "-",
        )
    ax.set_xticks(range(len(keys)), keys)
    ax.set_xlabel("target labels used by the probe")
    ax.set_ylabel("probe accuracy on the target test split")
    ax.set_ylim(0, 1)
    ax.legend()
    ax.set_title("Transfer: accuracy vs labels")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _html(accuracy: dict[str, dict[str, float]], metrics: dict[str, float], plot: Path) -> str:
    budgets = list(next(iter(accuracy.values())))
    head = "".join(f"<th>{html.escape(b)}</th>" for b in budgets)
    rows = "".join(
        f"<tr><th>{html.escape(a)}</th>" + "".join(f"<td>{s[b]:.3f}</td>" for b in budgets) + "</tr>"
        for a, s in accuracy.items()
    )
    shift = "".join(
        f"<tr><th>{w}</th><td>{metrics[f'mmd_{w}']:.4f}</td><td>{metrics[f'frechet_{w}']:.3f}</td></tr>"
        for w in ("before", "after")
    )
    image = base64.b64encode(plot.read_bytes()).decode()
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>latent transfer report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto}}table{{border-collapse:collapse}}
th,td{{border:1px solid #ccc;padding:4px 8px}}img{{max-width:100%}}</style></head><body>
<h1>Transfer learning</h1>
<h2>Probe accuracy on the target vs labels</h2><table><tr><th>approach</th>{head}</tr>{rows}</table>
<img alt="accuracy vs labels" src="data:image/png;base64,{image}">
<h2>Domain shift between source and target latents</h2>
<table><tr><th>adaptation</th><th>MMD² (RBF, median bandwidth)</th><th>Fréchet distance</th></tr>{shift}</table>
</body></html>
"""


# ---- finding the source ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransferSource:
    model_uri: str
    model_version: str
    run_id: str
    dataset_path: str


def resolve_source(source_model: str, tracking, workspace: Workspace) -> TransferSource:
    """The source model's URI, version (model id), training run and training dataset (which must be in this
    workspace: the shift is measured against it). source_model: a model URI or `name@alias`."""
    import mlflow

    from latent.tracking import tag

    uri = source_model if "://" in source_model or source_model.startswith("models:/") else f"models:/{source_model}"
    client = mlflow.MlflowClient(tracking.uri)
    try:
        ref = uri.removeprefix("models:/")
        if ref.startswith("m-"):
            logged = client.get_logged_model(ref)
            run_id, model_version = logged.source_run_id, logged.model_id
        else:
            name, sep, alias = ref.partition("@")
            if sep:
                mv = client.get_model_version_by_alias(name, alias)
            else:
                name, _, number = ref.partition("/")
                mv = client.get_model_version(name, number)
            run_id, model_version = mv.run_id, getattr(mv, "model_id", None) or mv.run_id
        dataset_version = client.get_run(run_id).data.tags[tag("dataset_version")]
    except (mlflow.exceptions.MlflowException, KeyError) as exc:
        first = " ".join(str(exc).split())[:300]
        raise DataError(f"transfer.source_model: cannot resolve {source_model!r} ({first})") from None
    dataset = workspace.dataset_dir(dataset_version)
    if not is_dataset_table(dataset):
        raise DataError(f"transfer.source_model: its training dataset {dataset} is not in this workspace")
    return TransferSource(uri, model_version, run_id, str(dataset))


def source_model_config(model_uri: str, tracking_uri: str | None):
    """The pipeline ModelConfig that rebuilds the source model's architecture (for adapted and scratch models)."""
    import dataclasses

    from latent.config import ModelConfig
    from latent.models.io import load_logged_model

    model = load_logged_model(model_uri, tracking_uri)
    spec = dataclasses.asdict(model.config)
    shared = {"input_dim", "input_shape", "latent_dim", "hidden_dims", "likelihood", "beta"}
    params = {k: list(v) if isinstance(v, tuple) else v for k, v in spec.items() if k not in shared}
    return model, ModelConfig(
        name=model.registry_name,
        latent_dim=spec["latent_dim"],
        hidden_dims=list(spec["hidden_dims"]),
        likelihood=spec["likelihood"],
        beta=float(spec["beta"]),
        params=params,
    )
