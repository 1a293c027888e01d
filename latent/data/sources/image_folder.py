"""The `image_folder` source: image files under a folder (class = first sub-folder), decoded with Pillow."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from latent.config import stable_hash
from latent.data.sources.base import (
    Plan,
    Rows,
    Source,
    register_source,
)
from latent.errors import DataError


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

    def units(self) -> dict[str, list[int]]:
        return {rel: [size, mtime] for rel, size, mtime in self._listing()}

    def partition_units(self, partition: list) -> list[str]:
        return [rel for rel, _ in partition]

    def plan_units(self, raw_dir: Path, shard_rows: int, units: list[str], previous: Plan) -> Plan:
        """New and changed files, brought to the size and mode of the first plan; a new class (sub-folder) is
        numbered after the existing ones, so that the labels of rows already encoded keep their meaning."""
        classes = list(previous.info["classes"])
        parts_of = [rel.split(os.sep) for rel in units]
        classes += sorted({p[0] for p in parts_of if len(p) > 1} - set(classes))
        index = {c: i for i, c in enumerate(classes)}
        entries = [[rel, index[p[0]] if len(p) > 1 else None] for rel, p in zip(units, parts_of, strict=True)]
        parts = [entries[i : i + shard_rows] for i in range(0, len(entries), shard_rows)]
        return Plan(parts, tuple(previous.geometry), previous.scale, None, {**previous.info, "classes": classes})

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

        root, (height, width), mode = Path(self.plan_info["root"]), self.plan_info["size"], self.plan_info["mode"]
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
