"""The disentanglement evaluation of a latent table: its codes and ground-truth factor columns read from the table,
the `shapes` source as ground-truth data for the interventional metrics, a trained model as the representation,
and `evaluate_latent_space`, which the report and `latent disentangle` run. The metrics themselves are pure
functions in `latent.analysis.metrics`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from latent.analysis.metrics import (
    beta_vae_score,
    budget_sizes,
    disentanglement_scores,
    factorvae_score,
)
from latent.analysis.metrics.utils import RepresentationFunction
from latent.data.sources.shapes import FACTOR_NAMES, FACTOR_SIZES, IMAGE_SIZE, render_shapes
from latent.errors import DataError, LatentError

# ---- latent tables ------------------------------------------------------------------------------------------


def factor_columns(table_path: str | Path) -> list[str]:
    """The ground-truth factor columns (`<factor>_idx`) of a latent table, in table order."""
    from latent.tables import open_latent_dataset

    return [name for name in open_latent_dataset(table_path).schema.names if name.endswith("_idx")]


def load_codes_and_factors(
    table_path: str | Path, splits: tuple[str, ...] | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(codes (n, k) float32 from `z_mean`, factors (n, f) int64 from the `*_idx` columns, factor names) of a
    latent table, rows ordered by id (one consistent version of the table). A LatentError if the table has no
    factor columns (its dataset has no ground truth, e.g. digits)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from latent.tables import _read_snapshot, read_table_info

    table_path = Path(table_path)
    read_table_info(table_path)
    names = factor_columns(table_path)
    if not names:
        raise LatentError(
            f"{table_path}: the latent table has no ground-truth factor columns (*_idx); disentanglement metrics "
            "need a dataset with factors, such as dataset.source=shapes"
        )
    _, table = _read_snapshot(table_path, ["id", "z_mean", *names])
    if splits:
        table = table.filter(pc.is_in(table.column("split"), pa.array(list(splits))))
    if table.num_rows == 0:
        raise LatentError(f"{table_path}: no rows in splits {list(splits or [])}")
    table = table.sort_by("id")
    from latent.data.arrow import arrow_to_vectors

    codes = arrow_to_vectors(table.column("z_mean"), np.float32)
    factors = np.column_stack([table.column(n).to_numpy(zero_copy_only=False) for n in names]).astype(np.int64)
    return codes, factors, [n.removesuffix("_idx") for n in names]


def table_disentanglement_scores(
    table_path: str | Path, splits: tuple[str, ...] | None = None, seed: int = 0, **kwargs: Any
) -> dict[str, float]:
    """`disentanglement_scores` of a latent table's `z_mean` against its factor columns (all splits by default)."""
    codes, factors, _ = load_codes_and_factors(table_path, splits)
    return disentanglement_scores(codes, factors, seed=seed, **kwargs)


# ---- ground-truth data and representations for the interventional metrics ----------------------------------


