"""Dataset sources: each lists its data at ingest (a plan of partitions) and decodes one partition on a Dask
worker at preprocessing. Registered by `dataset.source`.

| source       | what it reads                                                                 |
|--------------|-------------------------------------------------------------------------------|
| digits       | scikit-learn's bundled 8×8 digits                                              |
| shapes       | the dSprites grid, generated: 3 shapes × 6 scales × 40 orientations × 32 × 32   |
| image_folder | image files under a folder (class = first sub-folder), decoded with Pillow      |
| npz          | NumPy .npz files with named arrays (never unpickled)                           |
| idx          | MNIST IDX images + labels, plain or .gz                                        |
| tabular      | CSV or Parquet files: numeric feature columns and an optional label column     |

Every problem with the input is a DataError naming the file and what was wrong.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import os
import stat
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from latent.config import DatasetConfig, stable_hash
from latent.errors import DataError


@dataclass
class Rows:
    """A decoded partition: ids, features (n, d) as uint8 or float32, labels (nullable), extra columns."""

    ids: list[str]
    x: np.ndarray
    labels: pa.Array
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason), image folders with skip


@dataclass
class Plan:
    """What ingest found: partitions for the workers and the data's geometry."""

    partitions: list[Any]
    geometry: tuple[int, int, int]  # channels, height, width (0, 1, d for plain features)
    scale: float  # stored value × scale = model input (1/255 for 8-bit pixels)
    rows: int | None
    info: dict[str, Any] = field(default_factory=dict)


class Source:
    name: ClassVar[str]

    def __init__(self, cfg: DatasetConfig) -> None:
        self.cfg = cfg

    def fingerprint(self) -> str:
        raise NotImplementedError

    def plan(self, raw_dir: Path, shard_rows: int) -> Plan:
        raise NotImplementedError

    def read(self, partition: Any) -> Rows:
        raise NotImplementedError


SOURCES: dict[str, type[Source]] = {}


def register_source(cls: type[Source]) -> type[Source]:
    SOURCES[cls.name] = cls
    return cls


def get_source(cfg: DatasetConfig) -> Source:
    return SOURCES[cfg.source](cfg)


def _files(pattern: str, what: str) -> list[Path]:
    """Files matching a path or glob, sorted; an error naming the pattern if none."""
    paths = sorted(Path(p) for p in glob.glob(os.path.expanduser(pattern), recursive=True))
    files = [p for p in paths if p.is_file()]
    if not files:
        raise DataError(f"dataset.path {pattern}: no {what} found")
    return files


def _file_fingerprint(files: list[Path], options: dict) -> str:
    """Paths + sizes + modification times (fast), with the options that shape decoding."""
    stats = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return stable_hash({"files": stats, "options": options})


def _labels(values: np.ndarray | None, n: int) -> pa.Array:
    if values is None:
        return pa.nulls(n, pa.int64())
    return pa.array(np.asarray(values, dtype=np.int64))


def _check_finite(x: np.ndarray, where: str) -> None:
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        raise DataError(f"{where}: non-finite value {x[tuple(bad)]} at row {bad[0]}")


# ---- digits --------------------------------------------------------------------------------------------------


@register_source
class DigitsSource(Source):
    name = "digits"

    def fingerprint(self) -> str:
        import sklearn

        return stable_hash({"source": "digits", "sklearn": sklearn.__version__})

    def plan(self, raw_dir: Path, shard_rows: int) -> Plan:
        from latent.data.ingest import write_digits_raw

        raw = write_digits_raw(raw_dir)
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(raw).metadata
        group_rows = meta.row_group(0).num_rows
        per = max(1, round(shard_rows / group_rows))
        groups = list(range(meta.num_row_groups))
        return Plan(
            [groups[i : i + per] for i in range(0, len(groups), per)],
            (1, 8, 8),
            1.0 / 16,
            meta.num_rows,
            {"raw": raw.name},
        )

    def read(self, partition: list[int]) -> Rows:
        import pyarrow.parquet as pq

        from latent.data.arrow import arrow_to_vectors

        table = pq.ParquetFile(self._raw).read_row_groups(partition)
        pixels = arrow_to_vectors(table.column("pixels"), np.uint8)
        return Rows(table.column("id").to_pylist(), pixels, table.column("label").combine_chunks())

    _raw: str = ""


# ---- shapes (dSprites) ---------------------------------------------------------------------------------------

SHAPES = ("square", "ellipse", "heart")
SHAPE_FACTORS = {"shape": 3, "scale": 6, "orientation": 40, "pos_x": 32, "pos_y": 32}


