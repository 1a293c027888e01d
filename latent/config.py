"""Pipeline configuration: YAML merged with `--set` overrides, validated strictly by pydantic."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from latent.config_files import (  # DEFAULT_CONFIG_PATH and parse_override stay importable from here
    DEFAULT_CONFIG_PATH,  # noqa: F401
    DEFAULT_WORKSPACE,
    parse_override,  # noqa: F401
    read_config_tree,
)
from latent.errors import ConfigError


class StrictModel(BaseModel):
    """Strict, immutable, and a typo in a key is an error that names it."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")


class ImageOptions(StrictModel):
    # [height, width]; null: the folder's own size when every image has it, else a square of the median short
    # side (capped at max_side) — see latent/data/sources/image_folder.py
    size: list[int] | None = None
    max_side: int = Field(default=64, gt=0)  # cap of the size chosen for a folder of mixed sizes
    fit: Literal["crop", "stretch"] = "crop"  # another aspect ratio: centre-crop to it, or stretch to it
    mode: Literal["grayscale", "rgb"] | None = "grayscale"  # null: rgb if any image is in colour, else grayscale
    on_bad_file: Literal["error", "skip"] = "error"  # skip: quarantine.parquet lists the files and reasons
    max_skipped_fraction: float = Field(default=0.1, ge=0.0, le=1.0)  # skip: more unreadable files than this fails

    @field_validator("size")
    @classmethod
    def _two_positive(cls, size: list[int] | None) -> list[int] | None:
        if size is not None and (len(size) != 2 or min(size) <= 0):
            raise ValueError(f"expected [height, width] of positive integers, got {size}")
        return size


class TabularOptions(StrictModel):
    features: list[str] | None = None  # null: every numeric column except the label
    label: str | None = None  # the label column; null: no labels
    missing: Literal["error", "median"] = "error"  # median: fill with train-split medians


class ShapesOptions(StrictModel):
    n_samples: int | None = Field(default=10000, gt=0)  # null: the full grid of 737,280 images
    seed: int = 0  # seed of the subset


class TextOptions(StrictModel):
    """dataset.source: text (latent/data/sources/text.py): documents as bag-of-words counts over a train-split vocabulary."""

    column: str = "text"  # CSV / Parquet / JSON Lines: the column of documents
    label: str | None = None  # an optional integer or string label column (strings become class indices)
    vocab_size: int = Field(default=2000, gt=0)  # the most frequent words of the train split
    min_df: int = Field(default=2, gt=0)  # a word must occur in at least this many train documents
    max_df: float = Field(default=1.0, gt=0.0, le=1.0)  # drop words in more than this share of train documents
    stop_words: Literal["english"] | None = "english"  # scikit-learn's English stop-word list, or none
    token_pattern: str = r"(?u)[^\W\d_]{2,}"  # a word: 2+ letters, no digits (scikit-learn's: (?u)\b\w\w+\b)
    on_bad_file: Literal["error", "skip"] = "error"  # non-UTF-8 or empty documents; skip: quarantine.parquet
    n_documents: int = Field(default=3000, gt=0)  # the built-in corpus (no dataset.path): generated documents
    seed: int = 0  # seed of the built-in corpus
    background: float = Field(default=0.1, ge=0.0, lt=0.65)  # built-in corpus: share of general words (0: pure LDA)

    @field_validator("token_pattern")
    @classmethod
    def _regex(cls, pattern: str) -> str:
        try:
            groups = re.compile(pattern).groups
        except re.error as exc:
            raise ValueError(f"not a regular expression ({exc}): {pattern!r}") from None
        if groups > 1:  # scikit-learn takes a word from the whole match or from its one group
            raise ValueError(f"at most one capturing group, got {groups}: {pattern!r}")
        return pattern


class MoleculeOptions(StrictModel):
    """dataset.source: molecules (latent/data/sources/molecules.py): SMILES canonicalised with RDKit."""

    representation: Literal["fingerprint", "selfies"] = "fingerprint"  # Morgan bits, or SELFIES token indices
    smiles_column: str = "smiles"  # CSV / Parquet: the column of SMILES
    properties: list[str] = Field(default_factory=list)  # numeric columns kept beside the molecule
    label: str | None = None  # an optional integer label column
    radius: int = Field(default=2, ge=0)  # Morgan fingerprint radius
    bits: int = Field(default=1024, gt=0)  # Morgan fingerprint length
    max_tokens: int = Field(default=72, gt=0)  # SELFIES tokens per molecule at most (longer ones are bad rows)
    on_bad_file: Literal["error", "skip"] = "error"  # unparsable SMILES; skip: quarantine.parquet
    n_molecules: int | None = Field(default=None, gt=0)  # the built-in set (no dataset.path): its first n


