"""Learning curves over seeds: at each evaluation point of training, the mean validation bits per
byte of every arm (model, method label, learning rate) over its seeds with a 95 % t-interval,
and each arm's gap to a reference arm with a Welch interval, so that whether the ranking of the
methods holds as the budget grows can be read with its uncertainty.

Reads the per-run curve table (:func:`bashkir_peft.report.cost.learning_curves_table`); nothing
here writes files. The intervals are over seeds only (the validation documents are fixed).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bashkir_peft.names import method_sort_key

ARM_KEYS = ["model", "method_label", "label", "learning_rate"]
"""What one curve of the summary averages over seeds (``label``: the cell's label axis, which
tells apart arms of one method label, e.g. LoRA on the attention projections only)."""

CURVE_SUMMARY_COLUMNS = ["model", "arm", *ARM_KEYS[1:], "point", "step", "train_bytes_seen", "n", "mean", "std",
                         "ci_low", "ci_high"]
"""Columns of :func:`curve_summary`."""

CURVE_GAP_COLUMNS = ["model", "arm", "reference", "point", "train_bytes_seen", "n", "n_reference", "difference",
                     "ci_low", "ci_high", "dof"]
"""Columns of :func:`curve_gaps`."""


def t_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float, float]:
    """Mean, sample standard deviation and Student-t interval of the mean of ``values``.

    ``mean ± t_{(1+confidence)/2, n-1} · s / sqrt(n)`` with ``s`` the standard deviation with
    ddof = 1 (Student 1908; any statistics text).

    Args:
        values: shape ``(n,)``, one value per seed.
        confidence: of the interval.

    Returns:
        ``(mean, std, low, high)``; ``std``, ``low`` and ``high`` NaN for ``n < 2``.
    """
    from scipy.stats import t

    values = np.asarray(values, float)
    n, mean = len(values), float(np.mean(values))
    if n < 2:
        return mean, math.nan, math.nan, math.nan
    std = float(np.std(values, ddof=1))
    half = float(t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


def _arm_names(frame: pd.DataFrame) -> pd.Series:
    """An arm's name: its method label, where the label has several arms (cell labels or rates)
    with the cell label, else with ``lr=...``."""
    arm = frame["label"].astype(str) + "|" + frame["learning_rate"].astype(str)
    arms = arm.groupby([frame["model"], frame["method_label"]]).transform("nunique")
    return pd.Series([lab if k < 2 else f"{lab} {cell}" if cell else f"{lab} lr={lr:g}" for lab, cell, lr, k in
                      zip(frame["method_label"], frame["label"], frame["learning_rate"], arms)], index=frame.index)


def _points(curves: pd.DataFrame) -> pd.DataFrame:
    """The curve rows with bits per byte and bytes seen, each with its ``point`` (the k-th
    evaluation of its run, from 1) and ``arm`` (:func:`_arm_names`); ``label`` ``""`` for none."""
    c = curves.dropna(subset=["bits_per_byte", "train_bytes_seen"]) if len(curves) else curves
    if c.empty:
        return c
    c = c.assign(label=c["label"].fillna("")).sort_values(["run_id", "step"])
    return c.assign(point=c.groupby("run_id").cumcount() + 1, arm=_arm_names(c))


def curve_summary(curves: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per arm and evaluation point: the mean validation bits per byte over seeds with its
    t-interval (:func:`t_interval`).

    The k-th evaluation of every seed of an arm is one point (``point`` = k, from 1): the seeds
    of one arm evaluate at the same steps (the byte budget sets them from the training split).

    Args:
        curves: :func:`~bashkir_peft.report.cost.learning_curves_table` (rows without bits per
            byte or bytes seen are left out).
        confidence: of the intervals.

    Returns:
        :data:`CURVE_SUMMARY_COLUMNS`: ``arm`` (the method label, with the cell label or the
        rate where one method label has several arms), ``point``, ``step`` and ``train_bytes_seen`` (means over seeds), ``n``
        (seeds), ``mean``, ``std``, ``ci_low``, ``ci_high`` (bits per byte; NaN for one seed),
        sorted by model, method and point.
    """
    c = _points(curves)
    if c.empty:
        return pd.DataFrame(columns=CURVE_SUMMARY_COLUMNS)
    rows = []
    for (model, arm, method, label, lr, point), g in c.groupby(["model", "arm", *ARM_KEYS[1:], "point"], sort=False):
        mean, std, low, high = t_interval(g["bits_per_byte"].to_numpy(), confidence)
        rows.append({"model": model, "arm": arm, "method_label": method, "label": label, "learning_rate": lr,
                     "point": point,
                     "step": float(g["step"].mean()), "train_bytes_seen": float(g["train_bytes_seen"].mean()),
                     "n": len(g), "mean": mean, "std": std, "ci_low": low, "ci_high": high})
    out = pd.DataFrame(rows, columns=CURVE_SUMMARY_COLUMNS)
    order = sorted(range(len(out)), key=lambda i: (out["model"].iloc[i], method_sort_key(out["method_label"].iloc[i]),
                                                   out["arm"].iloc[i], out["point"].iloc[i]))
    return out.iloc[order].reset_index(drop=True)


