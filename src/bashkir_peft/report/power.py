"""The power of a comparison of two methods over seeds: how likely a two-sided t test at level
``alpha`` is to find a true difference ``d`` between arms of ``n_a`` and ``n_b`` seeds whose
per-seed results scatter with standard deviation ``sd``, and how many seeds reach a wanted
power.

The formula (Cohen 1988, *Statistical Power Analysis for the Behavioral Sciences*, 2nd ed.,
ch. 2; computed with the noncentral t distribution, as G*Power does: Faul et al. 2007, *Behavior
Research Methods* 39, 175-191): with standard error ``se = sd * sqrt(1/n_a + 1/n_b)``, the
statistic ``t = (mean_a - mean_b) / se`` follows a noncentral t distribution with
noncentrality ``d / se`` (:data:`scipy.stats.nct`), and the test rejects where ``|t|`` exceeds
the ``1 - alpha/2`` quantile of the central t; power is the noncentral t's mass beyond
``±`` that quantile. The degrees of freedom are Welch-Satterthwaite's (Welch 1947; Satterthwaite
1946) computed from the true SDs, ``(v_a + v_b)**2 / (v_a**2 / (n_a - 1) + v_b**2 / (n_b - 1))``
with ``v = sd**2 / n``: for equal arms and SDs that is ``2 (n - 1)``, and the power is then exact
for Student's t test. Welch's test as run estimates its degrees of freedom from the samples,
which costs power at very few seeds: simulated, 0.50 where this gives 0.60 at 3 + 3 seeds
(``tests/test_power.py``), so at 2-3 seeds per arm the value is an upper bound; from about 5
seeds per arm the two agree within 0.03.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

MAX_SEEDS = 10_000
"""The most seeds per arm :func:`seeds_for_power` searches."""


def _check(difference: float, sd: float, n_a: int, n_b: int, alpha: float) -> None:
    if not math.isfinite(difference):
        raise ValueError(f"power: the difference must be a finite number, got {difference}")
    if not (math.isfinite(sd) and sd > 0):
        raise ValueError(f"power: the between-seed SD must be a positive number, got {sd}")
    if n_a < 2 or n_b < 2:
        raise ValueError(f"power: each arm needs at least 2 seeds, got {n_a} and {n_b}")
    if not 0 < alpha < 1:
        raise ValueError(f"power: alpha must lie in (0, 1), got {alpha}")


def welch_power(difference: float, sd: float, n_a: int, n_b: int, alpha: float = 0.05,
                sd_b: float | None = None) -> float:
    """Power of a two-sided t test (Welch-Satterthwaite degrees of freedom, noncentral t; see
    the module docstring) to detect a true difference between two arms.

    Args:
        difference: the true difference of the arms' means (any unit; its sign does not matter).
        sd: the between-seed standard deviation of arm A's per-seed results (and of B's, unless
            ``sd_b`` is given), in the unit of ``difference``.
        n_a, n_b: seeds per arm (at least 2 each).
        alpha: the test's level (two-sided).
        sd_b: arm B's standard deviation where it differs from A's.

    Returns:
        The probability of rejecting "no difference", in ``[alpha, 1]`` (``alpha`` at
        ``difference`` 0).

    Raises:
        ValueError: a non-finite difference, an SD that is not positive, fewer than 2 seeds in
            an arm, ``alpha`` outside (0, 1) (one line each).
    """
    sd_b = sd if sd_b is None else sd_b
    _check(difference, sd, n_a, n_b, alpha)
    _check(difference, sd_b, n_a, n_b, alpha)
    v_a, v_b = sd**2 / n_a, sd_b**2 / n_b
    dof = (v_a + v_b) ** 2 / (v_a**2 / (n_a - 1) + v_b**2 / (n_b - 1))
    noncentrality = abs(difference) / math.sqrt(v_a + v_b)
    critical = stats.t.ppf(1 - alpha / 2, dof)
    return float(stats.nct.sf(critical, dof, noncentrality) + stats.nct.cdf(-critical, dof, noncentrality))


def seeds_for_power(difference: float, sd: float, power: float = 0.8, alpha: float = 0.05) -> int:
    """The fewest seeds per arm (equal arms) at which :func:`welch_power` reaches ``power``.

    Args:
        difference, sd, alpha: as for :func:`welch_power`.
        power: the wanted power, in (``alpha``, 1).

    Returns:
        Seeds per arm, at least 2.

    Raises:
        ValueError: bad arguments (:func:`welch_power`), ``power`` outside (``alpha``, 1), a
            zero difference, or more than :data:`MAX_SEEDS` seeds per arm needed.
    """
    _check(difference, sd, 2, 2, alpha)
    if not alpha < power < 1:
        raise ValueError(f"seeds_for_power: the wanted power must lie in (alpha = {alpha}, 1), got {power}")
    if difference == 0:
        raise ValueError("seeds_for_power: no number of seeds detects a difference of 0")
    lo, hi = 2, 2
    while welch_power(difference, sd, hi, hi, alpha) < power:  # power grows with n: double, then bisect
        lo, hi = hi, 2 * hi
        if hi > 2 * MAX_SEEDS:
            raise ValueError(f"seeds_for_power: more than {MAX_SEEDS} seeds per arm needed for power {power} "
                             f"(difference {difference:g}, SD {sd:g})")
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if welch_power(difference, sd, mid, mid, alpha) < power else (lo, mid)
    if hi > MAX_SEEDS:
        raise ValueError(f"seeds_for_power: more than {MAX_SEEDS} seeds per arm needed for power {power}")
    return hi


def pooled_sd(a: np.ndarray | list[float], b: np.ndarray | list[float]) -> float:
    """The pooled between-seed standard deviation of two arms' per-seed results,
    ``sqrt(((n_a - 1) s_a**2 + (n_b - 1) s_b**2) / (n_a + n_b - 2))`` with ``s`` the sample SD
    (``ddof=1``; an arm of one seed adds no degree of freedom).

    Args:
        a, b: (n_a,), (n_b,) per-seed results (e.g. each run's bits per byte on one test set).

    Returns:
        The SD, in the unit of the results; NaN where the arms have fewer than 3 results together
        (no degree of freedom).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    dof = max(len(a) - 1, 0) + max(len(b) - 1, 0)
    if dof == 0:
        return math.nan
    ss = sum(float(((x - x.mean()) ** 2).sum()) for x in (a, b) if len(x))
    return math.sqrt(ss / dof)
