"""Train: fit a registered model on a dataset table, logging every epoch and the model to MLflow.

AdamW with a constant, cosine or step schedule; KL warm-up and free bits; gradient clipping; bf16 autocast on CUDA;
early stopping on the validation loss. A checkpoint after every epoch holds everything needed to continue exactly
(weights, optimizer and scheduler states, RNG states, counters), written atomically. A non-finite loss stops
training at once: the run ends FAILED with the reason, and the last good checkpoint is kept.

Validation loss is the negative ELBO (reconstruction + KL) with the posterior mean, the same quantity for every
model in the family, so early stopping and the champion alias compare like with like.
"""

from __future__ import annotations

import contextlib
import io
import math
import random
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latent.config import ModelConfig, TrainConfig, stable_hash
from latent.data.dataset import DatasetInfo, load_dataset_arrays, read_dataset_info
from latent.errors import ConfigError, DataError, TrainingError
from latent.models import BaseVAE, LatentMeanEncoder, create_model, model_entry
from latent.models.io import save_model_files
from latent.progress import reporter
from latent.tracking import (
    Tracking,
    latest_stage_run,
    log_table_input,
    promote_if_better,
    stage_run,
    tag,
    unfinished_stage_run,
)
from latent.workspace import Workspace, atomic_write_bytes

ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. (2016): Var_x E[z_i | x] above this counts as active
DIVERSITY_WARNING = 0.5  # prior samples spread less than half as much as the data: likely mode collapse


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
    resumed_from_epoch: int = 0
    champion: bool = False


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


def build_model(model_cfg: ModelConfig, info: DatasetInfo) -> BaseVAE:
    """The configured model, sized for the dataset (input width; image shape for convolutional models)."""
    kwargs: dict[str, Any] = {
        "input_dim": info.feature_dim,
        "latent_dim": model_cfg.latent_dim,
        "hidden_dims": tuple(model_cfg.hidden_dims),
        "likelihood": model_cfg.likelihood,
        "beta": model_cfg.beta,
        **model_cfg.params,
    }
    if "input_shape" in {f.name for f in fields(model_entry(model_cfg.name).config_cls)}:
        shape = (info.shape.get("channels", 0), info.shape.get("height", 0), info.shape.get("width", 0))
        if shape[0] * shape[1] * shape[2] != info.feature_dim:
            raise ConfigError(f"model.name: {model_cfg.name} needs image rows, but dataset {info.path} is not images")
        kwargs["input_shape"] = shape
    try:
        return create_model(model_cfg.name, **kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"model: {exc}") from None


def _save_checkpoint(path: Path, payload: dict) -> None:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _rng_state(generator: torch.Generator) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "shuffle": generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: dict[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["shuffle"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _schedulers(optimizers: list[torch.optim.Optimizer], cfg: TrainConfig) -> list[Any]:
    if cfg.schedule == "cosine":
        return [torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=cfg.epochs) for o in optimizers]
    if cfg.schedule == "step":
        return [torch.optim.lr_scheduler.StepLR(o, step_size=cfg.step_epochs, gamma=cfg.step_gamma) for o in optimizers]
    return []


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager | None:
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return None


@torch.no_grad()
def evaluate(model: BaseVAE, x: torch.Tensor, batch_size: int) -> dict[str, float]:
    """Validation with the posterior mean: negative ELBO as `loss`, its terms, KL per dimension, active units."""
    model.eval()
    totals = {"recon": 0.0, "kl": 0.0}
    kl_dims = torch.zeros(model.config.latent_dim, device=x.device)
    means = []
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        out = model(batch)
        n = len(batch)
        totals["recon"] += float(out.recon_loss) * n
        totals["kl"] += float(out.kl) * n
        kl_dims += out.kl_per_dim.float() * n
        means.append(out.z_mean.float())
    n = max(len(x), 1)
    metrics = {k: v / n for k, v in totals.items()}
    metrics["loss"] = metrics["recon"] + metrics["kl"]
    mu = torch.cat(means)
    metrics["active_units"] = float((mu.var(0, unbiased=False) > ACTIVE_UNIT_THRESHOLD).sum()) if len(mu) > 1 else 0.0
    for i, v in enumerate((kl_dims / n).tolist()):
        metrics[f"kl_dim_{i}"] = v
    return metrics


@torch.no_grad()
def sample_diversity(model: BaseVAE, x: torch.Tensor, n: int = 256, seed: int = 0) -> float:
    """Mean pairwise distance of decoded prior samples over that of data rows: near 0 means mode collapse."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(n, model.config.latent_dim, generator=generator).to(x.device)
    samples = model.decode(z).float()
    rows = x[torch.randperm(len(x), generator=generator)[:n].to(x.device)].float()
    data_spread = torch.pdist(rows).mean()
    return float(torch.pdist(samples).mean() / data_spread) if data_spread > 0 else float("nan")


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


def init_from(model: BaseVAE, model_uri: str, tracking_uri: str | None, freeze_encoder_layers: int = 0) -> None:
    """Copy a trained model's weights into model (same architecture required); freeze the first encoder layers."""
    from latent.models.io import load_logged_model

    source = load_logged_model(model_uri, tracking_uri)
    if source.registry_name != model.registry_name or source.config != model.config:
        raise ConfigError(
            f"cannot fine-tune from {model_uri}: it is a {source.registry_name} with {source.config}, "
            f"the configured model is a {model.registry_name} with {model.config}"
        )
    model.load_state_dict(source.state_dict())
    layers = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Linear | torch.nn.Conv2d)]
    if freeze_encoder_layers > len(layers):
        raise ConfigError(f"freeze_encoder_layers={freeze_encoder_layers}, but the encoder has {len(layers)} layers")
    for layer in layers[:freeze_encoder_layers]:
        for p in layer.parameters():
            p.requires_grad_(False)


