"""Train: fit a registered model on a dataset table, logging every epoch and the model to MLflow.

AdamW with a constant, cosine or step schedule; KL warm-up and free bits; gradient clipping; bf16 autocast on CUDA;
early stopping on the validation loss. A checkpoint after every epoch holds everything needed to continue exactly
(weights, optimizer and scheduler states, RNG states, counters), written atomically. A non-finite loss stops
training at once: the run ends FAILED with the reason, and the last good checkpoint is kept.

Input is held in memory or streamed row group by row group (`train.data`, see latent/data/stream.py). With
`train.devices: N`, or under torchrun, training is data-parallel (DistributedDataParallel; latent/distributed.py):
every rank reads its own part of each epoch, metrics are summed over ranks, and rank 0 alone checkpoints and logs.

The loop reads top to bottom: `train` plans (reuse, resume) and chooses where to run; `_fit` sets up and runs
`_train_epoch` and `_validate` per epoch, saving a `Checkpoint`; `_finalise` checks the best model for failures,
logs it and registers it.

Validation loss is the negative ELBO (reconstruction + KL) with the posterior mean, the same quantity for every
model in the family, so early stopping and the champion alias compare like with like.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import random
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latent import distributed
from latent.config import ModelConfig, TrainConfig, stable_hash
from latent.data import stream
from latent.data.dataset import DatasetInfo, load_dataset_arrays, read_dataset_info
from latent.distributed import World
from latent.errors import ConfigError, DataError, TrainingError
from latent.models import BaseVAE, LatentMeanEncoder, create_model, model_entry
from latent.models.io import CONFIG_FILE, WEIGHTS_FILE, save_model_files
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

logger = logging.getLogger(__name__)

# a training run's checkpoint folder, `models/<run-id>/`: the resumable state and the best weights so far
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"

ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. (2016): Var_x E[z_i | x] above this counts as active
DIVERSITY_WARNING = 0.5  # prior samples spread less than half as much as the data: likely mode collapse
# first encoder layer's gradient norm below this share of the last decoder layer's (epoch means): vanishing
VANISHING_RATIO = 1e-3
# overfitting: over this many epochs the relative generalisation gap (val - train) / train rose (least-squares
# slope > 0) while the train loss fell, and the gap ended above OVERFIT_MIN_GAP
OVERFIT_WINDOW = 10
GRAD_SAMPLE_EVERY = 16  # gradient norms are averaged over every 16th step of an epoch (the first included)
GAP_TRAIN_ROWS = 2048  # train rows scored each epoch, as validation scores its rows, for the generalisation gap
OVERFIT_MIN_GAP = 0.05


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
    if "vocab_size" in {f.name for f in fields(model_entry(model_cfg.name).config_cls)}:
        from latent.data.sources.molecules import token_vocabulary_size

        kwargs["vocab_size"] = token_vocabulary_size(info.path)  # a sequence model's tokens: from the dataset
        if not kwargs["vocab_size"]:
            raise ConfigError(f"model.name: {model_cfg.name} needs SELFIES rows (dataset.molecules.representation)")
    try:
        return create_model(model_cfg.name, **kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"model: {exc}") from None


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
def evaluate_batches(model: BaseVAE, batches: Iterable[torch.Tensor], world: World = World()) -> dict[str, float]:
    """Validation with the posterior mean over batches (summed over ranks): negative ELBO as `loss`, its terms, KL
    per dimension, and active units (Var_x E[z|x] from running sums of the means and their squares)."""
    model.eval()
    d = model.config.latent_dim
    sums: torch.Tensor | None = None  # rows, recon, kl, kl per dim (d), sum of means (d), sum of squares (d)
    for batch in batches:
        out = model(batch)
        n = len(batch)
        mu = out.z_mean.double()
        part = torch.cat(
            [
                torch.tensor([n, float(out.recon_loss) * n, float(out.kl) * n], dtype=torch.float64, device=mu.device),
                out.kl_per_dim.double() * n,
                mu.sum(0),
                mu.pow(2).sum(0),
            ]
        )
        sums = part if sums is None else sums + part
    if sums is None:
        sums = torch.zeros(3 + 3 * d, dtype=torch.float64, device=next(model.parameters()).device)
    sums = distributed.all_sum(sums, world).cpu()
    n = max(float(sums[0]), 1.0)
    metrics = {"recon": float(sums[1]) / n, "kl": float(sums[2]) / n}
    metrics["loss"] = metrics["recon"] + metrics["kl"]
    mean, square = sums[3 + d : 3 + 2 * d] / n, sums[3 + 2 * d :] / n
    variance = (square - mean.pow(2)).clamp(min=0.0)
    metrics["active_units"] = float((variance > ACTIVE_UNIT_THRESHOLD).sum()) if float(sums[0]) > 1 else 0.0
    for i, v in enumerate((sums[3 : 3 + d] / n).tolist()):
        metrics[f"kl_dim_{i}"] = v
    return metrics


def evaluate(model: BaseVAE, x: torch.Tensor, batch_size: int) -> dict[str, float]:
    """`evaluate_batches` over the rows of x, batch_size at a time."""
    return evaluate_batches(model, (x[i : i + batch_size] for i in range(0, len(x), batch_size)))


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
            "train": train_cfg.model_dump(mode="json", exclude=set(TrainConfig.POLICY_FIELDS)),
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
        extra_files=[str(model_dir / CONFIG_FILE), str(model_dir / WEIGHTS_FILE)],
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


# ---- the checkpoint: everything needed to continue exactly ----


def _rng_state(generator: torch.Generator) -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "shuffle": generator.get_state(),
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: dict[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["shuffle"])
    if "python" in state:
        random.setstate(state["python"])
    if "numpy" in state:
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class Checkpoint:
    """Counters and histories of a training; `save`/`restore` add the model, optimisers, schedulers and every RNG
    (each rank's). The streamed data order is a function of (seed, epoch) alone, so it needs no state."""

    epoch: int = 0
    best_val_loss: float = math.inf
    stale_epochs: int = 0
    train_elbo: list[float] = field(default_factory=list)  # per epoch, for the overfitting watch
    gap: list[float] = field(default_factory=list)
    overfitting: str = ""  # the overfitting warning, once raised

    def save(self, path: Path, model: BaseVAE, optimizers: list, schedulers: list, rng: list[dict]) -> None:
        payload = {
            "epoch": self.epoch,
            "model": model.state_dict(),
            "optimizers": [o.state_dict() for o in optimizers],
            "schedulers": [s.state_dict() for s in schedulers],
            "best_val_loss": self.best_val_loss,
            "stale_epochs": self.stale_epochs,
            "train_elbo": self.train_elbo,
            "gap": self.gap,
            "overfitting": self.overfitting,
            "rng": rng[0],
            "rng_ranks": rng,
        }
        _save_atomically(path, payload)

    @classmethod
    def restore(
        cls, path: Path, model: BaseVAE, optimizers: list, schedulers: list, generator: torch.Generator, world: World
    ) -> Checkpoint:
        state = torch.load(path, map_location=next(model.parameters()).device, weights_only=True)
        model.load_state_dict(state["model"])
        for opt, s in zip(optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(s)
        for sched, s in zip(schedulers, state["schedulers"], strict=True):
            sched.load_state_dict(s)
        ranks = state.get("rng_ranks", [state["rng"]])
        _restore_rng(ranks[world.rank] if len(ranks) == world.size else ranks[0], generator)
        return cls(
            epoch=state["epoch"],
            best_val_loss=state["best_val_loss"],
            stale_epochs=state["stale_epochs"],
            train_elbo=list(state.get("train_elbo", [])),
            gap=list(state.get("gap", [])),
            overfitting=state.get("overfitting", ""),
        )


def _save_atomically(path: Path, payload: dict) -> None:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _all_rng_states(generator: torch.Generator, world: World) -> list[dict]:
    state = _rng_state(generator)
    if not world.distributed:
        return [state]
    gathered: list[Any] = [None] * world.size
    torch.distributed.all_gather_object(gathered, state)
    return gathered


# ---- input: one rank's batches per epoch, from memory or streamed ----


def rank_batch_size(cfg: TrainConfig, world: World) -> int:
    """train.batch_size is the global batch: the same optimisation whatever the number of devices."""
    if cfg.batch_size % world.size:
        raise ConfigError(
            f"train.batch_size: {cfg.batch_size} must be a multiple of the {world.size} processes training together"
        )
    return cfg.batch_size // world.size


class MemoryData:
    """Train and val splits as float32 tensors on the device; a seeded permutation per epoch."""

    def __init__(
        self, info: DatasetInfo, cfg: TrainConfig, world: World, device: torch.device, val_only: bool = False
    ) -> None:
        _, x_val, _ = load_dataset_arrays(info.path, ("val",))
        x_train = x_val[:0] if val_only and len(x_val) else load_dataset_arrays(info.path, ("train",))[1]
        if len(x_train) == 0 and len(x_val) == 0:
            raise DataError(f"{info.path}: the train split is empty")
        if len(x_val) == 0:  # tiny datasets: validate on train rather than fail
            x_val = x_train
        if len(x_train) == 0 and not val_only:
            raise DataError(f"{info.path}: the train split is empty")
        self.x_train, self.x_val = torch.tensor(x_train, device=device), torch.tensor(x_val, device=device)
        self.n_train, self.n_val = len(x_train), len(x_val)
        self.batch_size, self.val_batch_size, self.world = rank_batch_size(cfg, world), 1024, world
        self.steps = stream.steps_per_epoch(self.n_train, world.size, self.batch_size)

    def train_batches(self, epoch: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
        order = torch.randperm(self.n_train, generator=generator).to(self.x_train.device)
        start, stop = stream.rank_rows(self.n_train, self.world.rank, self.world.size)
        for size in stream.batch_sizes(stop - start, self.steps, self.batch_size):
            yield self.x_train[order[start : start + size]]
            start += size

    def val_batches(self) -> Iterator[torch.Tensor]:
        start, stop = stream.rank_rows(self.n_val, self.world.rank, self.world.size)
        for begin in range(start, stop, self.val_batch_size):
            yield self.x_val[begin : min(begin + self.val_batch_size, stop)]

    def sample(self, n: int) -> torch.Tensor:
        return self.x_val[:n]

    def train_sample(self, n: int) -> torch.Tensor:
        return self.x_train[:n]


class StreamedData:
    """Train and val splits streamed row group by row group through DataLoader workers (latent/data/stream.py);
    rows stay in their stored dtype until `stream.model_input` converts them on the device."""

    def __init__(
        self, info: DatasetInfo, cfg: TrainConfig, world: World, device: torch.device, val_only: bool = False
    ) -> None:
        train_units = stream.split_units(info.path, "train")
        if not train_units:
            raise DataError(f"{info.path}: the train split is empty")
        val_units, val_split = stream.split_units(info.path, "val"), "val"
        if not val_units:  # tiny datasets: validate on train rather than fail
            val_units, val_split = train_units, "train"
        self.transform, self.device = info.transform, device
        self.train = stream.SplitStream(
            train_units,
            "train",
            rank_batch_size(cfg, world),
            cfg.seed,
            True,
            world.rank,
            world.size,
            cfg.shuffle_buffer,
        )
        self.val = stream.SplitStream(val_units, val_split, 1024, cfg.seed, False, world.rank, world.size)
        self.n_train, self.n_val, self.steps = self.train.total, self.val.total, self.train.steps
        self.workers = stream.loader_workers(cfg.loader_workers, device, world.local_size)
        self._val_units, self._val_split, self._train_units = val_units, val_split, train_units
        # small validation splits are read once (stream.VAL_CACHE_BYTES), kept in the stored dtype
        row_bytes = info.feature_dim * stream.unit_dtype(val_units[0]).itemsize
        self._val_bytes = math.ceil(self.val.total / world.size) * row_bytes
        self._val_rows: torch.Tensor | None = None
        self._train_sample: tuple[int, np.ndarray] | None = None

    def _loader(self, dataset: stream.SplitStream) -> Iterator[torch.Tensor]:
        pin = self.device.type == "cuda"
        blocks: Iterable
        if self.workers == "inline":  # read between steps: no core is free for a reader
            blocks = iter(dataset)
        elif self.workers:
            blocks = torch.utils.data.DataLoader(
                dataset, batch_size=None, num_workers=self.workers, prefetch_factor=4, pin_memory=pin
            )
        else:  # one reading thread in this process, a few blocks ahead of the step (the same blocks, same order)
            blocks = stream.read_ahead((block.pin_memory() if pin else block, sizes) for block, sizes in dataset)
        for block, sizes in blocks:
            # one device copy per block, in the stored dtype; converted to float32 a batch at a time, so a block
            # of uint8 pixels never exists as float32 at once (16 validation batches of 1,024 64x64 images would be
            # 270 MB, twice over while scaled)
            block = block.to(self.device, non_blocking=True)
            for batch in torch.split(block, list(sizes)):
                yield stream.model_input(batch, self.transform, self.device)

    def train_batches(self, epoch: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
        self.train.set_epoch(epoch)
        return self._loader(self.train)

    def val_batches(self) -> Iterator[torch.Tensor]:
        if self._val_rows is None and self._val_bytes <= stream.VAL_CACHE_BYTES:
            # kept on the device in the stored dtype: no host-to-device copy per epoch either
            start, stop = stream.rank_rows(self.val.total, self.val.rank, self.val.world)
            chunks = list(stream.read_range(self._val_units, self._val_split, start, stop))
            self._val_rows = torch.from_numpy(np.concatenate(chunks)).to(self.device) if chunks else None
            if self._val_rows is None:  # more ranks than validation rows: this rank has none
                return iter(())
        if self._val_rows is None:
            return self._loader(self.val)
        batches = torch.split(self._val_rows, 1024)
        return (stream.model_input(b, self.transform, self.device) for b in batches)

    def sample(self, n: int) -> torch.Tensor:
        rows = np.concatenate(list(stream.read_range(self._val_units, self._val_split, 0, n)))
        return stream.model_input(torch.from_numpy(rows), self.transform, self.device)

    def train_sample(self, n: int) -> torch.Tensor:
        # the same first rows every epoch (the generalisation gap's): read once, kept in their stored dtype
        if self._train_sample is None or self._train_sample[0] != n:
            self._train_sample = (n, np.concatenate(list(stream.read_range(self._train_units, "train", 0, n))))
        return stream.model_input(torch.from_numpy(self._train_sample[1]), self.transform, self.device)


def open_data(
    info: DatasetInfo, cfg: TrainConfig, mode: str, world: World, device: torch.device, val_only: bool = False
) -> MemoryData | StreamedData:
    return (MemoryData if mode == "memory" else StreamedData)(info, cfg, world, device, val_only)


def data_mode(info: DatasetInfo, cfg: TrainConfig, processes: int) -> str:
    """train.data resolved: `auto` holds the data in memory when the float32 copies of train + val that every local
    process would hold fit in a quarter of the available memory (stream.choose_data_mode), else streams."""
    rows = info.splits.get("train", 0) + (info.splits.get("val", 0) or info.splits.get("train", 0))
    return stream.choose_data_mode(cfg.data, rows, info.feature_dim, processes)


# ---- gradient watch: norms per part, accumulated on the device, read once per epoch ----


class GradientMonitor:
    """Sums per step the gradient norms of the encoder, decoder and discriminator and of the first encoder layer
    and last decoder layer, from the gradients the step left; `read` averages them once per epoch."""

    def __init__(self, model: BaseVAE) -> None:
        def trainable(module: torch.nn.Module | None) -> list[torch.nn.Parameter]:
            return [p for p in module.parameters() if p.requires_grad] if module is not None else []

        encoder = trainable(model.encoder) + trainable(getattr(model, "to_mean", None))
        encoder += trainable(getattr(model, "to_logvar", None))
        # a model without a `decoder` module (ProdLDA decodes through its topic matrix): everything not encoder
        decoder = getattr(model, "decoder", None)
        inside = {id(p) for p in encoder} | {id(p) for p in trainable(getattr(model, "discriminator", None))}
        rest = [p for p in model.parameters() if p.requires_grad and id(p) not in inside]
        groups = {"encoder": encoder, "decoder": trainable(decoder) if decoder is not None else rest}
        if getattr(model, "discriminator", None) is not None:
            groups["discriminator"] = trainable(model.discriminator)
        weighted = lambda m: [x for x in m.modules() if getattr(x, "weight", None) is not None]  # noqa: E731
        groups["first_layer"] = trainable(weighted(model.encoder)[0])
        last = weighted(decoder)[-1] if decoder is not None else None
        groups["last_layer"] = trainable(last) if last is not None else groups["decoder"][-1:]
        self.names = list(groups)
        self.groups = list(groups.values())
        self.totals: torch.Tensor | None = None
        self.steps = 0
        self.calls = 0

    def step(self) -> None:
        self.calls += 1
        if (self.calls - 1) % GRAD_SAMPLE_EVERY:  # a sample of the steps: the norms cost a pass over every gradient
            return
        norms = torch.stack(
            [
                torch.nn.utils.get_total_norm([p.grad for p in group if p.grad is not None]).float()
                for group in self.groups
            ]
        )
        self.totals = norms if self.totals is None else self.totals + norms
        self.steps += 1

    def read(self) -> dict[str, float]:
        if self.totals is None:
            return {}
        means = dict(zip(self.names, (self.totals / self.steps).tolist(), strict=True))
        self.totals, self.steps, self.calls = None, 0, 0
        first, last = means.pop("first_layer"), means.pop("last_layer")
        metrics = {f"grad_norm_{k}": v for k, v in means.items()}
        metrics["grad_ratio_first_last"] = first / last if last > 0 else float("nan")
        return metrics


def overfitting_warning(train_elbo: list[float], gap: list[float]) -> str:
    """The overfitting warning when, over the last OVERFIT_WINDOW epochs, the relative generalisation gap kept
    growing (positive least-squares slope, above OVERFIT_MIN_GAP at the end) while the train loss fell."""
    if len(gap) < OVERFIT_WINDOW:
        return ""
    steps = np.arange(OVERFIT_WINDOW)
    gap_slope = np.polyfit(steps, gap[-OVERFIT_WINDOW:], 1)[0]
    train_slope = np.polyfit(steps, train_elbo[-OVERFIT_WINDOW:], 1)[0]
    if gap_slope > 0 and train_slope < 0 and gap[-1] > OVERFIT_MIN_GAP and gap[-1] > gap[-OVERFIT_WINDOW]:
        return (
            f"generalisation gap (val - train) / train grew from {gap[-OVERFIT_WINDOW]:.3f} to {gap[-1]:.3f} over "
            f"epochs {len(gap) - OVERFIT_WINDOW + 1}-{len(gap)} while the train loss fell"
        )
    return ""


# ---- one step, one epoch, validation ----


def _ddp_step(ddp: torch.nn.Module, batch: torch.Tensor, optimizers: list, clip: float, autocast) -> Any:
    """BaseVAE.train_step through DistributedDataParallel: the gradients arrive averaged over the ranks, and the
    NaN guard looks at their norm, which is the same on every rank, so that all ranks stop at the same step."""
    (optimizer,) = optimizers
    with autocast or contextlib.nullcontext():
        out = ddp(batch)
    optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    params = [p for p in ddp.module.parameters() if p.grad is not None]
    norm = torch.nn.utils.get_total_norm([p.grad for p in params])
    out.finite = bool(torch.isfinite(norm))
    if out.finite:
        if clip > 0:
            torch.nn.utils.clip_grads_with_norm_(params, clip, norm)
        optimizer.step()
    return out


@dataclass
class _Trainer:
    """What one rank trains with."""

    cfg: TrainConfig
    model: BaseVAE
    ddp: torch.nn.Module | None
    optimizers: list
    schedulers: list
    generator: torch.Generator
    autocast: contextlib.AbstractContextManager | None
    data: MemoryData | StreamedData
    gradients: GradientMonitor
    world: World
    device: torch.device
    ckpt_dir: Path


def _train_epoch(t: _Trainer, epoch: int) -> tuple[dict[str, float], int]:
    """One pass over the rank's batches; returns the epoch's train metrics (means over all ranks' rows) and the
    rows seen by all ranks."""
    t.model.train()
    warmup = t.cfg.kl_warmup_epochs
    t.model.control.kl_scale = min(1.0, epoch / warmup) if warmup else 1.0
    names: list[str] = []
    total: torch.Tensor | None = None
    for step, batch in enumerate(t.data.train_batches(epoch, t.generator)):
        t.model.control.progress = ((epoch - 1) + step / t.data.steps) / t.cfg.epochs
        if t.ddp is not None:
            out = _ddp_step(t.ddp, batch, t.optimizers, t.cfg.grad_clip_norm, t.autocast)
        else:
            out = t.model.train_step(batch, t.optimizers, t.cfg.grad_clip_norm, t.autocast)
        if not out.finite:
            raise TrainingError(
                f"non-finite loss ({out.loss.item()}) at epoch {epoch}, step {step + 1}; training "
                f"stopped, the last good checkpoint (epoch {epoch - 1}) is kept in {t.ckpt_dir}"
            )
        t.gradients.step()
        if total is None:
            names = ["rows", "loss", "recon", "kl", *out.terms]
            total = torch.zeros(len(names), device=t.device)
        n = len(batch)
        # one fused op per step rather than one per term: cheap enough to keep every step's numbers
        total += (
            torch.stack([out.loss.new_ones(()), out.loss, out.recon_loss, out.kl, *out.terms.values()]).detach().float()
            * n
        )
    for sched in t.schedulers:
        sched.step()
    sums = dict(zip(names, distributed.all_sum(total, t.world).tolist(), strict=True)) if total is not None else {}
    rows = sums.pop("rows", 0.0)
    return {f"train_{k}": v / rows for k, v in sums.items()}, round(rows)


def _validate(t: _Trainer) -> dict[str, float]:
    return evaluate_batches(t.model, t.data.val_batches(), t.world)


@dataclass(frozen=True)
class _Plan:
    """What `train` decided before any process trains: small and picklable, for the launched ranks."""

    info: DatasetInfo
    model_cfg: ModelConfig
    train_cfg: TrainConfig
    workspace: Workspace
    tracking_uri: str | None
    key: str
    previous_run_id: str | None
    data_mode: str
    init_model_uri: str | None
    freeze_encoder_layers: int


@dataclass(frozen=True)
class _Fitted:
    start_epoch: int
    best_val_loss: float
    samples_per_second: float
    early_stopped_at: int | None
    warnings: dict[str, str]


def _setup(plan: _Plan, world: World, device: torch.device, resume: bool) -> tuple[_Trainer, Checkpoint]:
    """Data, model, optimisers and schedulers for this rank, restored from the last checkpoint when resuming."""
    cfg = plan.train_cfg
    seed_everything(cfg.seed)
    data = open_data(plan.info, cfg, plan.data_mode, world, device)
    model = build_model(plan.model_cfg, plan.info)
    if plan.init_model_uri is not None:
        init_from(model, plan.init_model_uri, plan.tracking_uri, plan.freeze_encoder_layers)
    model = model.to(device)
    model.control.free_bits = cfg.free_bits
    model.control.dataset_size = data.n_train
    optimizers = model.configure_optimizers(cfg.learning_rate, cfg.weight_decay)
    ddp = None
    if world.distributed:
        if len(optimizers) != 1:
            raise ConfigError(
                f"train.devices: {plan.model_cfg.name} steps {len(optimizers)} optimisers per batch, which "
                "DistributedDataParallel does not cover; train it with train.devices: 1"
            )
        torch.manual_seed(cfg.seed + world.rank)  # each rank its own sampling noise; weights come from rank 0
        ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    trainer = _Trainer(
        cfg=cfg,
        model=model,
        ddp=ddp,
        optimizers=optimizers,
        schedulers=_schedulers(optimizers, cfg),
        generator=torch.Generator().manual_seed(cfg.seed),
        autocast=_autocast(device, cfg.precision),
        data=data,
        gradients=GradientMonitor(model),
        world=world,
        device=device,
        ckpt_dir=plan.workspace.model_dir(plan.previous_run_id or "") if resume else Path(),
    )
    checkpoint = Checkpoint()
    if resume:
        checkpoint = Checkpoint.restore(
            trainer.ckpt_dir / LAST_CHECKPOINT, model, optimizers, trainer.schedulers, trainer.generator, world
        )
    return trainer, checkpoint


class _EpochLog:
    """Per-epoch metrics of the training run, written by rank 0 through the MLflow client (the run may be held
    open by the launching process)."""

    def __init__(self, tracking_uri: str | None, run_id: str, enabled: bool) -> None:
        self.client = None
        if enabled and tracking_uri is not None:
            import mlflow

            self.client = mlflow.MlflowClient(tracking_uri)
        self.run_id = run_id

    def metrics(self, values: dict[str, float], step: int) -> None:
        if self.client is not None:
            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in values.items()])


def _fit(plan: _Plan, run_id: str, world: World, device: torch.device, tracked: bool) -> _Fitted:
    """Train this rank from the start or the last checkpoint to the last epoch (or early stop)."""
    cfg = plan.train_cfg
    t, ckpt = _setup(plan, world, device, resume=plan.previous_run_id is not None)
    t.ckpt_dir = plan.workspace.model_dir(run_id)
    if world.main:
        t.ckpt_dir.mkdir(parents=True, exist_ok=True)
    log = _EpochLog(plan.tracking_uri, run_id, tracked and world.main)
    start_epoch, early_stopped_at = ckpt.epoch, None
    progress = reporter()
    if world.main:
        progress.start("train", f"train {plan.model_cfg.name}", cfg.epochs)
        progress.advance("train", start_epoch)
    started, seen, metrics = time.perf_counter(), 0, {}
    try:
        for epoch in range(start_epoch + 1, cfg.epochs + 1):
            metrics, rows = _train_epoch(t, epoch)
            seen += rows
            val = _validate(t)
            metrics.update({f"val_{k}": v for k, v in val.items()})
            metrics.update(t.gradients.read())
            # the gap compares like with like: train rows scored as validation scores its rows (posterior mean),
            # not the running train loss, whose sampled z and mid-epoch weights read higher
            train_elbo = evaluate(t.model, t.data.train_sample(GAP_TRAIN_ROWS), 1024)["loss"]
            metrics["train_eval_loss"] = train_elbo
            ckpt.train_elbo.append(train_elbo)
            ckpt.gap.append((val["loss"] - train_elbo) / abs(train_elbo) if train_elbo else float("nan"))
            metrics["generalisation_gap"] = ckpt.gap[-1]
            metrics["kl_weight"] = t.model.control.kl_scale
            metrics["learning_rate"] = t.optimizers[0].param_groups[0]["lr"]
            if getattr(t.model, "adversarial", False):
                metrics["sample_diversity"] = sample_diversity(t.model, t.data.sample(1024))
            log.metrics(metrics, step=epoch)
            ckpt.overfitting = ckpt.overfitting or overfitting_warning(ckpt.train_elbo, ckpt.gap)
            ckpt.epoch = epoch
            if val["loss"] < ckpt.best_val_loss:
                ckpt.best_val_loss, ckpt.stale_epochs = val["loss"], 0
                if world.main:
                    _save_atomically(t.ckpt_dir / BEST_CHECKPOINT, {"epoch": epoch, "model": t.model.state_dict()})
            else:
                ckpt.stale_epochs += 1
            rng = _all_rng_states(t.generator, world)
            if world.main:
                ckpt.save(t.ckpt_dir / LAST_CHECKPOINT, t.model, t.optimizers, t.schedulers, rng)
                progress.advance("train", 1, f"epoch {epoch} val_loss {val['loss']:.3f}")
            if cfg.early_stopping_patience and ckpt.stale_epochs >= cfg.early_stopping_patience:
                early_stopped_at = epoch
                break
    finally:
        if world.main:
            progress.finish("train")
    elapsed = time.perf_counter() - started
    warnings = {}
    ratio = metrics.get("grad_ratio_first_last", float("nan")) if ckpt.epoch > start_epoch else float("nan")
    if ratio < VANISHING_RATIO:
        warnings[tag("warning.vanishing_gradients")] = (
            f"first encoder layer's gradient norm is {ratio:.1e} of the last decoder layer's in the last epoch "
            f"(threshold {VANISHING_RATIO:g})"
        )
    if ckpt.overfitting:
        warnings[tag("warning.overfitting")] = ckpt.overfitting
    return _Fitted(
        start_epoch=start_epoch,
        best_val_loss=ckpt.best_val_loss,
        samples_per_second=seen / elapsed if elapsed > 0 else float("nan"),
        early_stopped_at=early_stopped_at,
        warnings=warnings,
    )


# ---- finalisation: failures of the best model, the logged model, registration ----


def _register(
    tracking: Tracking | None,
    model: BaseVAE,
    example: np.ndarray,
    ckpt_dir: Path,
    registered_model: str | None,
    champion_alias: str | None,
    best_val: float,
    dataset_version: str,
) -> tuple[str | None, str | None, str | None, bool]:
    """Log the model to the active run and register it; (model_uri, model_id, registered version, champion)."""
    model_info = log_encoder_model(model, example, ckpt_dir, registered_model)
    registered_version = getattr(model_info, "registered_model_version", None)
    logger.info(
        "logged model %s (registered %s version %s)", model_info.model_uri, registered_model, registered_version
    )
    champion = False
    if registered_model and registered_version is not None and champion_alias:
        champion = promote_if_better(
            tracking, registered_model, str(registered_version), best_val, champion_alias, dataset_version
        )
    return model_info.model_uri, model_info.model_id, registered_version, champion


def _finalise(
    run: Any,
    plan: _Plan,
    fitted: _Fitted,
    tracking: Tracking | None,
    registered_model: str | None,
    champion_alias: str | None,
) -> TrainResult:
    """Load the best weights, warn of failures (collapse, vanishing gradients, overfitting), save, log, register."""
    ckpt_dir = plan.workspace.model_dir(run.run_id)
    if fitted.early_stopped_at is not None:
        run.set_tags({tag("early_stopped_at_epoch"): fitted.early_stopped_at})
    if not (ckpt_dir / BEST_CHECKPOINT).is_file():
        raise TrainingError(f"no epoch finished; nothing to save (checkpoints in {ckpt_dir})")
    model = build_model(plan.model_cfg, plan.info)
    model.load_state_dict(torch.load(ckpt_dir / BEST_CHECKPOINT, map_location="cpu", weights_only=True)["model"])
    model.control.dataset_size = plan.info.splits.get("train", 0)
    model = model.eval()
    cfg = plan.train_cfg.model_copy(update={"loader_workers": "inline"})
    data = open_data(plan.info, cfg, plan.data_mode, World(), torch.device("cpu"), val_only=True)
    final = evaluate_batches(model, data.val_batches())
    sample = data.sample(1024)
    warnings = dict(fitted.warnings)
    if final["active_units"] < plan.train_cfg.collapse_min_active_units:
        warnings[tag("warning.posterior_collapse")] = (
            f"{int(final['active_units'])} active latent units (Var E[z|x] > {ACTIVE_UNIT_THRESHOLD}) "
            f"of {model.config.latent_dim}"
        )
    if getattr(model, "adversarial", False):
        diversity = sample_diversity(model, sample)
        if diversity < DIVERSITY_WARNING:
            warnings[tag("warning.mode_collapse")] = f"prior samples spread {diversity:.2f}x as much as the data"
    run.set_tags(warnings)
    save_model_files(model, ckpt_dir)
    run.log_metrics(
        {
            "best_val_loss": fitted.best_val_loss,
            "samples_per_second": fitted.samples_per_second,
            "active_units": final["active_units"],
        }
    )
    model_uri, model_version, registered_version, champion = str(ckpt_dir), run.run_id, None, False
    if run.enabled:
        model_uri, model_id, registered_version, champion = _register(
            tracking,
            model,
            sample[:5].numpy(),
            ckpt_dir,
            registered_model,
            champion_alias,
            fitted.best_val_loss,
            plan.info.version,
        )
        model_version = model_id or run.run_id
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
        run_id=run.run_id,
        model_uri=model_uri,
        model_version=model_version,
        registered_version=str(registered_version) if registered_version is not None else None,
        checkpoint_dir=str(ckpt_dir),
        best_val_loss=fitted.best_val_loss,
        epochs=plan.train_cfg.epochs,
        samples_per_second=fitted.samples_per_second,
        resumed_from_epoch=fitted.start_epoch,
        champion=champion,
    )


# ---- the entry point: plan, then train here or in N launched processes ----


def _plan(
    dataset_path: str | Path,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    workspace: Workspace,
    tracking: Tracking | None,
    reuse: bool,
    resume: str,
    init_model_uri: str | None,
    freeze_encoder_layers: int,
    processes: int,
) -> _Plan | TrainResult:
    """The finished training to reuse, or what to train: the key, the run to resume, the data mode."""
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
        if previous is not None and not (workspace.model_dir(previous.info.run_id) / LAST_CHECKPOINT).is_file():
            previous = None
    if resume == "require" and previous is None:
        raise TrainingError(f"nothing to resume: no interrupted training of this config on dataset {info.version}")
    # a resumed training keeps the data mode it started with, so that it reads the rows in the same order
    mode = previous.data.params.get("data_mode") if previous is not None else None
    return _Plan(
        info=info,
        model_cfg=model_cfg,
        train_cfg=train_cfg,
        workspace=workspace,
        tracking_uri=tracking.uri if tracking else None,
        key=key,
        previous_run_id=previous.info.run_id if previous is not None else None,
        data_mode=mode or data_mode(info, train_cfg, processes),
        init_model_uri=init_model_uri,
        freeze_encoder_layers=freeze_encoder_layers,
    )


@contextlib.contextmanager
def _training_run(plan: _Plan, tracking: Tracking | None, run_name: str, world_size: int, device: torch.device):
    """The MLflow run of the training: new, or the interrupted one reopened; parameters logged once."""
    stage_tags = {
        tag("dataset_version"): plan.info.version,
        tag("model_name"): plan.model_cfg.name,
        tag("train_key"): plan.key,
        tag("world_size"): world_size,
    }
    if plan.init_model_uri is not None:
        stage_tags.update(
            {tag("init_model_uri"): plan.init_model_uri, tag("frozen_encoder_layers"): plan.freeze_encoder_layers}
        )
    with stage_run(tracking, "train", stage_tags, run_id=plan.previous_run_id, run_name=run_name) as run:
        if plan.previous_run_id is None:
            n_val = plan.info.splits.get("val", 0) or plan.info.splits.get("train", 0)
            model = build_model(plan.model_cfg, plan.info)
            run.log_params(
                {
                    **{f"model.{k}": v for k, v in plan.model_cfg.model_dump().items()},
                    **{f"train.{k}": v for k, v in plan.train_cfg.model_dump().items()},
                    "dataset_version": plan.info.version,
                    "dataset_content_hash": plan.info.content_hash,
                    "n_train": plan.info.splits.get("train", 0),
                    "n_val": n_val,
                    "device": str(device),
                    "n_parameters": sum(p.numel() for p in model.parameters()),
                    "world_size": world_size,
                    "data_mode": plan.data_mode,
                }
            )
            log_table_input(
                run, plan.info.path, tracking.dataset_name if tracking else None, plan.info.version, "training"
            )
        else:
            run.set_tags({tag("resumed_from_epoch"): _checkpoint_epoch(plan)})
        yield run


def _checkpoint_epoch(plan: _Plan) -> int:
    path = plan.workspace.model_dir(plan.previous_run_id or "") / LAST_CHECKPOINT
    return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])


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

    Data-parallel: under torchrun (its environment set) this process is one rank of the job; otherwise
    `train.devices: N > 1` launches N local ranks and holds the run while they train.
    """
    args = (dataset_path, model_cfg, train_cfg, workspace, tracking, reuse, resume, init_model_uri)
    world = distributed.world_from_env()
    if world is None and train_cfg.devices > 1:
        return _launch(*args, freeze_encoder_layers, registered_model, champion_alias, run_name)
    return _train_here(*args, freeze_encoder_layers, registered_model, champion_alias, run_name, world or World())


def _train_here(
    dataset_path,
    model_cfg,
    train_cfg,
    workspace,
    tracking,
    reuse,
    resume,
    init_model_uri,
    freeze,
    registered_model,
    champion_alias,
    run_name,
    world: World,
) -> TrainResult:
    """Train in this process: alone, or as one rank of a torchrun job (rank 0 plans, holds the run, finalises)."""
    device = resolve_device(train_cfg.device)
    if world.distributed:
        device = distributed.join(world, device)
        _stop_on_sigterm()
    try:
        if not world.main:
            return _follow(world, device)
        plan = _plan(
            dataset_path,
            model_cfg,
            train_cfg,
            workspace,
            tracking,
            reuse,
            resume,
            init_model_uri,
            freeze,
            world.local_size,
        )
        distributed.broadcast(plan, world)
        if isinstance(plan, TrainResult):
            return plan
        with _training_run(plan, tracking, run_name, world.size, device) as run:
            distributed.broadcast(run.run_id, world)
            fitted = _fit(plan, run.run_id, world, device, tracked=run.enabled)
            result = _finalise(run, plan, fitted, tracking, registered_model, champion_alias)
        return distributed.broadcast(result, world)
    finally:
        if world.distributed:
            distributed.leave()


def _follow(world: World, device: torch.device) -> TrainResult:
    """A rank other than 0: train what rank 0 planned, in the run rank 0 holds; rank 0's result. It reads no
    config of its own beyond the device, and logs nothing."""
    plan = distributed.broadcast(None, world)
    if isinstance(plan, TrainResult):
        return plan
    run_id = distributed.broadcast(None, world)
    _fit(plan, run_id, world, device, tracked=False)
    return distributed.broadcast(None, world)


def follow(train_cfg: TrainConfig) -> TrainResult:
    """The whole part of a torchrun job's rank other than 0 in a pipeline: join the job and train what rank 0
    plans. Rank 0 alone runs the flow, its other stages and its MLflow runs (`latent` commands call this on the
    other ranks instead of the flow)."""
    world = distributed.world_from_env()
    if world is None or world.main:
        raise TrainingError("follow: only a rank other than 0 of a torchrun job follows rank 0's training")
    return _train_here(None, None, train_cfg, None, None, False, "never", None, 0, None, None, "train", world)


def _launch(
    dataset_path,
    model_cfg,
    train_cfg,
    workspace,
    tracking,
    reuse,
    resume,
    init_model_uri,
    freeze,
    registered_model,
    champion_alias,
    run_name,
) -> TrainResult:
    """Hold the run here while `train.devices` local ranks train; finalise from rank 0's checkpoints. A failed or
    killed rank fails the run with its reason (the stage run's error tag); the next run resumes."""
    device = resolve_device(train_cfg.device)
    if device.type == "cuda" and torch.cuda.device_count() < train_cfg.devices:
        raise TrainingError(
            f"train.devices: {train_cfg.devices} processes with one GPU each, but {torch.cuda.device_count()} "
            "GPUs are visible"
        )
    plan = _plan(
        dataset_path,
        model_cfg,
        train_cfg,
        workspace,
        tracking,
        reuse,
        resume,
        init_model_uri,
        freeze,
        train_cfg.devices,
    )
    if isinstance(plan, TrainResult):
        return plan
    with _training_run(plan, tracking, run_name, train_cfg.devices, device) as run:
        fitted = distributed.launch(train_cfg.devices, _rank_main, plan, run.run_id, run.enabled)
        return _finalise(run, plan, fitted, tracking, registered_model, champion_alias)


def _rank_main(plan: _Plan, run_id: str, tracked: bool) -> _Fitted:
    """One launched rank: join the job, train, leave."""
    world = distributed.world_from_env() or World()
    device = distributed.join(world, resolve_device(plan.train_cfg.device))
    _stop_on_sigterm()
    try:
        return _fit(plan, run_id, world, device, tracked)
    finally:
        distributed.leave()


def _stop_on_sigterm() -> None:
    """A launcher stops the other ranks of a failed job with SIGTERM: end as a failure with that reason."""

    def stop(signum: int, frame: Any) -> None:
        raise TrainingError("stopped by the launcher (SIGTERM): another rank of the job failed")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
