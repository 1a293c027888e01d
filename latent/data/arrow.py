"""Arrow helpers for the fixed-size vector columns that dataset and latent tables store."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def vectors_to_arrow(values: np.ndarray) -> pa.FixedSizeListArray:
    """(n, k) array -> fixed_size_list<dtype>[k] without copying the values."""
    if values.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {values.shape}")
    flat = pa.array(np.ascontiguousarray(values).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, values.shape[1])


def arrow_to_vectors(column: pa.ChunkedArray | pa.Array, dtype: np.dtype | type = np.float32) -> np.ndarray:
    """fixed_size_list column -> (n, k) writable NumPy array (torch refuses read-only buffers)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if not pa.types.is_fixed_size_list(column.type):
        raise TypeError(f"expected a fixed_size_list column, got {column.type}")
    width = column.type.list_size
    flat = column.flatten().to_numpy(zero_copy_only=False)
    out = flat.astype(dtype, copy=False)
    if not out.flags.writeable:
        out = out.copy()
    return out.reshape(len(column), width)