def train(
    dataset_path: str | Path,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    workspace: Workspace,
    tracking: Tracking | None,
    registered_model: str | None = None,
    reuse: bool = False,
    resume: str = "auto",
    champion_alias: str | None = "champion",
    init_model_uri: str | None = None,
    freeze_encoder_layers: int = 0,
    run_name: str = "train",
) -> TrainResult:
    """Train, checkpoint every epoch, log per-epoch metrics, log and register the model.

    init_model_uri: start from that model's weights (fine-tuning; the architecture must match), optionally with
    the first `freeze_encoder_layers` layers of the encoder frozen.

    reuse: return a finished training of the same model and training config on the same dataset version.
    resume: "auto" continues an interrupted training of the same key from its last checkpoint if there is one;
    "require" insists on it; "never" starts afresh.
    """
    info = read_dataset_info(dataset_path)
    key = train_key(info.version, model_cfg, train_cfg)
    if init_model_uri is not None:
        key = stable_hash({"key": key, "init": init_model_uri, "freeze": freeze_encoder_layers})
    if reuse and tracking is not None:
        cached = _cached_training(tracking, info.version, key)
        if cached is not None:
            return cached
    previous = None
    if resume != "never" and tracking is not None:
        previous = unfinished_stage_run(tracking, "train", dataset_version=info.version, train_key=key)
        if previous is not None and not (workspace.model_dir(previous.info.run_id) / "last.pt").is_file():
            previous = None
    if resume == "require" and previous is None:
        raise TrainingError(f"nothing to resume: no interrupted training of this config on dataset {info.version}")

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

    model = build_model(model_cfg, info)
    if init_model_uri is not None:
        init_from(model, init_model_uri, tracking.uri if tracking else None, freeze_encoder_layers)
    model = model.to(device)
    model.control.free_bits = train_cfg.free_bits
    model.control.dataset_size = len(x_train)
    optimizers = model.configure_optimizers(train_cfg.learning_rate, train_cfg.weight_decay)
    schedulers = _schedulers(optimizers, train_cfg)
    generator = torch.Generator().manual_seed(train_cfg.seed)
    autocast = _autocast(device, train_cfg.precision)
    start_epoch, best_val, best_state, stale = 0, math.inf, None, 0

    if previous is not None:
        ckpt_dir = workspace.model_dir(previous.info.run_id)
        state = torch.load(ckpt_dir / "last.pt", map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        for opt, s in zip(optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(s)
        for sched, s in zip(schedulers, state["schedulers"], strict=True):
            sched.load_state_dict(s)
        start_epoch, best_val, stale = state["epoch"], state["best_val_loss"], state["stale_epochs"]
        _restore_rng(state["rng"], generator)
        if (ckpt_dir / "best.pt").is_file():
            best_state = torch.load(ckpt_dir / "best.pt", map_location=device, weights_only=True)["model"]

    stage_tags = {tag("dataset_version"): info.version, tag("model_name"): model_cfg.name, tag("train_key"): key}
    if init_model_uri is not None:
        stage_tags.update({tag("init_model_uri"): init_model_uri, tag("frozen_encoder_layers"): freeze_encoder_layers})
    with stage_run(
        tracking, "train", stage_tags, run_id=previous.info.run_id if previous else None, run_name=run_name
    ) as run:
        run_id = run.run_id
        log_table_input(run, info.path, tracking.dataset_name if tracking else None, info.version, "training")
        ckpt_dir = workspace.model_dir(run_id)
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        if previous is None:
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
        else:
            run.set_tags({tag("resumed_from_epoch"): start_epoch})
        progress = reporter()
        progress.start("train", f"train {model_cfg.name}", train_cfg.epochs)
        progress.advance("train", start_epoch)
        started, seen = time.perf_counter(), 0
        steps_per_epoch = math.ceil(len(x_train) / train_cfg.batch_size)
        val: dict[str, float] = {}
        try:
            for epoch in range(start_epoch + 1, train_cfg.epochs + 1):
                model.train()
                warmup = train_cfg.kl_warmup_epochs
                model.control.kl_scale = min(1.0, epoch / warmup) if warmup else 1.0
                order = torch.randperm(len(x_train), generator=generator).to(device)
                names: list[str] = []
                total: torch.Tensor | None = None
                for step, begin in enumerate(range(0, len(order), train_cfg.batch_size)):
                    model.control.progress = ((epoch - 1) + step / steps_per_epoch) / train_cfg.epochs
                    batch = x_train[order[begin : begin + train_cfg.batch_size]]
                    out = model.train_step(batch, optimizers, train_cfg.grad_clip_norm, autocast)
                    if not out.finite:
                        raise TrainingError(
                            f"non-finite loss ({out.loss.item()}) at epoch {epoch}, step {step + 1}; training "
                            f"stopped, the last good checkpoint (epoch {epoch - 1}) is kept in {ckpt_dir}"
                        )
                    n = len(batch)
                    seen += n
                    if total is None:
                        names = ["loss", "recon", "kl", *out.terms]
                        total = torch.zeros(len(names), device=device)
                    # one fused op per step rather than one per term: cheap enough to keep every step's numbers
                    total += torch.stack([out.loss, out.recon_loss, out.kl, *out.terms.values()]).detach().float() * n
                for sched in schedulers:
                    sched.step()
                val = evaluate(model, x_val, max(train_cfg.batch_size, 1024))
                sums = dict(zip(names, (total.tolist() if total is not None else []), strict=True))
                metrics = {f"train_{k}": v / len(x_train) for k, v in sums.items()}
                metrics.update({f"val_{k}": v for k, v in val.items()})
                metrics["kl_weight"] = model.control.kl_scale
                metrics["learning_rate"] = optimizers[0].param_groups[0]["lr"]
                if getattr(model, "adversarial", False):
                    metrics["sample_diversity"] = sample_diversity(model, x_val)
                run.log_metrics(metrics, step=epoch)
                improved = val["loss"] < best_val
                if improved:
                    best_val, stale = val["loss"], 0
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    _save_checkpoint(ckpt_dir / "best.pt", {"epoch": epoch, "model": best_state})
                else:
                    stale += 1
                _save_checkpoint(
                    ckpt_dir / "last.pt",
                    {
                        "epoch": epoch,
                        "model": model.state_dict(),
                        "optimizers": [o.state_dict() for o in optimizers],
                        "schedulers": [s.state_dict() for s in schedulers],
                        "best_val_loss": best_val,
                        "stale_epochs": stale,
                        "rng": _rng_state(generator),
                    },
                )
                progress.advance("train", 1, f"epoch {epoch} val_loss {val['loss']:.3f}")
                if train_cfg.early_stopping_patience and stale >= train_cfg.early_stopping_patience:
                    run.set_tags({tag("early_stopped_at_epoch"): epoch})
                    break
        finally:
            progress.finish("train")
        elapsed = time.perf_counter() - started
        samples_per_second = seen / elapsed if elapsed > 0 else float("nan")

        if best_state is None:
            raise TrainingError(f"no epoch finished; nothing to save (checkpoints in {ckpt_dir})")
        model.load_state_dict(best_state)
        model = model.cpu().eval()
        final = evaluate(model, x_val.cpu(), 1024)
        warnings = {}
        if final["active_units"] < train_cfg.collapse_min_active_units:
            warnings[tag("warning.posterior_collapse")] = (
                f"{int(final['active_units'])} active latent units (Var E[z|x] > {ACTIVE_UNIT_THRESHOLD}) "
                f"of {model.config.latent_dim}"
            )
        if getattr(model, "adversarial", False):
            diversity = sample_diversity(model, x_val.cpu())
            if diversity < DIVERSITY_WARNING:
                warnings[tag("warning.mode_collapse")] = f"prior samples spread {diversity:.2f}x as much as the data"
        run.set_tags(warnings)
        save_model_files(model, ckpt_dir)
        run.log_metrics(
            {"best_val_loss": best_val, "samples_per_second": samples_per_second, "active_units": final["active_units"]}
        )
        model_uri, model_version, registered_version, champion = str(ckpt_dir), run_id, None, False
        if run.enabled:
            model_info = log_encoder_model(model, x_val_np[:5], ckpt_dir, registered_model)
            model_uri, model_version = model_info.model_uri, model_info.model_id or run_id
            registered_version = getattr(model_info, "registered_model_version", None)
            if registered_model and registered_version is not None and champion_alias:
                champion = promote_if_better(
                    tracking, registered_model, str(registered_version), best_val, champion_alias, info.version
                )
        run.set_tags(
            {
                tag("model_uri"): model_uri,
                tag("model_version"): model_version,
                tag("checkpoint_dir"): str(ckpt_dir),
                tag("registered_version"): registered_version or "",
                tag("champion"): str(champion).lower(),
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
            resumed_from_epoch=start_epoch,
            champion=champion,
        )