def shapes_factor_values(indices: np.ndarray) -> dict[str, np.ndarray]:
    """Factor values of dSprites grid indices (n, 5): scale in [0.5, 1], orientation in [0, 2π), positions in [0, 1]."""
    return {
        "shape": indices[:, 0].astype(np.float32),
        "scale": np.linspace(0.5, 1.0, 6, dtype=np.float32)[indices[:, 1]],
        "orientation": (2 * np.pi * indices[:, 2] / 40).astype(np.float32),
        "pos_x": np.linspace(0.0, 1.0, 32, dtype=np.float32)[indices[:, 3]],
        "pos_y": np.linspace(0.0, 1.0, 32, dtype=np.float32)[indices[:, 4]],
    }


def render_shapes(indices: np.ndarray, size: int = 64, chunk: int = 512) -> np.ndarray:
    """Binary size×size images (n, size²) for dSprites grid indices (n, 5), rendered `chunk` at a time so that a
    worker's memory does not grow with the partition."""
    if len(indices) > chunk:
        return np.concatenate(
            [render_shapes(indices[i : i + chunk], size, chunk) for i in range(0, len(indices), chunk)]
        )
    values = shapes_factor_values(indices)
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    gy, gx = np.meshgrid(coords, coords, indexing="ij")
    n = len(indices)
    margin = 0.2  # the largest shape stays inside the image wherever it is placed
    cx = (margin + (1 - 2 * margin) * values["pos_x"])[:, None, None]
    cy = (margin + (1 - 2 * margin) * values["pos_y"])[:, None, None]
    radius = (0.16 * values["scale"])[:, None, None]
    theta = values["orientation"][:, None, None]
    dx, dy = gx[None] - cx, gy[None] - cy
    u = (np.cos(theta) * dx + np.sin(theta) * dy) / radius
    v = (-np.sin(theta) * dx + np.cos(theta) * dy) / radius
    out = np.zeros((n, size, size), dtype=bool)
    kind = indices[:, 0]
    square = kind == 0
    out[square] = (np.abs(u[square]) <= 0.85) & (np.abs(v[square]) <= 0.85)
    ellipse = kind == 1
    out[ellipse] = (u[ellipse] / 1.0) ** 2 + (v[ellipse] / 0.5) ** 2 <= 1.0
    heart = kind == 2
    hu, hv = u[heart] * 1.2, -v[heart] * 1.2 + 0.25  # the implicit heart curve, upright, centred
    out[heart] = (hu**2 + hv**2 - 1) ** 3 - hu**2 * hv**3 <= 0
    return out.reshape(n, size * size).astype(np.uint8)


@register_source
class ShapesSource(Source):
    name = "shapes"
    GRID = 3 * 6 * 40 * 32 * 32

    def fingerprint(self) -> str:
        return stable_hash({"source": "shapes", "v": 1, **self.cfg.shapes.model_dump()})

    def plan(self, raw_dir: Path, shard_rows: int) -> Plan:
        n = self.cfg.shapes.n_samples
        total = self.GRID if n is None else min(n, self.GRID)
        parts = [[start, min(start + shard_rows, total)] for start in range(0, total, shard_rows)]
        return Plan(parts, (1, 64, 64), 1.0, total)

    def flat_indices(self, start: int, stop: int) -> np.ndarray:
        n = self.cfg.shapes.n_samples
        if n is None or n >= self.GRID:
            return np.arange(start, stop)
        rng = np.random.default_rng(self.cfg.shapes.seed)
        return np.sort(rng.choice(self.GRID, n, replace=False))[start:stop]

    def read(self, partition: list[int]) -> Rows:
        flat = self.flat_indices(*partition)
        indices = np.stack(np.unravel_index(flat, tuple(SHAPE_FACTORS.values())), axis=1)
        values = shapes_factor_values(indices)
        extra = {
            **{f"{k}_idx": indices[:, i].astype(np.int64) for i, k in enumerate(SHAPE_FACTORS)},
            **{f"{k}_value": v for k, v in values.items()},
        }
        return Rows([f"shapes-{i:06d}" for i in flat], render_shapes(indices), _labels(indices[:, 0], len(flat)), extra)


# ---- image folders ---------------------------------------------------------------------------------------------


def _link_outside(root: str | Path, path: str | Path) -> str | None:
    """Why a link in an image folder is not read: it leads outside the folder. Files are read only from inside
    dataset.path (links to folders are not followed at all), so a dataset cannot pull in files from elsewhere."""
    real_root, real = os.path.realpath(root), os.path.realpath(path)
    if os.path.commonpath([real_root, real]) == real_root:
        return None
    return f"{path}: a link to {real}, outside the folder {root}; only files inside dataset.path are read"


