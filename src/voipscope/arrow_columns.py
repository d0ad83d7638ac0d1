"""Arrow arrays from numpy columns and Python strings, built from buffers.

``pa.array`` (and pyarrow.compute with Python scalars) probe whether the input is a
pandas object, and that probe imports pandas where it is installed: ~50 MB of RSS and a
third of a second in every run, for a library voipscope never uses. Everything on the
record path builds its arrays here instead.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def numpy_array(values: np.ndarray, null_mask: np.ndarray | None = None) -> pa.Array:
    """A numpy column as an Arrow array without copying, with nulls where ``null_mask``."""
    values = np.ascontiguousarray(values)
    validity = None
    null_count = 0
    if null_mask is not None and null_mask.any():
        validity = pa.py_buffer(np.packbits(~null_mask, bitorder="little"))
        null_count = int(null_mask.sum())
    if values.dtype == np.bool_:  # Arrow booleans are bits, numpy's are bytes
        data = pa.py_buffer(np.packbits(values, bitorder="little"))
    else:
        data = pa.py_buffer(values)
    arrow_type = pa.from_numpy_dtype(values.dtype)
    return pa.Array.from_buffers(arrow_type, len(values), [validity, data], null_count)


def string_array(values: list[str | None]) -> pa.Array:
    """A string array from Python strings (None: null)."""
    encoded = [b"" if v is None else v.encode() for v in values]
    offsets = np.zeros(len(values) + 1, np.int32)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    nulls = np.fromiter((v is None for v in values), bool, len(values))
    validity = pa.py_buffer(np.packbits(~nulls, bitorder="little")) if nulls.any() else None
    buffers = [validity, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
    return pa.Array.from_buffers(pa.string(), len(values), buffers, int(nulls.sum()))
