"""Numpy arrays as compact text for saved state: the little-endian bytes, base64-encoded.

A float64 costs about 11 characters this way (21 as a JSON number), an int32 about 5.5, and
the values come back bit for bit. ``unpack`` checks what it reads and raises ``ValueError``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np
import numpy.typing as npt


def pack(values: npt.NDArray[Any], dtype: str) -> str:
    """``values`` as ``dtype`` (a little-endian numpy type such as ``"<f8"``), base64."""
    return base64.b64encode(np.ascontiguousarray(values, dtype=dtype).tobytes()).decode("ascii")


def unpack(text: object, dtype: str, what: str) -> npt.NDArray[Any]:
    """The array ``pack`` wrote (a copy, writable); ``what`` names it in errors."""
    if not isinstance(text, str):
        raise ValueError(f"{what} must be base64 text, not {type(text).__name__}")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as error:
        raise ValueError(f"{what} is not valid base64: {error}") from None
    size = np.dtype(dtype).itemsize
    if len(raw) % size:
        raise ValueError(f"{what} holds {len(raw)} bytes, not a whole number of {dtype}")
    return np.frombuffer(raw, dtype=dtype).copy()
