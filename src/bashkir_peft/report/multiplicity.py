"""Multiplicity: the primary comparison keeps its verdict; every other comparison is
exploratory, with its p-value adjusted by Holm's step-down procedure within its family
(Holm 1979, "A simple sequentially rejective multiple test procedure", Scand. J. Statist. 6).

A comparison's p-value is that of its bootstrap interval: the two-sided t test of the
difference against 0 with the interval's standard error and Welch-Satterthwaite degrees of
freedom (:func:`bashkir_peft.report.bootstrap.hierarchical_bpb_difference`), so p < 0.05
exactly where the 95 % interval excludes 0.
"""

from __future__ import annotations

import math

import numpy as np

FAMILIES = {"primary": "primary", "forgetting": "forgetting", "transfer": "forgetting"}
"""Role -> family (every other role, e.g. ``secondary``, ``pair`` or ``primary (test split)``:
``secondary``). Only ``primary`` is confirmatory."""


def family_of(role: str) -> str:
    """The multiplicity family of a comparison's role (:data:`FAMILIES`, else ``secondary``)."""
    return FAMILIES.get(role, "secondary")


def t_p_value(difference: float, std_error: float, dof: float) -> float:
    """Two-sided p of ``difference / std_error`` under Student's t with ``dof`` degrees of
    freedom (NaN where the standard error or the degrees of freedom are missing or not positive)."""
    from scipy.stats import t as student_t

    if any(x is None or not math.isfinite(x) for x in (difference, std_error, dof)) or std_error <= 0 or dof <= 0:
        return math.nan
    return float(2 * student_t.sf(abs(difference) / std_error, dof))


def holm(p_values) -> np.ndarray:
    """Holm-adjusted p-values of one family (NaN entries stay NaN and do not count).

    The i-th smallest of m p-values becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    if m:
        order = ok[np.argsort(p[ok], kind="stable")]
        adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
        out[order] = adjusted
    return out
