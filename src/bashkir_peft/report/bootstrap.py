"""Paired bootstrap confidence intervals for the difference in bits per byte between two
systems scored on the same test documents.

bits_per_byte of a set of documents is a ratio of corpus-level sums (lm-evaluation-harness
definition): ``sum NLL / (ln 2 * sum UTF-8 bytes)``. The difference between systems A and B
on the same documents is therefore ``(sum NLL_A - sum NLL_B) / (ln 2 * sum bytes)``.
Resampling whole documents with replacement (the same resample for both systems: a
*paired* bootstrap) keeps the correlation between the two systems' scores of a document,
so the interval is far narrower than two independent intervals would suggest.
Percentile interval: Efron & Tibshirani, *An Introduction to the Bootstrap* (1993), ch. 13;
paired resampling of test items as in Koehn, "Statistical Significance Tests for Machine
Translation Evaluation" (EMNLP 2004).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bashkir_peft.errors import DataError


@dataclass(frozen=True)
class BootstrapCI:
    """A difference and its confidence interval (bits per byte, A minus B)."""

    estimate: float
    low: float
    high: float
    n_documents: int
    n_resamples: int
    confidence: float


def paired_bpb_difference(nll_a: np.ndarray, nll_b: np.ndarray, n_bytes: np.ndarray, *,
                          n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0,
                          chunk: int = 250) -> BootstrapCI:
    """Percentile bootstrap CI of ``bpb(A) - bpb(B)`` over documents.

    Args:
        nll_a: (n_documents,) summed NLL of each document under system A, in nats.
        nll_b: (n_documents,) the same documents under system B, in nats.
        n_bytes: (n_documents,) UTF-8 bytes of each document.
        n_resamples: bootstrap resamples.
        confidence: e.g. 0.95 for a 95 % interval.
        seed: seed of the resampling generator (same seed, same interval).
        chunk: resamples drawn at once (bounds memory to ``chunk x n_documents`` ints).

    Returns:
        :class:`BootstrapCI` with the point estimate on all documents.

    Raises:
        DataError: mismatched lengths, no documents, or zero bytes in total.
    """
    a, b, w = (np.asarray(x, dtype=np.float64) for x in (nll_a, nll_b, n_bytes))
    if not (a.shape == b.shape == w.shape) or a.ndim != 1:
        raise DataError(f"paired bootstrap needs three 1-D arrays of one length, got {a.shape}, {b.shape}, {w.shape}")
    n = a.shape[0]
    if n == 0 or w.sum() <= 0:
        raise DataError("paired bootstrap: no documents (or no bytes) to resample")
    if not 0 < confidence < 1:
        raise DataError(f"confidence must be in (0, 1), got {confidence}")
    d = a - b
    estimate = d.sum() / (math.log(2) * w.sum())
    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples)
    for start in range(0, n_resamples, chunk):
        m = min(chunk, n_resamples - start)
        idx = rng.integers(0, n, size=(m, n))
        stats[start:start + m] = d[idx].sum(axis=1) / (math.log(2) * w[idx].sum(axis=1))
    alpha = (1 - confidence) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return BootstrapCI(float(estimate), float(low), float(high), n, n_resamples, confidence)


@dataclass(frozen=True)
class RateCI:
    """A pooled rate (a share in [0, 1]) and its percentile interval."""

    estimate: float
    low: float
    high: float
    n_items: int
    n_groups: int
    n_resamples: int
    confidence: float


def pooled_rate_interval(numerators: list[np.ndarray], denominators: list[np.ndarray] | None = None, *,
                         n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> RateCI:
    """Percentile bootstrap CI of a pooled rate ``sum(num) / sum(den)`` over items (prompts)
    in groups (seeds), resampling items with replacement *within* each group.

    The groups are kept, not resampled: with the two or three seeds of a grid, the seed level
    has too few units to resample (the interval is over prompts given these seeds). A rate of
    continuations (e.g. the code-switch rate) has ``den = 1`` per item; a letter-weighted
    language share has ``num`` = letters of sentences with the label, ``den`` = letters of
    all sentences. Stratified resampling: Davison & Hinkley, *Bootstrap Methods and their
    Application* (1997), sec. 3.7; percentile interval: Efron & Tibshirani (1993), ch. 13.

    Args:
        numerators: per group, a (n_items,) array of each item's numerator.
        denominators: per group, a (n_items,) array of each item's denominator (``None``: 1).
        n_resamples: bootstrap resamples.
        confidence: e.g. 0.95 for a 95 % interval.
        seed: seed of the resampling generator.

    Returns:
        :class:`RateCI` (NaN estimate and bounds when the denominators sum to 0; a resample
        whose denominator is 0 is dropped).

    Raises:
        DataError: no group, a group without items, or mismatched lengths.
    """
    nums = [np.asarray(x, dtype=np.float64) for x in numerators]
    dens = [np.ones_like(x) for x in nums] if denominators is None else [np.asarray(x, dtype=np.float64)
                                                                         for x in denominators]
    if not nums or len(dens) != len(nums) or any(n.ndim != 1 or n.shape != d.shape or n.size == 0
                                                 for n, d in zip(nums, dens)):
        raise DataError("rate interval needs one or more groups of equal-length, non-empty 1-D arrays")
    if not 0 < confidence < 1:
        raise DataError(f"confidence must be in (0, 1), got {confidence}")
    total = sum(d.sum() for d in dens)
    n_items = sum(n.size for n in nums)
    if total <= 0:
        return RateCI(math.nan, math.nan, math.nan, n_items, len(nums), n_resamples, confidence)
    rng = np.random.default_rng(seed)
    num_s, den_s = np.zeros(n_resamples), np.zeros(n_resamples)
    for n, d in zip(nums, dens):
        idx = rng.integers(0, n.size, size=(n_resamples, n.size))
        num_s += n[idx].sum(axis=1)
        den_s += d[idx].sum(axis=1)
    stats = num_s[den_s > 0] / den_s[den_s > 0]
    alpha = (1 - confidence) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    estimate = sum(n.sum() for n in nums) / total
    return RateCI(float(estimate), float(low), float(high), n_items, len(nums), n_resamples, confidence)