GEOMETRY_SAMPLE = 1000  # image headers read at ingest to choose the folder's size and mode


def _exif_rotated(img: Any) -> bool:
    """Whether the EXIF orientation turns the image by 90 or 270 degrees (so height and width swap)."""
    try:
        return img.getexif().get(0x0112, 1) in (5, 6, 7, 8)
    except Exception:
        return False


@register_source
class ImageFolderSource(Source):
    name = "image_folder"

    def _root(self) -> Path:
        root = Path(os.path.expanduser(self.cfg.path or ""))
        if not root.is_dir():
            raise DataError(f"dataset.path {self.cfg.path}: not a folder")
        return root

    def _listing(self) -> list[tuple[str, int, int]]:
        """(relative path, size, mtime) of every file under the folder, hidden ones aside; one stat per file."""
        cached = self.__dict__.get("_listed")
        if cached is not None:
            return cached
        root = self._root()
        files = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if name.startswith("."):
                    continue
                full = os.path.join(dirpath, name)
                st = os.lstat(full)  # one call per file; the (rare) links are looked at more closely
                if stat.S_ISLNK(st.st_mode):
                    try:
                        st = os.stat(full)
                        problem = _link_outside(root, full)
                    except OSError as exc:
                        problem = f"{full}: a broken link ({exc.strerror})"
                    if problem is not None:
                        if self.cfg.image.on_bad_file == "error":
                            raise DataError(f"{problem} (set dataset.image.on_bad_file: skip to leave it out)")
                        files.append((os.path.relpath(full, root), st.st_size, st.st_mtime_ns))  # read() skips it
                        continue
                if stat.S_ISREG(st.st_mode):
                    files.append((os.path.relpath(full, root), st.st_size, st.st_mtime_ns))
        if not files:
            raise DataError(f"dataset.path {root}: the folder holds no files")
        files.sort()
        self.__dict__["_listed"] = files
        return files

    def fingerprint(self) -> str:
        return stable_hash(
            {
                "root": str(self._root().resolve()),
                "files": self._listing(),
                "options": self.cfg.image.model_dump(),
                "layout": "chw",
            }
        )

    def plan(self, raw_dir: Path, shard_rows: int) -> Plan:
        root = self._root()
        listing = self._listing()
        parts_of = [rel.split(os.sep) for rel, _, _ in listing]
        classes = sorted({p[0] for p in parts_of if len(p) > 1})
        index = {c: i for i, c in enumerate(classes)}
        entries = [[rel, index[p[0]] if len(p) > 1 else None] for (rel, _, _), p in zip(listing, parts_of, strict=True)]
        files = [root / rel for rel, _, _ in listing]
        geometry = self._geometry(root, files)
        size, mode = geometry["size"], geometry["mode"]
        channels = 3 if mode == "rgb" else 1
        parts = [entries[i : i + shard_rows] for i in range(0, len(entries), shard_rows)]
        return Plan(
            parts,
            (channels, size[0], size[1]),
            1 / 255,
            None,
            {"root": str(root), "classes": classes, "size": list(size), "mode": mode, "image": geometry},
        )

    def _geometry(self, root: Path, files: list[Path]) -> dict[str, Any]:
        """The size and mode every image is brought to, and how, from the headers of up to GEOMETRY_SAMPLE files
        spread evenly over the folder (Pillow reads only the header here; files it cannot open are ignored now and
        quarantined or refused when decoded).

        Size: `dataset.image.size` when set; else the folder's own size when every sampled image has it; else a
        square of the median short side, capped at `max_side`. Mode: `dataset.image.mode`; null: rgb if any sampled
        image is in colour. Images of another aspect ratio are centre-cropped (`fit: crop`) or stretched."""
        from PIL import Image

        step = max(1, len(files) // GEOMETRY_SAMPLE)
        sizes, modes = [], set()
        for f in files[::step]:
            if f.is_symlink() and _link_outside(root, f):
                continue
            try:
                with Image.open(f) as img:
                    height, width = img.height, img.width
                    if _exif_rotated(img):
                        height, width = width, height
                    sizes.append((height, width))
                    modes.add(img.mode)
            except Exception:
                continue
        if not sizes:
            raise DataError(f"dataset.path {root}: no readable image in the folder")
        opts = self.cfg.image
        found = sorted(set(sizes))
        described = f"{len(found)} sizes, sides {min(min(s) for s in found)}-{max(max(s) for s in found)} px"
        if opts.size is not None:
            size, rule = list(opts.size), "dataset.image.size"
        elif len(found) == 1:
            size, rule = list(found[0]), "the folder's own size"
        else:
            side = min(opts.max_side, int(np.median([min(s) for s in sizes])))
            size, rule = [side, side], f"median short side of {described}, capped at {opts.max_side}"
        mode = opts.mode or ("rgb" if modes - {"1", "L", "LA", "I", "I;16", "F"} else "grayscale")
        transform = "EXIF orientation applied, converted to " + ("RGB" if mode == "rgb" else "grayscale (L)")
        if len(found) > 1 or found[0] != tuple(size):
            how = "centre-cropped to the aspect ratio, then resized" if opts.fit == "crop" else "stretched"
            transform += f", {how} to {size[0]}x{size[1]} (bilinear)"
        return {"size": size, "mode": mode, "rule": rule, "transform": transform, "sizes_found": described}

    def read(self, partition: list) -> Rows:
        from PIL import Image, UnidentifiedImageError

        root, (height, width), mode = Path(self._info["root"]), self._info["size"], self._info["mode"]
        ids, images, labels, skipped = [], [], [], []
        for rel, label in partition:
            path = root / rel
            try:
                outside = _link_outside(root, path) if path.is_symlink() else None
                if outside:
                    raise DataError(outside)
                with Image.open(path) as img:
                    img.load()
                    pixels = np.asarray(self._fitted(img, height, width, mode), dtype=np.uint8)
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError, DataError) as exc:
                reason = str(exc) if isinstance(exc, DataError) else f"{path}: not a readable image ({exc})"
                if self.cfg.image.on_bad_file == "error":
                    raise DataError(reason) from None
                skipped.append((str(path), reason))
                continue
            ids.append(rel)
            # rows are stored channels-first (C·H·W), the layout the plan's geometry and the conv models use
            images.append((pixels.transpose(2, 0, 1) if pixels.ndim == 3 else pixels).reshape(-1))
            labels.append(label)
        x = np.stack(images) if images else np.zeros((0, height * width * (3 if mode == "rgb" else 1)), np.uint8)
        label_array = pa.array(labels, pa.int64())
        return Rows(ids, x, label_array, skipped=skipped)

    def _fitted(self, img: Any, height: int, width: int, mode: str) -> Any:
        from PIL import Image, ImageOps

        img = ImageOps.exif_transpose(img).convert("RGB" if mode == "rgb" else "L")
        if (img.height, img.width) == (height, width):
            return img
        if self.cfg.image.fit == "crop":
            return ImageOps.fit(img, (width, height), Image.Resampling.BILINEAR)
        return img.resize((width, height), Image.Resampling.BILINEAR)

    _info: ClassVar[dict] = {}