class DatasetConfig(StrictModel):
    # where rows come from (see the datasets page)
    source: Literal["digits", "shapes", "image_folder", "npz", "idx", "tabular", "text", "molecules"] = "digits"
    # default: from the path (`/x/my_photos` -> my-photos, `wdbc.csv` -> wdbc) or the source (digits, shapes)
    name: str = Field(default="digits", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    path: str | None = None  # image_folder: a folder; npz, tabular: a file or glob; idx: the images file
    labels_path: str | None = None  # idx: the labels file
    x_key: str = "x"  # npz: the array of images or features
    y_key: str | None = "y"  # npz: the array of labels (null: none)
    image: ImageOptions = ImageOptions()
    tabular: TabularOptions = TabularOptions()
    shapes: ShapesOptions = ShapesOptions()
    text: TextOptions = TextOptions()
    molecules: MoleculeOptions = MoleculeOptions()

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and "name" not in data:
            data = {**data, "name": default_dataset_name(data.get("source", "digits"), data.get("path"))}
        return data

    @model_validator(mode="after")
    def _path_for_file_sources(self) -> DatasetConfig:
        if self.source in ("image_folder", "npz", "idx", "tabular") and not self.path:
            raise ValueError(f"source {self.source} needs dataset.path")
        return self


class SplitConfig(StrictModel):
    # share of rows in the val split, assigned from a hash of each row's id
    val: float = Field(default=0.1, ge=0.0, lt=1.0)
    test: float = Field(default=0.1, ge=0.0, lt=1.0)  # share of rows in the test split, assigned likewise

    @model_validator(mode="after")
    def _leaves_a_train_split(self) -> SplitConfig:
        if self.val + self.test >= 1.0:
            raise ValueError(f"val + test must be below 1 so that a train split remains, got {self.val + self.test}")
        return self


class PreprocessConfig(StrictModel):
    shard_rows: int = Field(default=512, gt=0)  # target rows per dataset shard (one Dask task each)
    split: SplitConfig = SplitConfig()


class DaskConfig(StrictModel):
    address: str | None = None  # scheduler of an existing cluster (tcp://host:8786); null: start a local one
    n_workers: int = Field(default=2, gt=0)  # workers of the local cluster
    threads_per_worker: int = Field(default=1, gt=0)  # threads per worker of the local cluster


def _check_models(info: ValidationInfo) -> bool:
    """Model names and params are checked against the model registry, which imports torch; `load_config(...,
    check_models=False)` validates everything else and skips that."""
    return not (isinstance(info.context, dict) and info.context.get("check_models") is False)


class ModelConfig(StrictModel):
    name: str = "vae_mlp"  # a registered model (vae_mlp, vae_conv, beta_tcvae, ...)
    latent_dim: int = Field(default=8, gt=0)  # latent dimensions k
    # encoder widths; the decoder mirrors them
    hidden_dims: list[int] = Field(default_factory=lambda: [256, 128], min_length=1)
    # multinomial: word counts (prodlda); categorical: one token per position (selfies_vae)
    likelihood: Literal["bernoulli", "gaussian", "multinomial", "categorical"] = "bernoulli"
    beta: float = Field(default=1.0, ge=0.0)  # weight of the KL term (β-VAE when ≠ 1; the TC weight for beta_tcvae)
    # model-specific parameters, checked against the model's config class (e.g. capacity_max, gamma, channels)
    params: dict[str, float | int | str | bool | list[int]] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known_model(cls, name: str, info: ValidationInfo) -> str:
        if not _check_models(info):
            return name
        from latent.models import available_models

        if name not in available_models():
            raise ValueError(f"unknown model {name!r}; expected one of: {', '.join(available_models())}")
        return name

    @model_validator(mode="after")
    def _params_belong_to_the_model(self, info: ValidationInfo) -> ModelConfig:
        if not _check_models(info):
            return self
        from dataclasses import fields

        from latent.models import model_entry

        shared = {"input_dim", "latent_dim", "hidden_dims", "likelihood", "beta", "input_shape", "vocab_size"}
        known = sorted(f.name for f in fields(model_entry(self.name).config_cls) if f.name not in shared)
        unknown = sorted(set(self.params) - set(known))
        if unknown:
            raise ValueError(
                f"params.{unknown[0]}: not a parameter of {self.name}; expected one of: {', '.join(known) or '(none)'}"
            )
        return self

    @field_validator("hidden_dims")
    @classmethod
    def _positive_widths(cls, dims: list[int]) -> list[int]:
        if any(d <= 0 for d in dims):
            raise ValueError(f"every hidden width must be a positive integer, got {dims}")
        return dims


class TrainConfig(StrictModel):
    epochs: int = Field(default=100, gt=0)  # training epochs
    batch_size: int = Field(default=64, gt=0)  # the global minibatch (shared by the ranks under DDP)
    learning_rate: float = Field(default=0.002, gt=0.0)  # AdamW's learning rate
    weight_decay: float = Field(default=0.0, ge=0.0)  # AdamW's weight decay
    # learning rate: constant, cosine (to 0 over the epochs) or step
    schedule: Literal["constant", "cosine", "step"] = "constant"
    step_epochs: int = Field(default=30, gt=0)  # schedule: step: multiply the rate by step_gamma every step_epochs
    step_gamma: float = Field(default=0.5, gt=0.0, le=1.0)  # schedule: step: the factor applied every step_epochs
    kl_warmup_epochs: int = Field(default=0, ge=0)  # KL weight ramps linearly from 0 to 1 over these epochs
    free_bits: float = Field(default=0.0, ge=0.0)  # nats per latent dimension
    grad_clip_norm: float = Field(default=0.0, ge=0.0)  # max global gradient norm; 0 turns clipping off
    early_stopping_patience: int = Field(default=0, ge=0)  # epochs without improvement; 0 turns it off
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, fp32 elsewhere
    collapse_min_active_units: int = Field(default=1, ge=0)  # fewer active units than this: a warning tag
    seed: int = 0  # seeds Python, NumPy and torch; CPU runs are reproducible
    # auto: CUDA when available, else the CPU
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    # input: memory holds train + val as float32 tensors; stream reads row groups (see latent/data/stream.py);
    # auto: memory when those copies fit in a quarter of the available memory, else stream
    data: Literal["auto", "memory", "stream"] = "auto"
    shuffle_buffer: int = Field(default=16384, gt=0)  # rows per loader worker mixed by the streaming shuffle
    # who reads (stream): N background processes per rank; 0: one reading thread in the training process, a few
    # blocks ahead of the step; inline: read between steps; auto: 2 processes on an accelerator, on the CPU the
    # thread when a core is left free by the step's threads, else inline (see latent/data/stream.py)
    loader_workers: int | Literal["auto", "inline"] = "auto"

    @field_validator("loader_workers", mode="before")
    @classmethod
    def _workers(cls, value: Any) -> Any:
        if value not in ("auto", "inline") and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"expected auto, inline or a number of processes >= 0, got {value!r}")
        return value

    devices: int = Field(default=1, gt=0)  # processes on this machine (DDP): one per GPU, or gloo processes on CPU
    # when only the data grew (same config): never / on_drift without drift: encode the new rows with the existing
    # model; always, or drift over a threshold: train a new model on the whole snapshot and re-encode every row
    retrain: Literal["on_drift", "always", "never"] = "on_drift"
    # drift: MMD² (RBF kernel, median bandwidth) of the new rows' z_mean against the training rows' above this
    drift_mmd: float = Field(default=0.05, ge=0.0)
    # drift: the new rows' mean reconstruction error over the training rows' above this
    drift_recon_ratio: float = Field(default=1.5, gt=0.0)
    drift_max_rows: int = Field(default=1000, ge=10)  # drift: rows sampled from each side for the MMD²

    # fields that decide what a run does when data grows, not what a trained model is (left out of its identity)
    POLICY_FIELDS: ClassVar[frozenset[str]] = frozenset({"retrain", "drift_mmd", "drift_recon_ratio", "drift_max_rows"})


