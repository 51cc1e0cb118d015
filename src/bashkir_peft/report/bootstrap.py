"""Confidence intervals for the difference in bits per byte between two methods, over
training seeds and test documents together.

bits_per_byte of a set of documents is a ratio of corpus-level sums (lm-evaluation-harness
definition): ``sum NLL / (ln 2 * sum UTF-8 bytes)``. A method trained with several seeds is
scored on the same test documents by each run; its bits_per_byte is the mean over its
seeds. The difference between methods A and B varies with two things a rerun would change:
the training seeds (how much runs of one method differ) and the test documents. Both
enter the interval (:func:`hierarchical_bpb_difference`):

- A *hierarchical* bootstrap (seeds, then documents): each resample draws the seeds of A
  and of B with replacement (independently: seed 42 of A and seed 42 of B are different
  runs) and one set of documents with replacement, the same documents for both methods
  (the *paired* design: a hard document is hard for both, so that part cancels). Seeds and
  documents are crossed (every run scores every document); resampling both factors is
  Owen's pigeonhole bootstrap ("The pigeonhole bootstrap", Ann. Appl. Stat. 1(2), 2007),
  paired over documents as in Koehn ("Statistical Significance Tests for Machine
  Translation Evaluation", EMNLP 2004).
- Three seeds are few: the plug-in bootstrap variance of a mean of ``n`` draws is
  ``(n - 1) / n`` of the unbiased one, and a normal quantile is too short for it. So the
  seed deviations are scaled by ``sqrt(n / (n - 1))`` before resampling (adjusted residuals,
  Davison & Hinkley, *Bootstrap Methods and their Application*, 1997, section 3.3) and the
  interval is ``estimate ± t(nu) * bootstrap standard error`` with ``nu`` the
  Welch-Satterthwaite degrees of freedom of the seed and document variance components
  (Satterthwaite, Biometrics Bulletin 2(6), 1946). Tested by coverage on synthetic grids
  (tests/test_bootstrap.py).

A method with fewer than :data:`MIN_SEEDS` seeds has a degenerate seed level (two values
give no usable spread); :func:`seed_level_problem` says so and the report prints that
instead of an interval. A seed-free system (the zero-shot base model: one deterministic
evaluation) has no seed variance and counts as one row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import t as student_t

from bashkir_peft.errors import DataError

MIN_SEEDS = 3
"""Fewest seeds of a trained method for which the seed level of an interval means something."""


@dataclass(frozen=True)
class BootstrapCI:
    """A difference in bits per byte (A minus B) and its confidence interval.

    Attributes:
        estimate: bpb(A) - bpb(B) on all documents, each method averaged over its seeds.
        low, high: the interval's ends.
        std_error: the bootstrap standard error.
        dof: Welch-Satterthwaite degrees of freedom of the t quantile used.
        n_documents, n_seeds_a, n_seeds_b, n_resamples, confidence: what it was computed from.
    """

    estimate: float
    low: float
    high: float
    std_error: float
    dof: float
    n_documents: int
    n_seeds_a: int
    n_seeds_b: int
    n_resamples: int
    confidence: float


def seed_level_problem(n_seeds: int, seeded: bool, name: str) -> str | None:
    """Why the seed level of an interval involving this method is degenerate, or ``None``.

    Args:
        n_seeds: runs (seeds) of the method.
        seeded: False for a seed-free system (zero-shot base model).
        name: the method's label, for the message.
    """
    if seeded and n_seeds < MIN_SEEDS:
        return (f"{name}: {n_seeds} seed{'s' if n_seeds != 1 else ''}; the seed level needs at least "
                f"{MIN_SEEDS}, so no interval")
    return None


def _adjusted(nll: np.ndarray, seeded: bool) -> np.ndarray:
    """Seed rows with their deviations from the seed mean scaled by sqrt(n / (n - 1))."""
    n = nll.shape[0]
    if not seeded or n < 2:
        return nll
    mean = nll.mean(axis=0, keepdims=True)
    return mean + math.sqrt(n / (n - 1)) * (nll - mean)


def _seed_weights(rng: np.random.Generator, n_seeds: int, m: int) -> np.ndarray:
    """(m, n_seeds) resampling weights: counts of each seed in a draw of n_seeds, / n_seeds."""
    return rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=m) / n_seeds


def _welch_dof(nll_a: np.ndarray, nll_b: np.ndarray, w: np.ndarray, seeded_a: bool, seeded_b: bool,
               estimate: float) -> float:
    """Welch-Satterthwaite degrees of freedom of the seed components of A and B and the
    document component (the seed-averaged paired difference, linearised ratio)."""
    scale = math.log(2) * w.sum()
    parts = []
    for nll, seeded in ((nll_a, seeded_a), (nll_b, seeded_b)):
        n = nll.shape[0]
        if seeded and n > 1:
            parts.append((np.var(nll.sum(axis=1) / scale, ddof=1) / n, n - 1))
    n_docs = w.shape[0]
    if n_docs > 1:
        z = (nll_a.mean(axis=0) - nll_b.mean(axis=0) - estimate * math.log(2) * w) / (math.log(2) * w.mean())
        parts.append((np.var(z, ddof=1) / n_docs, n_docs - 1))
    num = sum(v for v, _ in parts) ** 2
    den = sum(v * v / df for v, df in parts)
    return float(num / den) if den > 0 else math.inf


def hierarchical_bpb_difference(nll_a: np.ndarray, nll_b: np.ndarray, n_bytes: np.ndarray, *,
                                seeded_a: bool = True, seeded_b: bool = True, n_resamples: int = 2000,
                                confidence: float = 0.95, seed: int = 0, chunk: int = 250) -> BootstrapCI:
    """Interval for ``bpb(A) - bpb(B)`` over seeds and documents (see the module docstring).

    Args:
        nll_a: (n_seeds_a, n_documents) summed NLL of each document under each run of A, nats.
        nll_b: (n_seeds_b, n_documents) the same documents under each run of B.
        n_bytes: (n_documents,) UTF-8 bytes of each document.
        seeded_a, seeded_b: False for a seed-free system (one row, no seed variance).
        n_resamples: bootstrap resamples.
        confidence: e.g. 0.95 for a 95 % interval.
        seed: seed of the resampling generator (same seed, same interval).
        chunk: resamples drawn at once (bounds memory to ``chunk x n_documents`` numbers).

    Returns:
        :class:`BootstrapCI`.

    Raises:
        DataError: arrays of mismatched shapes, no documents or no bytes, a seeded method
            with fewer than :data:`MIN_SEEDS` seeds, a seed-free one with more than one row,
            or a confidence outside (0, 1).
    """
    a, b = (np.atleast_2d(np.asarray(x, dtype=np.float64)) for x in (nll_a, nll_b))
    w = np.asarray(n_bytes, dtype=np.float64)
    if w.ndim != 1 or a.ndim != 2 or b.ndim != 2 or a.shape[1] != w.shape[0] or b.shape[1] != w.shape[0]:
        raise DataError(f"hierarchical bootstrap needs (seeds, documents) NLL arrays and (documents,) bytes of "
                        f"one document count, got {a.shape}, {b.shape}, {w.shape}")
    n_docs = w.shape[0]
    if n_docs == 0 or w.sum() <= 0:
        raise DataError("hierarchical bootstrap: no documents (or no bytes) to resample")
    if not 0 < confidence < 1:
        raise DataError(f"confidence must be in (0, 1), got {confidence}")
    for name, x, seeded in (("A", a, seeded_a), ("B", b, seeded_b)):
        problem = seed_level_problem(x.shape[0], seeded, name)
        if problem:
            raise DataError(f"hierarchical bootstrap: {problem}")
        if not seeded and x.shape[0] != 1:
            raise DataError(f"hierarchical bootstrap: seed-free system {name} has {x.shape[0]} rows, expected 1")
    scale = math.log(2)
    estimate = (a.mean(axis=0) - b.mean(axis=0)).sum() / (scale * w.sum())
    adj_a, adj_b = _adjusted(a, seeded_a), _adjusted(b, seeded_b)
    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples)
    uniform = np.full(n_docs, 1 / n_docs)
    for start in range(0, n_resamples, chunk):
        m = min(chunk, n_resamples - start)
        docs = rng.multinomial(n_docs, uniform, size=m).astype(np.float64)  # (m, n_docs) counts
        per_a = docs @ adj_a.T  # (m, n_seeds_a): each seed's NLL over the drawn documents
        per_b = docs @ adj_b.T
        num = ((_seed_weights(rng, a.shape[0], m) * per_a).sum(axis=1)
               - (_seed_weights(rng, b.shape[0], m) * per_b).sum(axis=1))
        stats[start:start + m] = num / (scale * (docs @ w))
    se = float(stats.std(ddof=1))
    dof = _welch_dof(a, b, w, seeded_a, seeded_b, estimate)
    half = float(student_t.ppf((1 + confidence) / 2, dof)) * se
    return BootstrapCI(float(estimate), float(estimate - half), float(estimate + half), se, dof, n_docs,
                       a.shape[0], b.shape[0], n_resamples, confidence)


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


def prompt_rate_interval(numerators: np.ndarray, denominators: np.ndarray | None = None, *,
                         n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> RateCI:
    """Percentile bootstrap CI of a pooled rate ``sum(num) / sum(den)`` over prompts shared by
    every seed: each resample draws prompts with replacement, *the same prompts for every
    seed* (a prompt that is hard is hard for every run), then the seeds with replacement.

    The crossed design of :func:`hierarchical_bpb_difference` (Owen 2007, the pigeonhole
    bootstrap) for a rate: seeds x prompts, every seed continuing every prompt. Resampling
    prompts independently within each seed (:func:`pooled_rate_interval`) treats the seeds'
    continuations of one prompt as independent and averages the prompt effect away: too
    narrow when prompts differ (tests/test_bootstrap.py, coverage). Percentile interval:
    Efron & Tibshirani (1993), ch. 13.

    Args:
        numerators: (n_seeds, n_prompts) numerator of each seed's continuation of each prompt
            (rows: seeds; columns: the same prompts in the same order).
        denominators: the same shape (``None``: 1 each, a rate of continuations).
        n_resamples, confidence, seed: of the bootstrap.

    Returns:
        :class:`RateCI` (``n_items``: prompts; ``n_groups``: seeds; NaN where the
        denominators sum to 0; a resample whose denominator is 0 is dropped).

    Raises:
        DataError: not a non-empty 2-D array, mismatched shapes, or confidence out of (0, 1).
    """
    num = np.asarray(numerators, dtype=np.float64)
    den = np.ones_like(num) if denominators is None else np.asarray(denominators, dtype=np.float64)
    if num.ndim != 2 or num.size == 0 or den.shape != num.shape:
        raise DataError("prompt rate interval needs (n_seeds, n_prompts) arrays of one shape, not empty")
    if not 0 < confidence < 1:
        raise DataError(f"confidence must be in (0, 1), got {confidence}")
    n_seeds, n_prompts = num.shape
    if den.sum() <= 0:
        return RateCI(math.nan, math.nan, math.nan, n_prompts, n_seeds, n_resamples, confidence)
    rng = np.random.default_rng(seed)
    prompts = rng.multinomial(n_prompts, np.full(n_prompts, 1 / n_prompts), size=n_resamples).astype(np.float64)
    seeds = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=n_resamples).astype(np.float64)
    # resample r: sum over seeds s and prompts p of seeds[r, s] * prompts[r, p] * x[s, p]
    num_s = np.einsum("rs,sp,rp->r", seeds, num, prompts)
    den_s = np.einsum("rs,sp,rp->r", seeds, den, prompts)
    stats = num_s[den_s > 0] / den_s[den_s > 0]
    alpha = (1 - confidence) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return RateCI(float(num.sum() / den.sum()), float(low), float(high), n_prompts, n_seeds, n_resamples, confidence)