class ShapesGroundTruth:
    """The `shapes` source's dSprites grid as ground-truth data: factors (shape 3, scale 6, orientation 40,
    pos_x 32, pos_y 32) sampled uniformly, observations rendered with `render_shapes` and turned into model inputs
    (n, 4096) float32 by the dataset's `FeatureTransform` (pixels × 1.0 for shapes), exactly as training and
    encoding read a shapes dataset table. Sampling draws from the random state as disentanglement_lib's DSprites
    does (one `randint` per factor), so the same seed samples the same factors."""

    factor_sizes = FACTOR_SIZES
    factor_names = FACTOR_NAMES
    observation_shape = (IMAGE_SIZE * IMAGE_SIZE,)

    def __init__(self, transform: Any = None) -> None:
        from latent.data.dataset import FeatureTransform

        self.transform = transform if transform is not None else FeatureTransform(scale=1.0)

    @classmethod
    def from_dataset(cls, dataset_path: str | Path) -> ShapesGroundTruth:
        """With the feature transform recorded in a shapes dataset table's manifest."""
        from latent.data.dataset import read_dataset_info

        info = read_dataset_info(dataset_path)
        if info.feature_dim != IMAGE_SIZE * IMAGE_SIZE:
            raise DataError(
                f"{dataset_path}: not a shapes dataset table (feature_dim {info.feature_dim}, not {IMAGE_SIZE**2})"
            )
        return cls(info.transform)

    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    @property
    def factors_num_values(self) -> list[int]:
        return list(self.factor_sizes)

    def sample_factors(self, num: int, random_state: np.random.RandomState) -> np.ndarray:
        factors = np.zeros((num, self.num_factors), dtype=np.int64)
        for j, size in enumerate(self.factor_sizes):
            factors[:, j] = random_state.randint(size, size=num)
        return factors

    def sample_observations_from_factors(self, factors: np.ndarray, random_state: Any = None) -> np.ndarray:
        from latent.data.arrow import vectors_to_arrow

        pixels = render_shapes(np.asarray(factors, dtype=np.int64))
        return self.transform.apply(vectors_to_arrow(pixels))

    def sample(self, num: int, random_state: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
        factors = self.sample_factors(num, random_state)
        return factors, self.sample_observations_from_factors(factors, random_state)

    def sample_observations(self, num: int, random_state: np.random.RandomState) -> np.ndarray:
        return self.sample(num, random_state)[1]


def model_representation(
    model: Any, tracking_uri: str | None = None, batch_size: int = 1024, device: str | None = None
) -> RepresentationFunction:
    """observations (n, ...) -> posterior means (n, latent_dim) float32 of a trained model: a module, a local model
    directory or an MLflow model URI (`models:/name/1`, `runs:/...`, with `tracking_uri`)."""
    import torch

    if isinstance(model, str | Path):
        from latent.models.io import load_logged_model

        model = load_logged_model(str(model), tracking_uri)
    model.eval()
    dev = torch.device(device) if device else next(model.parameters()).device

    def represent(observations: np.ndarray) -> np.ndarray:
        x = np.asarray(observations, dtype=np.float32).reshape(len(observations), -1)
        out = []
        with torch.inference_mode():
            for i in range(0, len(x), batch_size):
                mean, _ = model.encode(torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size])).to(dev))
                out.append(mean.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, model.config.latent_dim), np.float32)

    return represent


# ---- one evaluation of a latent space, as the report and `latent disentangle` run it ---------------------------


def is_shapes_dataset(dataset_path: str | Path) -> bool:
    from latent.data.dataset import read_manifest

    try:
        return read_manifest(dataset_path).source == "shapes"
    except DataError:
        return False


def evaluate_latent_space(
    table_path: str | Path,
    model: Any | None = None,
    dataset_path: str | Path | None = None,
    seed: int = 0,
    budget: int | str = 1000,
    interventional: bool = True,
) -> dict[str, float]:
    """Every metric that applies to a latent table with factor columns: MIG, SAP, modularity/explicitness and DCI
    on its rows, plus the FactorVAE and β-VAE scores when the table comes from the `shapes` source and a model is
    given (they render fresh samples with fixed factors and encode them through the model). Keys as in
    `disentanglement_scores`, plus `factorvae_*` and `beta_vae_*`."""
    sizes = budget_sizes(budget)
    codes, factors, _ = load_codes_and_factors(table_path)
    out = disentanglement_scores(codes, factors, seed=seed, metrics=("mig", "sap", "modularity"), **sizes["scores"])
    out.update(disentanglement_scores(codes, factors, seed=seed, metrics=("dci",), **sizes["dci"]))
    if interventional and model is not None and dataset_path is not None and is_shapes_dataset(dataset_path):
        truth = ShapesGroundTruth.from_dataset(dataset_path)
        represent = model_representation(model)
        out.update(factorvae_score(truth, represent, random_state=seed, **sizes["interventional"]))
        out.update(beta_vae_score(truth, represent, random_state=seed, **sizes["interventional"]))
    return out