class EncodeConfig(StrictModel):
    batch_size: int = Field(default=4096, gt=0)  # rows per encoder batch (bounds memory)
    # local: one process; dask: a task per shard on the cluster; auto: dask when dask.address is set
    engine: Literal["auto", "local", "dask"] = "auto"


class ReportConfig(StrictModel):
    tsne_perplexity: float = Field(default=30.0, gt=0.0)  # t-SNE perplexity
    tsne_iterations: int = Field(default=500, ge=1)  # after 250 early-exaggeration iterations (openTSNE's defaults)
    n_samples: int = Field(default=64, gt=0)  # prior samples in the report
    n_reconstructions: int = Field(default=16, gt=0)  # reconstructions in the report
    interpolation_steps: int = Field(default=10, ge=2)  # steps of the report's interpolation
    map_points: int = Field(default=5000, gt=0)  # points on the report's interactive map (a seeded subsample)
    # rows t-SNE (and UMAP) are fitted on at most; the others are placed beside their nearest fitted neighbours
    tsne_max_rows: int = Field(default=50_000, ge=10)
    umap: bool = False  # a UMAP projection beside t-SNE and PCA (needs the optional umap-learn: latent[umap])
    traversal_dims: int = Field(default=10, gt=0)  # dimensions in the report's traversal grid, by KL
    probes: bool = True  # logistic/kNN probes on latents vs raw inputs (tables with class labels)
    probe_max_rows: int = Field(default=20000, gt=0)  # train and test rows the probes use at most (seeded sample)
    disentanglement: bool = True  # disentanglement metrics (tables with ground-truth factor columns)
    disentanglement_budget: int = Field(default=1000, ge=8)  # DCI rows; FactorVAE/β-VAE votes: half
    seed: int = 0  # seed of t-SNE, prior samples and the map's subsample


