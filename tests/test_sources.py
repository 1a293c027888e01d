"""Every dataset source on small fixtures the tests make, and every kind of bad input."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from latent.config import DaskConfig, load_config
from latent.data import ingest, load_dataset_arrays, preprocess, read_dataset_info
from latent.data.sources.shapes import render_shapes
from latent.errors import DataError
from latent.workspace import Workspace
from tests.helpers import ROOT

pytestmark = pytest.mark.integration

DASK = DaskConfig(n_workers=1, threads_per_worker=2)


def build(tmp_path: Path, *sets: str):
    cfg = load_config(ROOT / "conf" / "default.yaml", [f"workspace={tmp_path / 'ws'}", *sets])
    ws = Workspace.at(cfg.workspace)
    ing = ingest(cfg.dataset, ws, shard_rows=cfg.preprocess.shard_rows)
    pre = preprocess(ing.raw_path, ing.fingerprint, cfg.preprocess, DASK, ws)
    return ws, pre, read_dataset_info(pre.dataset_path)


def no_dataset_left(tmp_path: Path) -> bool:
    datasets = tmp_path / "ws" / "datasets"
    return not datasets.exists() or not any(datasets.iterdir())


# ---- npz -------------------------------------------------------------------------------------------------------


def test_npz_images_and_labels(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "a.npz", x=rng.integers(0, 256, (30, 8, 8), dtype=np.uint8), y=np.arange(30) % 3)
    np.savez(tmp_path / "b.npz", x=rng.integers(0, 256, (20, 8, 8), dtype=np.uint8), y=np.arange(20) % 3)
    _, _, info = build(tmp_path, "dataset.source=npz", f"dataset.path={tmp_path}/*.npz")
    assert info.rows == 50 and info.shape == {"channels": 1, "height": 8, "width": 8}
    _, x, labels = load_dataset_arrays(info.path)
    assert x.dtype == np.float32 and x.min() >= 0 and x.max() <= 1 and sorted(set(labels)) == [0, 1, 2]


@pytest.mark.parametrize(
    ("arrays", "fragment"),
    [
        ({"x": np.array([{"a": 1}, None], dtype=object)}, "holds Python objects"),
        ({"x": np.zeros((4, 3), np.float32), "y": np.zeros(5)}, "5 labels for 4 rows"),
        ({"x": np.array([[0.0, np.nan]], np.float32), "y": np.zeros(1)}, "non-finite value"),
        ({"z": np.zeros((4, 3))}, "no array 'x'"),
    ],
)
def test_npz_bad_input_names_the_file(tmp_path, arrays, fragment):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError) as err:
        build(tmp_path, "dataset.source=npz", f"dataset.path={path}")
    assert str(path) in str(err.value) and fragment in str(err.value)
    assert no_dataset_left(tmp_path)


# ---- idx -------------------------------------------------------------------------------------------------------


def write_idx(
    path: Path, array: np.ndarray, gz: bool = False, truncate: int = 0, magic: bytes = b"\x00\x00\x08"
) -> Path:
    data = magic + bytes([array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()
    data = data[: len(data) - truncate] if truncate else data
    (gzip.open if gz else open)(path, "wb").write(data)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_idx_images_and_labels_plain_and_gzip(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 6, 6))
    suffix = ".gz" if gz else ""
    img = write_idx(tmp_path / f"images-idx3-ubyte{suffix}", images, gz)
    lab = write_idx(tmp_path / f"labels-idx1-ubyte{suffix}", np.arange(40) % 10, gz)
    _, _, info = build(
        tmp_path, "dataset.source=idx", f"dataset.path={img}", f"dataset.labels_path={lab}", "preprocess.shard_rows=16"
    )
    ids, x, labels = load_dataset_arrays(info.path)
    order = np.argsort(ids)
    np.testing.assert_allclose(x[order], images.reshape(40, -1) / 255, rtol=1e-6)
    np.testing.assert_array_equal(labels[order], np.arange(40) % 10)


def test_idx_bad_magic_length_and_label_count(tmp_path):
    images = np.zeros((10, 4, 4))
    bad_magic = write_idx(tmp_path / "magic", images, magic=b"\x01\x02\x08")
    with pytest.raises(DataError, match="not an IDX file"):
        build(tmp_path, "dataset.source=idx", f"dataset.path={bad_magic}")
    short = write_idx(tmp_path / "short", images, truncate=7)
    with pytest.raises(DataError, match=r"promises \(10, 4, 4\) \(160 bytes of data\), the file has 153"):
        build(tmp_path, "dataset.source=idx", f"dataset.path={short}")
    good = write_idx(tmp_path / "good", images)
    labels = write_idx(tmp_path / "labels", np.zeros(9))
    with pytest.raises(DataError, match=f"{labels}: 9 labels for 10 images"):
        build(tmp_path, "dataset.source=idx", f"dataset.path={good}", f"dataset.labels_path={labels}")
    assert no_dataset_left(tmp_path)


# ---- tabular ---------------------------------------------------------------------------------------------------


def write_csv(path: Path, rows: int, missing: bool = False, text: bool = False) -> Path:
    rng = np.random.default_rng(0)
    lines = ["a,b,c,label"]
    for i in range(rows):
        a = "" if missing and i == 3 else f"{rng.normal(5, 2):.5f}"
        c = "high" if text and i == 2 else f"{rng.normal(-1, 1):.5f}"
        lines.append(f"{a},{rng.normal():.5f},{c},{i % 2}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_tabular_standardises_with_train_split_statistics(tmp_path):
    write_csv(tmp_path / "part1.csv", 300)
    write_csv(tmp_path / "part2.csv", 200)
    _, _, info = build(
        tmp_path,
        "dataset.source=tabular",
        f"dataset.path={tmp_path}/*.csv",
        "dataset.tabular.label=label",
        "model.likelihood=gaussian",
    )
    assert info.rows == 500 and info.feature_dim == 3
    _, x_train, _ = load_dataset_arrays(info.path, ("train",))
    np.testing.assert_allclose(x_train.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(x_train.std(0), 1, atol=1e-4)
    _, x_test, _ = load_dataset_arrays(info.path, ("test",))
    assert abs(x_test.mean()) > 1e-4  # test rows were not used for the statistics


def test_tabular_missing_values_error_or_median(tmp_path):
    path = write_csv(tmp_path / "holes.csv", 100, missing=True)
    with pytest.raises(DataError, match=f"{path}: missing value in column 'a' at row 3"):
        build(tmp_path, "dataset.source=tabular", f"dataset.path={path}", "dataset.tabular.label=label")
    _, _, info = build(
        tmp_path,
        "dataset.source=tabular",
        f"dataset.path={path}",
        "dataset.tabular.label=label",
        "dataset.tabular.missing=median",
    )
    _, x, _ = load_dataset_arrays(info.path)
    assert np.isfinite(x).all() and info.transform.fill is not None


def test_tabular_non_numeric_feature_is_refused_by_name(tmp_path):
    path = write_csv(tmp_path / "text.csv", 20, text=True)
    with pytest.raises(DataError, match=f"{path}: feature column 'c' is not numeric"):
        build(tmp_path, "dataset.source=tabular", f"dataset.path={path}", "dataset.tabular.features=[a, b, c]")


# ---- image folders ---------------------------------------------------------------------------------------------


def make_images(root: Path, n: int = 6, size=(12, 10)) -> None:
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            ext = "png" if i % 2 else "jpg"
            Image.fromarray(pixels).save(root / cls / f"{i}.{ext}")


def test_image_folder_png_and_jpeg_with_classes_resized_to_grayscale(tmp_path):
    make_images(tmp_path / "imgs")
    _, _, info = build(
        tmp_path, "dataset.source=image_folder", f"dataset.path={tmp_path / 'imgs'}", "dataset.image.size=[8, 8]"
    )
    assert info.rows == 12 and info.shape == {"channels": 1, "height": 8, "width": 8}
    ids, x, labels = load_dataset_arrays(info.path)
    assert dict(zip(ids, labels, strict=True))["dogs/1.png"] == 1 and x.shape == (12, 64)
    _, _, rgb = build(
        tmp_path, "dataset.source=image_folder", f"dataset.path={tmp_path / 'imgs'}", "dataset.image.mode=rgb"
    )
    assert rgb.shape == {"channels": 3, "height": 12, "width": 10} and rgb.feature_dim == 360
    ids, x, _ = load_dataset_arrays(rgb.path)
    png = np.asarray(Image.open(tmp_path / "imgs" / "dogs" / "1.png"), np.float32) / 255  # lossless: exact pixels
    row = x[list(ids).index("dogs/1.png")].reshape(3, 12, 10)  # channels-first, as the conv models read it
    np.testing.assert_allclose(row, png.transpose(2, 0, 1), atol=1e-6)


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (lambda root: (root / "cats" / "notes.txt").write_text("not an image"), "cats/notes.txt: not a readable image"),
        (
            lambda root: (root / "dogs" / "0.jpg").write_bytes((root / "dogs" / "0.jpg").read_bytes()[:40]),
            "dogs/0.jpg: not a readable image",
        ),
    ],
)
def test_image_folder_bad_files_are_named(tmp_path, damage, fragment):
    root = tmp_path / "imgs"
    make_images(root)
    damage(root)
    with pytest.raises(DataError, match=None) as err:
        build(tmp_path, "dataset.source=image_folder", f"dataset.path={root}")
    assert fragment in str(err.value)
    assert no_dataset_left(tmp_path)


def test_image_folder_skip_quarantines_bad_files_and_goes_on(tmp_path):
    root = tmp_path / "imgs"
    make_images(root, n=10)
    (root / "cats" / "notes.txt").write_text("not an image")
    (root / "dogs" / "0.jpg").write_bytes(b"\xff\xd8\xff broken")
    _, pre, info = build(
        tmp_path, "dataset.source=image_folder", f"dataset.path={root}", "dataset.image.on_bad_file=skip"
    )
    assert info.rows == 19 and pre.skipped == 2  # 2 of 21 files: under the 10 % ceiling
    quarantine = pq.read_table(info.path / "quarantine.parquet").to_pylist()
    assert sorted(Path(q["file"]).name for q in quarantine) == ["0.jpg", "notes.txt"]
    assert all("not a readable image" in q["reason"] for q in quarantine)
    manifest = json.loads((info.path / "manifest.json").read_text())
    assert len(manifest["skipped"]) == 2


def make_photo_folder(root: Path) -> int:
    """A folder as people have them: JPEG and PNG, RGB / L / RGBA / P / CMYK, sides 33 to 255 px, one photo
    EXIF-rotated, three class folders, plus a truncated JPEG and a stray note. Returns the readable photos."""
    rng = np.random.default_rng(1)
    n = 0
    for c, cls in enumerate(("birds", "cats", "dogs")):
        (root / cls).mkdir(parents=True)
        for i in range(8):
            h, w = (int(v) for v in rng.integers(33, 256, 2))
            img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
            mode = ["RGB", "L", "RGBA", "P", "CMYK"][(i + c) % 5]
            img = img.convert(mode)
            if mode in ("RGBA", "P"):
                img.save(root / cls / f"{i}.png")
            elif i % 2:
                exif = Image.Exif()
                exif[0x0112] = 6  # rotated 90 degrees: stored sideways
                img.save(root / cls / f"{i}.jpg", exif=exif)
            else:
                img.save(root / cls / f"{i}.jpg")
            n += 1
    cut = root / "dogs" / "cut.jpg"
    Image.fromarray(rng.integers(0, 256, (80, 60, 3), dtype=np.uint8)).save(cut)
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])  # truncated mid-scan, as an interrupted copy
    (root / "birds" / "README.txt").write_text("photos from the garden\n")
    return n


def test_a_real_photo_folder_of_mixed_sizes_and_modes_keeps_every_readable_photo(tmp_path):
    root = tmp_path / "photos"
    readable = make_photo_folder(root)
    _, pre, info = build(
        tmp_path,
        "dataset.source=image_folder",
        f"dataset.path={root}",
        "dataset.image.on_bad_file=skip",
        "dataset.image.max_skipped_fraction=0.1",
        "dataset.image.mode=null",
    )
    assert info.rows == readable == 24 and pre.skipped == 2
    quarantine = pq.read_table(info.path / "quarantine.parquet").to_pylist()
    assert sorted(Path(q["file"]).name for q in quarantine) == ["README.txt", "cut.jpg"]
    manifest = json.loads((info.path / "manifest.json").read_text())
    image = manifest["image"]
    side = image["size"][0]
    assert image["size"] == [side, side] and 33 <= side <= 64 and image["mode"] == "rgb"
    assert "median short side" in image["rule"] and "centre-cropped" in image["transform"]
    assert info.shape == {"channels": 3, "height": side, "width": side}
    assert f"{side}x{side} rgb" in pre.images


def test_a_rotated_photo_is_stored_upright(tmp_path):
    root = tmp_path / "imgs" / "a"
    root.mkdir(parents=True)
    pixels = np.zeros((20, 40), np.uint8)
    pixels[:, :20] = 255  # left half white, as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise: the white half ends up on top
    Image.fromarray(pixels).save(root / "0.png", exif=exif)
    Image.fromarray(np.zeros((40, 20), np.uint8)).save(root / "1.png")
    _, _, info = build(tmp_path, "dataset.source=image_folder", f"dataset.path={tmp_path / 'imgs'}")
    assert info.shape == {"channels": 1, "height": 40, "width": 20}  # one size once upright: kept as it is
    ids, x, _ = load_dataset_arrays(info.path)
    upright = x[list(ids).index("a/0.png")].reshape(40, 20)
    assert upright[:20].mean() > 0.9 and upright[20:].mean() < 0.1


def test_more_unreadable_files_than_the_ceiling_fail_and_publish_nothing(tmp_path):
    root = tmp_path / "imgs"
    make_images(root, n=4)
    for i in range(3):
        (root / "cats" / f"note{i}.txt").write_text("not an image")
    with pytest.raises(DataError) as err:
        build(tmp_path, "dataset.source=image_folder", f"dataset.path={root}", "dataset.image.on_bad_file=skip")
    message = str(err.value)
    assert "3 of 11 files are not readable images" in message and "max_skipped_fraction (0.1)" in message
    assert "note0.txt: not a readable image" in message and "\n" not in message
    assert no_dataset_left(tmp_path)


def test_empty_image_folder_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="the folder holds no files"):
        build(tmp_path, "dataset.source=image_folder", f"dataset.path={tmp_path / 'empty'}")


# ---- shapes ----------------------------------------------------------------------------------------------------


def test_shapes_subset_carries_factors_and_is_deterministic(tmp_path):
    _, pre, info = build(tmp_path, "dataset.source=shapes", "dataset.shapes.n_samples=300", "preprocess.shard_rows=128")
    assert info.rows == 300 and info.shape == {"channels": 1, "height": 64, "width": 64}
    table = pq.read_table(next(info.path.glob("part-*.parquet")))
    for name in ("shape", "scale", "orientation", "pos_x", "pos_y"):
        assert f"{name}_idx" in table.column_names and f"{name}_value" in table.column_names
    scales = table.column("scale_value").to_numpy()
    assert scales.min() >= 0.5 and scales.max() <= 1.0
    _, again, _ = build(
        tmp_path / "again", "dataset.source=shapes", "dataset.shapes.n_samples=300", "preprocess.shard_rows=128"
    )
    assert again.content_hash == pre.content_hash


def test_shapes_render_distinct_shapes_that_grow_with_scale():
    base = np.array([[0, 0, 0, 16, 16], [1, 0, 0, 16, 16], [2, 0, 0, 16, 16], [2, 5, 0, 16, 16]])
    images = render_shapes(base)
    areas = images.sum(1)
    assert (areas > 20).all()
    assert len({images[i].tobytes() for i in range(3)}) == 3  # square, ellipse, heart differ
    assert areas[3] > areas[2] * 2  # scale 1.0 vs 0.5 (area grows with the square of the scale)


def test_the_shapes_grid_is_described_once_and_its_rows_follow_it():
    from latent.config import DatasetConfig
    from latent.data.sources import get_source, shapes

    assert shapes.FACTOR_NAMES == ("shape", "scale", "orientation", "pos_x", "pos_y")
    assert shapes.FACTOR_SIZES == (3, 6, 40, 32, 32) and shapes.GRID == 737_280
    source = get_source(DatasetConfig.model_validate({"source": "shapes", "shapes": {"n_samples": None}}))
    last = source.read([shapes.GRID - 2, shapes.GRID])  # the grid's last two images: every factor at its top value
    for name, size in zip(shapes.FACTOR_NAMES, shapes.FACTOR_SIZES, strict=True):
        expected = [size - 2, size - 1] if name == "pos_y" else [size - 1, size - 1]  # pos_y varies fastest
        assert last.extra[f"{name}_idx"].tolist() == expected, name
    indices = np.column_stack([last.extra[f"{name}_idx"] for name in shapes.FACTOR_NAMES])
    assert np.array_equal(last.x, render_shapes(indices))  # the rows are the renderer's images of their factors
    assert last.x.shape == (2, shapes.IMAGE_SIZE**2)
