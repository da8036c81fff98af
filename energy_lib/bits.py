"""Per-image 0/1 outcomes (e.g. robust correctness of each tracked test image) kept compactly in
JSON records: the bits packed big-endian into bytes, written as hex (200 images: 50 characters).
numpy only, so records and verdicts can use it without torch."""
from __future__ import annotations

import math

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


def record_outcomes(rec: dict, metric: str, label: str = "the record"):
    """An evaluation record's per-image 0/1 outcome of `metric` ("clean", "pgd", "autoattack";
    `metrics.robust`), in the order of its images, or None when it holds none (written before
    record version 2, or the attack was not run). Checked against the record's image count and
    accuracy; a mismatch is a one-line ValueError naming `label`."""
    text = rec.get("correct", {}).get(metric)
    if text is None:
        return None
    n = rec["n_images"]
    if len(text) != 2 * math.ceil(n / 8):
        raise ValueError(f"the record of {label} holds {len(text)} hex characters of per-image {metric} outcomes, "
                         f"not the {2 * math.ceil(n / 8)} of its {n} images; re-evaluate it")
    correct = unpack(text, n)
    if round(rec["accuracy"][metric] * n) != int(correct.sum()):   # the accuracy is a float32 mean: compare counts
        raise ValueError(f"the record of {label}: per-image {metric} outcomes give {correct.mean():.4f}, its accuracy "
                         f"says {rec['accuracy'][metric]:.4f}; re-evaluate it")
    return correct