def default_dataset_name(source: Any, path: Any) -> str:
    """A dataset's name when the config gives none: the file or folder its path names (extension, glob and
    non-alphanumerics dropped, lower case, `-` between words), else the source."""
    if isinstance(path, str) and path:
        parts = [p for p in re.split(r"[\\/]", path) if p and not any(c in p for c in "*?[")]
        stem = re.sub(r"\.(csv|tsv|parquet|npz|gz|idx\d-ubyte|ubyte)$", "", parts[-1] if parts else "", flags=re.I)
        stem = re.sub(r"\.(csv|tsv|parquet|npz|idx\d-ubyte|ubyte)$", "", stem, flags=re.I)
        name = "-".join(w for w in re.split(r"[^A-Za-z0-9]+", stem.lower()) if w)
        if name:
            return name
    return str(source) if isinstance(source, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", source) else "data"


class TrackingConfig(StrictModel):
    uri: str | None = None  # MLflow tracking URI; null: $MLFLOW_TRACKING_URI, else sqlite:///<workspace>/mlflow.db
    experiment: str = Field(default="latent", min_length=1)  # the MLflow experiment
    # default: `<dataset.name>-<model.name>`; null: do not register
    registered_model: str | None = Field(default="digits-vae_mlp", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    # moves to a new model version only if its val_loss beats the holder's on the same dataset version; the first
    # version trained on another dataset version takes it (losses on different data do not compare)
    champion_alias: str | None = "champion"


class TimeoutsConfig(StrictModel):
    """Seconds a stage may run before Prefect stops it (a hung file system or a runaway training)."""

    ingest: int = Field(default=3600, gt=0)  # seconds
    preprocess: int = Field(default=4 * 3600, gt=0)  # seconds
    train: int = Field(default=24 * 3600, gt=0)  # seconds
    encode: int = Field(default=8 * 3600, gt=0)  # seconds
    report: int = Field(default=2 * 3600, gt=0)  # seconds


class OrchestrationConfig(StrictModel):
    prefect_api_url: str | None = None  # Prefect server API; null: $PREFECT_API_URL, else an in-process server
    retries: int = Field(default=2, ge=0)  # retries of the I/O-bound stages (never for bad input)
    retry_backoff_s: float = Field(default=2.0, ge=0.0)  # base delay of the exponential, jittered backoff
    timeouts_s: TimeoutsConfig = TimeoutsConfig()


class ShiftConfig(StrictModel):
    """The built-in target domain: the source dataset's images, shifted."""

    # invert: 1 - x; noise: + N(0, noise_std²), clipped to [0, 1]; rotate: by rotate_degrees
    kind: Literal["invert", "noise", "rotate"] = "invert"
    noise_std: float = Field(default=0.3, gt=0.0)  # kind: noise
    rotate_degrees: float = 45.0  # kind: rotate
    seed: int = 0  # seed of the noise


class TransferConfig(StrictModel):
    source_model: str | None = (
        None  # MLflow model URI or name@alias; None: <tracking.registered_model>@<champion_alias>
    )
    target_dataset: str | None = None  # a dataset table directory; None: the source dataset shifted by `shift`
    shift: ShiftConfig = ShiftConfig()
    adapt_epochs: int = Field(default=20, gt=0)  # also the scratch model's budget: same compute for both
    freeze_encoder_layers: int = Field(default=0, ge=0)  # first encoder layers kept fixed while fine-tuning
    # probe label counts; all labels are always added
    label_budgets: list[int] = Field(default_factory=lambda: [10, 100, 1000], min_length=1)
    probe_repeats: int = Field(default=3, gt=0)  # draws per label count
    seed: int = 0  # seed of the probes' draws


class Config(StrictModel):
    workspace: str = DEFAULT_WORKSPACE  # root of everything a run writes (relative to the current directory)
    dataset: DatasetConfig = DatasetConfig()
    preprocess: PreprocessConfig = PreprocessConfig()
    dask: DaskConfig = DaskConfig()
    # a factory, not an instance: validating a model config imports the model registry (and torch), which
    # processes that only read data (Dask workers) should not pay for; validated like a given section, so that
    # load_config(check_models=False) skips the registry for the default too
    model: ModelConfig = Field(default_factory=dict, validate_default=True)
    train: TrainConfig = TrainConfig()
    encode: EncodeConfig = EncodeConfig()
    report: ReportConfig = ReportConfig()
    tracking: TrackingConfig = TrackingConfig()
    orchestration: OrchestrationConfig = OrchestrationConfig()
    transfer: TransferConfig = TransferConfig()

    @model_validator(mode="before")
    @classmethod
    def _default_registered_model(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        tracking = data.get("tracking") or {}
        if isinstance(tracking, dict) and "registered_model" not in tracking:
            dataset = data.get("dataset") or {}
            model = data.get("model") or {}
            if isinstance(dataset, dict) and isinstance(model, dict):
                name = dataset.get("name") or default_dataset_name(dataset.get("source", "digits"), dataset.get("path"))
                name = f"{name}-{model.get('name', 'vae_mlp')}"
                data = {**data, "tracking": {**tracking, "registered_model": name}}
        return data

    def config_hash(self) -> str:
        """Hash of the fully resolved config; logged as a tag so runs of one config can be found."""
        return stable_hash(self.model_dump(mode="json"))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def stable_hash(obj: Any, length: int = 16) -> str:
    """A short, stable hex digest of a JSON-serialisable object."""
    payload = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:length]


def load_config(
    path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (), check_models: bool = True
) -> Config:
    """Read a YAML config (or the built-in defaults when path is None), apply overrides, validate.

    Any problem raises ConfigError with one line naming the file or override, the key and what was expected.
    check_models=False leaves out the model registry's checks of model.name and model.params (they import torch).
    """
    tree, source, origins = read_config_tree(path, overrides)
    try:
        return Config.model_validate(tree, context={"check_models": check_models})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, origins)) from None


def _describe(exc: ValidationError, source: str, origins: dict[tuple[str, ...], str]) -> str:
    """Turn pydantic's first error into: '<file or --set>: <key>: <what was expected>, got <value>'."""
    err = exc.errors()[0]
    loc = tuple(str(p) for p in err["loc"])
    key = ".".join(loc) or "<top level>"
    origin = source
    for n in range(len(loc), 0, -1):
        if loc[:n] in origins:
            origin = origins[loc[:n]]
            break
    else:  # an error on a whole section caused by an override inside it
        inside = [o for keys, o in origins.items() if keys[: len(loc)] == loc]
        origin = inside[-1] if inside else source
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        msg = f"unknown key; expected one of: {', '.join(allowed)}"
    else:
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        msg = msg[0].lower() + msg[1:]
        if err["type"] == "model_type":
            msg = "expected a section of keys"
        if "input" in err and err["type"] not in ("missing", "value_error"):
            msg += f", got {err['input']!r}"
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{origin}: {key}: {msg}{suffix}"


def _allowed_keys(section: tuple[str, ...]) -> list[str]:
    model: type[BaseModel] = Config
    for part in section:
        field = model.model_fields.get(part)
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)
