"""The `idx` source: MNIST IDX images + labels, plain or .gz."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

from latent.data.sources.base import (
    Plan,
    Rows,
    Source,
    check_finite,
    file_fingerprint,
    labels_array,
    register_source,
)
from latent.errors import DataError

IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx_header(path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    """(dtype, dims, header bytes) of an IDX file, checking the magic number and the length."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            head = fh.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in IDX_TYPES:
                raise DataError(f"{path}: not an IDX file (magic number {head.hex() or 'missing'})")
            ndim = head[3]
            dims = struct.unpack(f">{ndim}I", fh.read(4 * ndim))
            dtype = np.dtype(IDX_TYPES[head[2]])
            body = 0
            while chunk := fh.read(1 << 20):
                body += len(chunk)
    except (OSError, EOFError, struct.error) as exc:
        raise DataError(f"{path}: cannot be read as IDX ({exc})") from None
    expected = int(np.prod(dims)) * dtype.itemsize
    if body != expected:
        raise DataError(f"{path}: IDX header promises {dims} ({expected} bytes of data), the file has {body}")
    return dtype, dims, 4 + 4 * ndim


@register_source
class IdxSource(Source):
    name = "idx"

    def _paths(self) -> tuple[Path, Path | None]:
        images = Path(os.path.expanduser(self.cfg.path or ""))
        if not images.is_file():
            raise DataError(f"dataset.path {images}: file not found")
        labels = Path(os.path.expanduser(self.cfg.labels_path)) if self.cfg.labels_path else None
        if labels is not None and not labels.is_file():
            raise DataError(f"dataset.labels_path {labels}: file not found")
        return images, labels

    def fingerprint(self) -> str:
        images, labels = self._paths()
        return file_fingerprint([images, *([labels] if labels else [])], {})

    def plan(self, raw_dir: Path, shard_rows: int) -> Plan:
        images, labels = self._paths()
        dtype, dims, _ = read_idx_header(images)
        if len(dims) < 2:
            raise DataError(f"{images}: IDX images need at least 2 dimensions, got {dims}")
        if labels is not None:
            _, ldims, _ = read_idx_header(labels)
            if ldims[0] != dims[0]:
                raise DataError(f"{labels}: {ldims[0]} labels for {dims[0]} images in {images}")
        geometry = (1, dims[1], dims[2]) if len(dims) == 3 else (0, 1, int(np.prod(dims[1:])))
        parts = [[s, min(s + shard_rows, dims[0])] for s in range(0, dims[0], shard_rows)]
        return Plan(parts, geometry, 1 / 255 if dtype == np.uint8 else 1.0, dims[0])

    def _read_rows(self, path: Path, start: int, stop: int) -> np.ndarray:
        dtype, dims, header = read_idx_header(path)
        row = int(np.prod(dims[1:])) * dtype.itemsize
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            fh.seek(header + start * row)
            data = fh.read((stop - start) * row)
        return np.frombuffer(data, dtype=dtype).reshape(stop - start, -1)

    def read(self, partition: list) -> Rows:
        images, labels = self._paths()
        start, stop = partition
        x = self._read_rows(images, start, stop)
        x = x if x.dtype == np.uint8 else x.astype(np.float32)
        check_finite(x, str(images))
        y = self._read_rows(labels, start, stop).reshape(-1) if labels else None
        return Rows([f"{images.name.split('.')[0]}-{i:08d}" for i in range(start, stop)], x, labels_array(y, len(x)))