def reference_arm(summary: pd.DataFrame, preferred: str | None = None) -> str | None:
    """The arm the gaps are measured from: ``preferred`` (e.g. the primary comparison's B) where
    it is an arm of the summary, else the first arm in method order; ``None`` without arms."""
    if summary.empty:
        return None
    if preferred is not None and (summary["arm"] == preferred).any():
        return preferred
    return min(zip(summary["method_label"], summary["arm"]), key=lambda x: (method_sort_key(x[0]), x[1]))[1]


def welch_interval(a: np.ndarray, b: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float, float]:
    """Difference of means ``mean(a) − mean(b)`` with Welch's t-interval.

    Standard error ``se = sqrt(s_a²/n_a + s_b²/n_b)``, degrees of freedom by Welch-Satterthwaite
    ``se⁴ / ((s_a²/n_a)²/(n_a−1) + (s_b²/n_b)²/(n_b−1))`` (Welch 1947).

    Args:
        a, b: shape ``(n_a,)`` and ``(n_b,)``, one value per seed.
        confidence: of the interval.

    Returns:
        ``(difference, low, high, dof)``; ``low``, ``high``, ``dof`` NaN unless both have 2 or
        more values (and NaN bounds where both spreads are 0).
    """
    from scipy.stats import t

    a, b = np.asarray(a, float), np.asarray(b, float)
    diff = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return diff, math.nan, math.nan, math.nan
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, math.nan, math.nan, math.nan
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(t.ppf((1 + confidence) / 2, dof)) * se
    return diff, diff - half, diff + half, float(dof)


BYTES_TOLERANCE = 0.1
"""Two arms' k-th evaluations are one point of comparison only when their mean text seen differs
by at most this share of the reference's (tokenizers of one byte budget step a little apart)."""


def _budget_reference(label: str, reference: str, arms: set[str]) -> str:
    """The reference at the budget of an arm whose cell label is ``label``: ``reference @label``
    where that label is an arm of its own (the study block's ``label_arms``, e.g. ``full @long``
    for ``lora r=8 @long``) and ``arms`` has it, else ``reference``."""
    own = f"{reference} @{label}"
    return own if label and own in arms else reference


def curve_gaps(curves: pd.DataFrame, reference: str | None = None, confidence: float = 0.95) -> pd.DataFrame:
    """Per arm and evaluation point: its mean validation bits per byte minus the reference arm's
    at the same point (< 0: the arm is ahead), with Welch's interval (:func:`welch_interval`).

    An arm of a labelled budget (``@long``) is measured from the reference's arm of that budget
    where there is one (:func:`_budget_reference`); a point counts only where both arms have
    seen about the same text (:data:`BYTES_TOLERANCE`), so an arm evaluated at other amounts
    (``@equal-steps``) has no gap rather than one to another budget's point.

    Args:
        curves: :func:`~bashkir_peft.report.cost.learning_curves_table`.
        reference: the preferred reference arm (:func:`reference_arm`).
        confidence: of the intervals.

    Returns:
        :data:`CURVE_GAP_COLUMNS` (``train_bytes_seen``: the arm's mean at the point;
        ``reference``: the arm it is measured from), one row per arm other than its reference
        and point both have, per model.
    """
    summary = curve_summary(curves, confidence)
    ref = reference_arm(summary, reference)
    if ref is None:
        return pd.DataFrame(columns=CURVE_GAP_COLUMNS)
    c = _points(curves)
    values = {k: g["bits_per_byte"].to_numpy() for k, g in c.groupby(["model", "arm", "point"])}
    seen = {(r["model"], r["arm"], r["point"]): r["train_bytes_seen"] for _, r in summary.iterrows()}
    arms = set(summary["arm"])
    rows = []
    for _, r in summary.iterrows():
        own_ref = _budget_reference(r["label"], ref, arms)
        key = (r["model"], own_ref, r["point"])
        if own_ref == r["arm"] or key not in values \
                or abs(r["train_bytes_seen"] - seen[key]) > BYTES_TOLERANCE * seen[key]:
            continue
        a, b = values[(r["model"], r["arm"], r["point"])], values[key]
        diff, low, high, dof = welch_interval(a, b, confidence)
        rows.append({"model": r["model"], "arm": r["arm"], "reference": own_ref, "point": r["point"],
                     "train_bytes_seen": r["train_bytes_seen"], "n": len(a), "n_reference": len(b),
                     "difference": diff, "ci_low": low, "ci_high": high, "dof": dof})
    return pd.DataFrame(rows, columns=CURVE_GAP_COLUMNS)
