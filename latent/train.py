"""Train: fit a registered model on a dataset table, logging every epoch and the model to MLflow."""

from __future__ import annotations

import io
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from latent.config import ModelConfig, TrainConfig, stable_hash
from latent.data.dataset import load_dataset_arrays, read_dataset_info
from latent.errors import DataError, TrainingError
from latent.models import LatentMeanEncoder, create_model
from latent.models.io import save_model_files
from latent.progress import reporter
from latent.tracking import Tracking, latest_stage_run, stage_run, tag
from latent.workspace import Workspace, atomic_write_bytes

ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. (2016): Var_x E[z_i | x] above this counts as active


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    model_uri: str
    model_version: str
    registered_version: str | None
    checkpoint_dir: str
    best_val_loss: float
    epochs: int
    samples_per_second: float
    reused: bool = False


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"train.device: {name!r} was asked for, but no CUDA device is available")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _save_checkpoint(path: Path, payload: dict) -> None:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, batch_size: int) -> dict[str, float]:
    """Validation metrics with the posterior mean (deterministic), plus active units."""
    model.eval()
    totals = {"loss": 0.0, "recon": 0.0, "kl": 0.0}
    means = []
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        out = model(batch)
        n = len(batch)
        totals["loss"] += float(out.loss) * n
        totals["recon"] += float(out.recon_loss) * n
        totals["kl"] += float(out.kl) * n
        means.append(out.z_mean)
    metrics = {k: v / max(len(x), 1) for k, v in totals.items()}
    mu = torch.cat(means)
    metrics["active_units"] = float((mu.var(0, unbiased=False) > ACTIVE_UNIT_THRESHOLD).sum()) if len(mu) > 1 else 0.0
    return metrics


def train_key(dataset_version: str, model_cfg: ModelConfig, train_cfg: TrainConfig) -> str:
    """What a trained model depends on: the dataset version and the model and training configs."""
    return stable_hash(
        {
            "dataset": dataset_version,
            "model": model_cfg.model_dump(mode="json"),
            "train": train_cfg.model_dump(mode="json"),
        }
    )


def _cached_training(tracking: Tracking, dataset_version: str, key: str) -> TrainResult | None:
    run = latest_stage_run(tracking, "train", dataset_version=dataset_version, train_key=key)
    if run is None or tag("model_uri") not in run.data.tags:
        return None
    tags, metrics = run.data.tags, run.data.metrics
    return TrainResult(
        run_id=run.info.run_id,
        model_uri=tags[tag("model_uri")],
        model_version=tags.get(tag("model_version"), run.info.run_id),
        registered_version=tags.get(tag("registered_version")) or None,
        checkpoint_dir=tags.get(tag("checkpoint_dir"), ""),
        best_val_loss=float(metrics.get("best_val_loss", float("nan"))),
        epochs=int(run.data.params.get("train.epochs", 0)),
        samples_per_second=float(metrics.get("samples_per_second", float("nan"))),
        reused=True,
    )


def log_encoder_model(model: torch.nn.Module, example: np.ndarray, model_dir: Path, registered_model: str | None):
    """Log the encoder (x -> z_mean) with `mlflow.pytorch.log_model` in the pt2 (torch.export) format: no pickled
    class, a signature and an input example; the full model's config and weights travel as extra files."""
    import mlflow
    from mlflow.models import infer_signature

    encoder = LatentMeanEncoder(model).eval()
    with torch.no_grad():
        example_out = encoder(torch.from_numpy(example)).numpy()
    return mlflow.pytorch.log_model(
        encoder,
        name="model",
        signature=infer_signature(example, example_out),
        input_example=example,
        serialization_format="pt2",
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}"],
        extra_files=[str(model_dir / "model_config.json"), str(model_dir / "weights.pt")],
        registered_model_name=registered_model,
    )


