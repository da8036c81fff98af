"""Per-image 0/1 outcomes (e.g. robust correctness of each tracked test image) kept compactly in
JSON records: the bits packed big-endian into bytes, written as hex (200 images: 50 characters).
numpy only, so records and verdicts can use it without torch."""
from __future__ import annotations

import numpy as np


def pack(values) -> str:
    """0/1 (or bool) values -> hex string; `unpack(text, len(values))` gives them back."""
    v = np.asarray(values).ravel()
    if v.size and not np.isin(v, (0, 1)).all():
        raise ValueError("pack takes 0/1 or boolean values")
    return np.packbits(v.astype(bool)).tobytes().hex()


def unpack(text: str, n: int) -> np.ndarray:
    """hex string of `pack` -> the first `n` values as a uint8 array of 0/1."""
    raw = np.frombuffer(bytes.fromhex(text), dtype=np.uint8)
    if raw.size * 8 < n:
        raise ValueError(f"{len(text)} hex characters hold {raw.size * 8} values, not the {n} asked for")
    return np.unpackbits(raw)[:n]
