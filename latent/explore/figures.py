"""Image grids of samples in data space, written atomically as PNG."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from latent.workspace import atomic_write_bytes


def pyplot():
    """Matplotlib's pyplot on the file-only Agg backend (no display on servers and workers)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def as_image(x: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """One flat sample (c·h·w, channels first as stored) as an (h, w) or (h, w, 3) array clipped to [0, 1]."""
    c, h, w = shape
    image = np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0).reshape(c, h, w)
    return image[0] if c == 1 else np.transpose(image, (1, 2, 0))


def image_grid_png(
    path: str | Path,
    rows: list[list[np.ndarray]],
    shape: tuple[int, int, int],
    title: str,
    row_titles: list[str] | None = None,
    col_titles: list[str] | None = None,
) -> Path:
    """A grid of images (rows of flat samples), titled, saved as one PNG."""
    plt = pyplot()
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(0.8 * n_cols + 1.0, 0.85 * n_rows + 0.7), dpi=110, squeeze=False)
    for r, images in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(images):
                image = as_image(images[c], shape)
                ax.imshow(image, cmap="gray_r" if image.ndim == 2 else None, vmin=0, vmax=1)
            else:
                ax.axis("off")
            if r == 0 and col_titles is not None and c < len(col_titles):
                ax.set_title(col_titles[c], fontsize=7)
        if row_titles is not None:
            axes[r][0].set_ylabel(row_titles[r], rotation=0, ha="right", va="center", fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)
