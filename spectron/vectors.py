"""How the log stores a vector: packed little-endian floats, never JSON numbers or base64.

A 384-dimensional vector is 768 bytes as float16 and 1,536 as float32, against ~8 KB as a JSON
float list. Embedders return unit vectors, whose components float16 holds to ~3 significant
digits; recall ranks by cosine, which that rounding moves by ~1e-4 (LoCoMo dense recall is
unchanged, see benchmarks/README.md "Disk"). Whatever the stored width, a vector is read back as float32.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

VectorDtype = Literal["float16", "float32"]
VECTOR_DTYPES: tuple[VectorDtype, ...] = ("float16", "float32")
MAX_VECTOR_DIMENSIONS = 4096
_LAYOUT: dict[str, np.dtype[Any]] = {"float16": np.dtype("<f2"), "float32": np.dtype("<f4")}


def itemsize(dtype: VectorDtype) -> int:
    """Bytes per component."""
    return _LAYOUT[dtype].itemsize


def pack(values: Any, dtype: VectorDtype) -> bytes:
    """A float sequence as little-endian `dtype` bytes; ValueError if a value cannot be held."""
    if dtype not in _LAYOUT:
        raise ValueError(f"vector dtype must be one of {', '.join(VECTOR_DTYPES)}")
    floats = np.asarray(values, dtype=np.float64)
    if floats.ndim != 1:
        raise ValueError("a vector is a flat sequence of numbers")
    packed = floats.astype(_LAYOUT[dtype])
    if not np.isfinite(packed).all() and np.isfinite(floats).all():
        raise ValueError(f"a value is out of {dtype}'s range")
    return packed.tobytes()


def unpack(data: bytes, dtype: VectorDtype) -> np.ndarray[Any, np.dtype[np.float32]]:
    """The float32 values of a packed vector."""
    return np.frombuffer(data, dtype=_LAYOUT[dtype]).astype(np.float32)


def dimensions(data: bytes, dtype: VectorDtype) -> int:
    """How many components a packed vector has."""
    return len(data) // itemsize(dtype)
