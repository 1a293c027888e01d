"""A latent table bound to the model and the dataset it came from: the object every exploration and the report
work on (codes by id, the inputs of rows, decoding, and whether rows are images)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import torch

from latent.data.dataset import DatasetInfo, is_dataset_table, read_dataset_info, shard_files
from latent.errors import LatentError
from latent.models.io import load_logged_model
from latent.tables import LatentTable, latest_table, load_latent_arrays, read_table_info
from latent.workspace import Workspace


def image_geometry(dataset: DatasetInfo) -> tuple[int, int, int] | None:
    """(channels, height, width) when the dataset's rows are grayscale or RGB images (pixels in [0, 1], stored
    channels-first), else None. The one rule for "these rows are images" in figures, grids and thumbnails."""
    c, h, w = (int(dataset.shape.get(k, 0)) for k in ("channels", "height", "width"))
    if c in (1, 3) and h > 1 and w > 1 and h * w * c == dataset.feature_dim and dataset.transform.mean is None:
        return c, h, w
    return None


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
        """(channels, height, width) when the rows are images (`image_geometry`), else None."""
        return image_geometry(self.dataset)

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
        files = [str(p) for p in shard_files(self.dataset.path)]
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
    if not is_dataset_table(dataset_path):
        raise LatentError(
            f"{table.path}: its dataset table {dataset_path} is gone; rerun `latent preprocess` with the same config"
        )
    model = load_logged_model(table.info["model"]["uri"], tracking_uri)
    model.eval()
    return LatentSpace(table, read_dataset_info(dataset_path), model, load_latent_arrays(table.path))