def train(
    dataset_path: str | Path,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    workspace: Workspace,
    tracking: Tracking | None,
    registered_model: str | None = None,
    reuse: bool = False,
) -> TrainResult:
    """Train, checkpoint every epoch (atomically), log per-epoch metrics, and log the model to MLflow.

    With reuse, a finished training of the same model and training config on the same dataset version is
    returned instead of training again.
    """
    info = read_dataset_info(dataset_path)
    key = train_key(info.version, model_cfg, train_cfg)
    if reuse and tracking is not None:
        cached = _cached_training(tracking, info.version, key)
        if cached is not None:
            return cached
    seed_everything(train_cfg.seed)
    device = resolve_device(train_cfg.device)
    _, x_train_np, _ = load_dataset_arrays(info.path, ("train",))
    _, x_val_np, _ = load_dataset_arrays(info.path, ("val",))
    if len(x_train_np) == 0:
        raise DataError(f"{info.path}: the train split is empty")
    if len(x_val_np) == 0:  # tiny datasets: validate on train rather than fail
        x_val_np = x_train_np
    x_train = torch.tensor(x_train_np, device=device)
    x_val = torch.tensor(x_val_np, device=device)

    model = create_model(
        model_cfg.name,
        input_dim=info.feature_dim,
        latent_dim=model_cfg.latent_dim,
        hidden_dims=tuple(model_cfg.hidden_dims),
        likelihood=model_cfg.likelihood,
        beta=model_cfg.beta,
    ).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=train_cfg.learning_rate, weight_decay=train_cfg.weight_decay)
    generator = torch.Generator().manual_seed(train_cfg.seed)

    stage_tags = {tag("dataset_version"): info.version, tag("model_name"): model_cfg.name, tag("train_key"): key}
    with stage_run(tracking, "train", stage_tags) as run:
        run_id = run.run_id
        ckpt_dir = workspace.model_dir(run_id)
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        run.log_params(
            {
                **{f"model.{k}": v for k, v in model_cfg.model_dump().items()},
                **{f"train.{k}": v for k, v in train_cfg.model_dump().items()},
                "dataset_version": info.version,
                "dataset_content_hash": info.content_hash,
                "n_train": len(x_train),
                "n_val": len(x_val),
                "device": str(device),
                "n_parameters": sum(p.numel() for p in model.parameters()),
            }
        )
        progress = reporter()
        progress.start("train", f"train {model_cfg.name}", train_cfg.epochs)
        best_val, best_state = math.inf, None
        started = time.perf_counter()
        seen = 0
        try:
            for epoch in range(1, train_cfg.epochs + 1):
                model.train()
                order = torch.randperm(len(x_train), generator=generator).to(device)
                sums = {k: torch.zeros((), device=device) for k in ("loss", "recon", "kl")}
                for start in range(0, len(order), train_cfg.batch_size):
                    batch = x_train[order[start : start + train_cfg.batch_size]]
                    out = model(batch)
                    if not torch.isfinite(out.loss.detach()):
                        raise TrainingError(
                            f"non-finite loss ({out.loss.item()}) at epoch {epoch}; training stopped, the last good "
                            f"checkpoint is kept in {ckpt_dir}"
                        )
                    optimizer.zero_grad(set_to_none=True)
                    out.loss.backward()
                    optimizer.step()
                    n = len(batch)
                    seen += n
                    sums["loss"] += out.loss.detach() * n
                    sums["recon"] += out.recon_loss.detach() * n
                    sums["kl"] += out.kl.detach() * n
                train_metrics = {f"train_{k}": float(v) / len(x_train) for k, v in sums.items()}
                val = evaluate(model, x_val, max(train_cfg.batch_size, 1024))
                metrics = {**train_metrics, **{f"val_{k}": v for k, v in val.items()}}
                run.log_metrics(metrics, step=epoch)
                _save_checkpoint(
                    ckpt_dir / "last.pt",
                    {
                        "epoch": epoch,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "best_val_loss": min(best_val, val["loss"]),
                    },
                )
                if val["loss"] < best_val:
                    best_val = val["loss"]
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    _save_checkpoint(ckpt_dir / "best.pt", {"epoch": epoch, "model": best_state})
                progress.advance("train", 1, f"epoch {epoch} val_loss {val['loss']:.3f}")
        finally:
            progress.finish("train")
        elapsed = time.perf_counter() - started
        samples_per_second = seen / elapsed if elapsed > 0 else float("nan")

        assert best_state is not None
        model.load_state_dict(best_state)
        model = model.cpu().eval()
        save_model_files(model, ckpt_dir)
        run.log_metrics({"best_val_loss": best_val, "samples_per_second": samples_per_second})
        model_uri, model_version, registered_version = str(ckpt_dir), run_id, None
        if run.enabled:
            model_info = log_encoder_model(model, x_val_np[:5], ckpt_dir, registered_model)
            model_uri, model_version = model_info.model_uri, model_info.model_id or run_id
            registered_version = getattr(model_info, "registered_model_version", None)
        run.set_tags(
            {
                tag("model_uri"): model_uri,
                tag("model_version"): model_version,
                tag("checkpoint_dir"): str(ckpt_dir),
                tag("registered_version"): registered_version or "",
            }
        )
        return TrainResult(
            run_id=run_id,
            model_uri=model_uri,
            model_version=model_version,
            registered_version=str(registered_version) if registered_version is not None else None,
            checkpoint_dir=str(ckpt_dir),
            best_val_loss=best_val,
            epochs=train_cfg.epochs,
            samples_per_second=samples_per_second,
        )
