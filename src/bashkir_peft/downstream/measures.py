"""Accuracy and macro-F1 of a classifier on test sentences, with bootstrap intervals.

- ``accuracy`` = correct / items;
- ``macro_f1`` = the unweighted mean over classes of ``F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c)``
  (a class never predicted nor present scores 0; scikit-learn's ``f1_score(average="macro",
  zero_division=0)`` over all classes);
- intervals: percentile bootstrap over test sentences (``scipy.stats.bootstrap``, items
  resampled with replacement; Efron & Tibshirani 1993, ch. 13).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bashkir_peft.errors import ConfigError

MEASURES = ("accuracy", "macro_f1")


def accuracy_macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """``[accuracy, macro_f1]`` of integer class arrays (classes ``0 .. n_classes - 1``)."""
    cm = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    tp = np.diag(cm).astype(float)
    denom = cm.sum(0) + cm.sum(1)
    f1 = np.divide(2 * tp, denom, out=np.zeros(n_classes), where=denom > 0)
    return np.array([tp.sum() / len(y_true), f1.mean()])


def scores_with_intervals(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str], *,
                          n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Accuracy and macro-F1 with percentile bootstrap intervals over items.

    Args:
        y_true, y_pred: categories of each test item (every one in ``labels``).
        labels: all categories (macro-F1 averages over all of them).
        n_resamples: bootstrap resamples; confidence: interval coverage.

    Returns:
        ``{"accuracy", "accuracy_low", "accuracy_high", "macro_f1", "macro_f1_low",
        "macro_f1_high", "n"}``.

    Raises:
        ConfigError: lengths differ, no items, or a category not in ``labels``.
    """
    from scipy.stats import bootstrap

    index = {c: i for i, c in enumerate(labels)}
    if len(y_true) != len(y_pred) or not len(y_true):
        raise ConfigError(f"{len(y_true)} true and {len(y_pred)} predicted labels (same non-zero number needed)")
    unknown = sorted({c for c in (*y_true, *y_pred) if c not in index})
    if unknown:
        raise ConfigError(f"categories not among the labels: {', '.join(map(str, unknown))}")
    t = np.array([index[c] for c in y_true])
    p = np.array([index[c] for c in y_pred])
    k = len(labels)
    point = accuracy_macro_f1(t, p, k)
    ci = bootstrap((t, p), lambda a, b: accuracy_macro_f1(a, b, k), paired=True, vectorized=False,
                   n_resamples=n_resamples, confidence_level=confidence, method="percentile",
                   rng=np.random.default_rng(seed)).confidence_interval
    out: dict[str, float] = {}
    for j, name in enumerate(MEASURES):
        out |= {name: float(point[j]), f"{name}_low": float(ci.low[j]), f"{name}_high": float(ci.high[j])}
    return out | {"n": len(t)}
