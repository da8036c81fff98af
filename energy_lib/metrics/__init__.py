"""Metrics: image fidelity (IS / FID / KID via torch-fidelity); robust accuracy lives in `robust.py`."""
from .fidelity import (FidelityRecord, InceptionWeights, InceptionWeightsNotFoundError, compute_fidelity,
                       extract_features, metrics_from_features, resolve_inception_weights, to_uint8)
from .robust import RobustEvalSettings, evaluate, evaluate_run, load_records, eval_slice  # noqa: F401

__all__ = ["FidelityRecord", "InceptionWeights", "InceptionWeightsNotFoundError", "compute_fidelity",
           "extract_features", "metrics_from_features", "resolve_inception_weights", "to_uint8"]