# ---- npz and idx ---------------------------------------------------------------------------------------------


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
        return _file_fingerprint(_files(self.cfg.path or "", ".npz files"), {"x": self.cfg.x_key, "y": self.cfg.y_key})

    def plan(self, raw_dir: Path, shard_rows: int) -> Plan:
        parts, geometry, total, scale = [], None, 0, 1.0
        for path in _files(self.cfg.path or "", ".npz files"):
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
            _check_finite(x, f"{path} [{self.cfg.x_key}]")
        return Rows([f"{path.stem}-{i:08d}" for i in range(start, stop)], x, _labels(y, len(x)))


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
        return _file_fingerprint([images, *([labels] if labels else [])], {})

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
        _check_finite(x, str(images))
        y = self._read_rows(labels, start, stop).reshape(-1) if labels else None
        return Rows([f"{images.name.split('.')[0]}-{i:08d}" for i in range(start, stop)], x, _labels(y, len(x)))


# ---- tabular ---------------------------------------------------------------------------------------------------


_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"


def _refuse_numbers_mixed_with_text(table: pa.Table, column: str, path: Path) -> None:
    """A text column whose other values are numbers is a numeric column with a typo: refuse it rather than leave a
    feature out without a word (a column of text only, such as names, is simply not a feature)."""
    import pyarrow.compute as pc

    values = table.column(column)
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        return
    numeric = pc.fill_null(pc.match_substring_regex(values, _NUMBER), True).to_numpy(zero_copy_only=False)
    if numeric.any() and not numeric.all():
        row = int(np.flatnonzero(~numeric)[0])
        raise DataError(
            f"{path}: column {column!r} holds numbers and text (row {row}: {values[row].as_py()!r} is not a number); "
            "fix the value, or list the feature columns in dataset.tabular.features"
        )


