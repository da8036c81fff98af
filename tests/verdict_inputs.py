"""Planted inputs and protocol references shared by the verdict tests (test_verdicts*.py)."""
import numpy as np
from scipy import stats

from energy_lib import bits


def protocol_bootstrap(data, statistic, *, paired=False, level=0.95, seed=0):
    """Every verdict's documented interval protocol: scipy's percentile bootstrap, 2,000 resamples, seed 0
    (the caller's level and seed where a test asks for them)."""
    return stats.bootstrap(data, statistic, paired=paired, n_resamples=2000, random_state=seed, method="percentile",
                           confidence_level=level)


def outcomes(both, only_a, only_b, neither):
    """Per-image 0/1 outcomes (integers, as a record unpacks them) of A and B: `both` images right for
    both, then A only, B only, neither."""
    a = np.repeat([1, 1, 0, 0], [both, only_a, only_b, neither])
    b = np.repeat([1, 0, 1, 0], [both, only_a, only_b, neither])
    return a, b


def eval_record(correct=None, *, acc=None, n=None, start=0, metrics=("pgd", "autoattack"), settings=None):
    """A robust-evaluation record as `metrics.robust.evaluate` writes it (the fields `compare_records`
    reads): `correct` holds per-image 0/1 outcomes of every metric in `metrics` (packed like the record);
    give only `acc` and `n` for a record written before per-image outcomes (version 1)."""
    if correct is not None:
        correct = np.asarray(correct, dtype=np.uint8)
        n, acc = correct.size, float(correct.mean())
    rec = {"images": {"dataset": "cifar10", "split": "test", "start": start, "n": n, "sha256": f"img{start}-{n}"},
           "n_images": n, "settings": settings or {"eps": 8 / 255, "pgd_steps": 20, "batch_size": 64},
           "accuracy": {"clean": 0.9, **{m: acc for m in metrics}}}
    if correct is not None:
        rec["correct"] = {m: bits.pack(correct) for m in metrics}
    return rec
