"""The `npz` source: NumPy .npz files with named arrays (never unpickled)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from latent.data.sources.base import (
    Plan,
    Rows,
    Source,
    check_finite,
    file_fingerprint,
    file_units,
    labels_array,
    matching_files,
    register_source,
)
from latent.errors import DataError


def _npy_header(zf: zipfile.ZipFile, member: str, path: Path) -> tuple[tuple[int, ...], np.dtype]:
    with zf.open(member) as fh:
        version = np.lib.format.read_magic(fh)  # then the header alone: no data is read
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = reader(fh)
    if dtype.hasobject:
        raise DataError(f"{path}: array {member[:-4]!r} holds Python objects; only numeric arrays are read")
    return shape, dtype


@register_source
class NpzSource(Source):
    name = "npz"

    def fingerprint(self) -> str:
        return file_fingerprint(
            matching_files(self.cfg.path or "", ".npz files"), {"x": self.cfg.x_key, "y": self.cfg.y_key}
        )

    def units(self) -> dict[str, list[int]]:
        return file_units(matching_files(self.cfg.path or "", ".npz files"))

    def partition_units(self, partition: list) -> list[str]:
        return [str(Path(partition[0]).resolve())]

    def plan_units(self, raw_dir: Path, shard_rows: int, units: list[str], previous: Plan) -> Plan:
        plan = self._plan_files([Path(u) for u in units], shard_rows)
        if tuple(plan.geometry) != tuple(previous.geometry):
            raise DataError(
                f"{units[0]}: rows of geometry {plan.geometry} differ from earlier files' {previous.geometry}"
            )
        return plan

    def plan(self, raw_dir: Path, shard_rows: int) -> Plan:
        return self._plan_files(matching_files(self.cfg.path or "", ".npz files"), shard_rows)

    def _plan_files(self, files: list[Path], shard_rows: int) -> Plan:
        parts, geometry, total, scale = [], None, 0, 1.0
        for path in files:
            try:
                with zipfile.ZipFile(path) as zf:
                    members = set(zf.namelist())
                    if f"{self.cfg.x_key}.npy" not in members:
                        raise DataError(f"{path}: no array {self.cfg.x_key!r} (has {sorted(m[:-4] for m in members)})")
                    shape, dtype = _npy_header(zf, f"{self.cfg.x_key}.npy", path)
                    if self.cfg.y_key:
                        if f"{self.cfg.y_key}.npy" not in members:
                            raise DataError(f"{path}: no label array {self.cfg.y_key!r}")
                        y_shape, _ = _npy_header(zf, f"{self.cfg.y_key}.npy", path)
                        if y_shape[:1] != shape[:1]:
                            raise DataError(f"{path}: {y_shape[0] if y_shape else 0} labels for {shape[0]} rows")
            except zipfile.BadZipFile:
                raise DataError(f"{path}: not a valid .npz (zip) file") from None
            if len(shape) < 2 or shape[0] == 0:
                raise DataError(f"{path}: array {self.cfg.x_key!r} has shape {shape}; expected (rows, ...) with rows")
            if len(shape) == 4:
                g = (shape[3], shape[1], shape[2])
            elif len(shape) == 3:
                g = (1, shape[1], shape[2])
            else:
                g = (0, 1, int(np.prod(shape[1:])))
            if geometry is not None and g != geometry:
                raise DataError(f"{path}: rows of shape {shape[1:]} differ from earlier files' {geometry}")
            geometry = g
            scale = 1 / 255 if dtype == np.uint8 else 1.0
            parts += [[str(path), s, min(s + shard_rows, shape[0])] for s in range(0, shape[0], shard_rows)]
            total += shape[0]
        return Plan(parts, geometry, scale, total)

    def read(self, partition: list) -> Rows:
        path, start, stop = Path(partition[0]), partition[1], partition[2]
        with np.load(path, allow_pickle=False) as data:
            x = data[self.cfg.x_key][start:stop]
            y = data[self.cfg.y_key][start:stop] if self.cfg.y_key else None
        x = x.reshape(len(x), -1)
        if x.dtype != np.uint8:
            if x.dtype.kind not in "fiub":
                raise DataError(f"{path}: array {self.cfg.x_key!r} has non-numeric dtype {x.dtype}")
            x = x.astype(np.float32)
            check_finite(x, f"{path} [{self.cfg.x_key}]")
        return Rows([f"{path.stem}-{i:08d}" for i in range(start, stop)], x, labels_array(y, len(x)))