@register_source
class TabularSource(Source):
    name = "tabular"

    def _files(self) -> list[Path]:
        files = _files(self.cfg.path or "", "CSV or Parquet files")
        for f in files:
            if f.suffix.lower() not in (".csv", ".parquet", ".pq"):
                raise DataError(f"{f}: expected a .csv or .parquet file")
        return files

    def fingerprint(self) -> str:
        return _file_fingerprint(self._files(), self.cfg.tabular.model_dump())

    def _frame(self, path: Path):
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path) if path.suffix.lower() != ".csv" else pacsv.read_csv(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"{path}: cannot be read ({' '.join(str(exc).split())[:200]})") from None

    def _columns(self, table: pa.Table, path: Path) -> list[str]:
        t = self.cfg.tabular
        if t.label and t.label not in table.column_names:
            raise DataError(f"{path}: no label column {t.label!r}")
        if t.features is None:
            for c in table.column_names:
                if c != t.label:
                    _refuse_numbers_mixed_with_text(table, c, path)
            return [
                c
                for c in table.column_names
                if (c != t.label and pa.types.is_floating(table.schema.field(c).type))
                or (c != t.label and pa.types.is_integer(table.schema.field(c).type))
            ]
        for c in t.features:
            if c not in table.column_names:
                raise DataError(f"{path}: no feature column {c!r}")
            if not (
                pa.types.is_floating(table.schema.field(c).type)
                or pa.types.is_integer(table.schema.field(c).type)
                or pa.types.is_null(table.schema.field(c).type)
            ):
                raise DataError(f"{path}: feature column {c!r} is not numeric ({table.schema.field(c).type})")
        return list(t.features)

    def plan(self, raw_dir: Path, shard_rows: int) -> Plan:
        files = self._files()
        columns, total = None, 0
        for f in files:
            table = self._frame(f)
            if table.num_rows == 0:
                raise DataError(f"{f}: no rows (only a header)" if table.num_columns else f"{f}: no rows")
            cols = self._columns(table, f)
            if not cols:
                raise DataError(f"{f}: no numeric feature columns")
            if columns is not None and cols != columns:
                raise DataError(f"{f}: feature columns {cols} differ from earlier files' {columns}")
            columns = cols
            total += table.num_rows
        return Plan([[str(f)] for f in files], (0, 1, len(columns)), 1.0, total, {"features": columns})

    def read(self, partition: list) -> Rows:
        path = Path(partition[0])
        table = self._frame(path)
        features = self._info["features"]
        x = np.column_stack([table.column(c).cast(pa.float64()).to_numpy(zero_copy_only=False) for c in features])
        x = x.astype(np.float32)
        if np.isinf(x).any():
            row, col = np.argwhere(np.isinf(x))[0]
            raise DataError(f"{path}: infinite value in column {features[col]!r} at row {row}")
        if self.cfg.tabular.missing == "error" and np.isnan(x).any():
            row, col = np.argwhere(np.isnan(x))[0]
            raise DataError(
                f"{path}: missing value in column {features[col]!r} at row {row} "
                "(set dataset.tabular.missing: median to fill it)"
            )
        label = self.cfg.tabular.label
        y = None
        if label:
            column = table.column(label)
            if not pa.types.is_integer(column.type):
                raise DataError(f"{path}: label column {label!r} must hold integers, got {column.type}")
            y = column.to_numpy(zero_copy_only=False)
        digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
        return Rows([f"{path.stem}-{digest}-{i:08d}" for i in range(len(x))], x, _labels(y, len(x)))

    _info: ClassVar[dict] = {}


def plan_to_json(plan: Plan, cfg: DatasetConfig, fingerprint: str) -> str:
    return json.dumps(
        {
            "dataset": cfg.model_dump(mode="json"),
            "fingerprint": fingerprint,
            "partitions": plan.partitions,
            "geometry": list(plan.geometry),
            "scale": plan.scale,
            "rows": plan.rows,
            "info": plan.info,
        },
        indent=1,
    )


def source_from_plan(plan: dict, plan_dir: Path) -> tuple[Source, Plan]:
    """Rebuild the source (with what ingest learned) from a plan file's contents, e.g. on a Dask worker."""
    cfg = DatasetConfig.model_validate(plan["dataset"])
    source = get_source(cfg)
    source._info = plan["info"]  # type: ignore[attr-defined]
    source._raw = str(plan_dir / plan["info"]["raw"]) if plan["info"].get("raw") else ""  # type: ignore[attr-defined]
    return source, Plan(plan["partitions"], tuple(plan["geometry"]), plan["scale"], plan["rows"], plan["info"])


# sources in modules of their own register themselves when imported
from latent.data import molecules as _molecules  # noqa: E402, F401
from latent.data import text as _text  # noqa: E402, F401
