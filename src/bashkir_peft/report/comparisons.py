"""A study's comparisons with their intervals, and the rule for when an interval is interpreted.

A grid's ``study`` block (:class:`~bashkir_peft.config.design.StudyDesign`) names its
comparisons before it runs; :func:`comparisons_table` measures them (and, for a grid without
the block, every pair of methods on the test split) with the paired differences of
:func:`~bashkir_peft.report.lm.differences_table`, and adds the forgetting of every trained
method against the base model. An interval from fewer than
:data:`~bashkir_peft.report.bootstrap.MIN_SEEDS` seeds or :data:`MIN_DOCUMENTS` documents is
flagged and not interpreted (:func:`interval_flag`, the book issue's rule).
"""

from __future__ import annotations

import pandas as pd

from bashkir_peft.config.design import Comparison, StudyDesign
from bashkir_peft.names import label_parts, method_sort_key
from bashkir_peft.report.bootstrap import MIN_SEEDS
from bashkir_peft.report.forgetting import FORGETTING_SPLITS, TRANSFER_SPLITS
from bashkir_peft.report.lm import differences_table
from bashkir_peft.report.multiplicity import family_of, holm, t_p_value
from bashkir_peft.report.runs import RunRecord

MIN_DOCUMENTS = 30
"""Fewer documents than this: an interval is shown but not interpreted."""

DESIGN_ROLES = ("primary", "secondary")
"""Roles of the comparisons a study names, on the split it names (each may repeat on the test
split as ``<role> (test split)``)."""
PAIR_ROLE = "pair"
"""Role of every pair of methods on the test split, for a grid without a ``study`` block."""
FORGETTING_ROLE = "forgetting"
"""Role of a trained method against ``base`` on an external set of :data:`FORGETTING_SPLITS`."""
GOLDFISH = "goldfish"
"""The protocol a forgetting or transfer set is compared under where the report's protocol did
not score it (FLORES-200 sides scored under the Goldfish protocol only: split ``<set> (goldfish)``)."""
TRANSFER_ROLE = "transfer"
"""Role of a trained method against ``base`` on an external set of :data:`TRANSFER_SPLITS`
(a related language never trained on; < 0: transfer)."""

COMPARISON_COLUMNS = ["role", "question", "model", "a", "b", "split", "bpb_a", "bpb_b", "difference", "ci_low",
                      "ci_high", "n_documents", "n_seeds_a", "n_seeds_b", "flag", "family", "p_value", "p_holm"]
"""Columns of :func:`comparisons_table`."""


def interval_flag(row: dict) -> str | None:
    """Why the interval of a difference A − B is not to be interpreted.

    Args:
        row: a comparison with ``ci_low`` (NaN: no interval), ``n_documents``, ``a``, ``b``
            (method labels; ``base`` is seed-free) and ``n_seeds_a``, ``n_seeds_b``.

    Returns:
        The reasons joined with ``"; "`` (no interval; fewer than :data:`MIN_DOCUMENTS`
        documents; a trained method with fewer than
        :data:`~bashkir_peft.report.bootstrap.MIN_SEEDS` seeds), or ``None``: it may be.
    """
    why = []
    if pd.isna(row.get("ci_low")):
        why.append("no interval")
    if row["n_documents"] < MIN_DOCUMENTS:
        why.append(f"{row['n_documents']} documents (< {MIN_DOCUMENTS})")
    seeds = [n for n, label in ((row["n_seeds_a"], row["a"]), (row["n_seeds_b"], row["b"]))
             if label_parts(label)[0] != "base"]
    if any(n < MIN_SEEDS for n in seeds):
        why.append(f"fewer than {MIN_SEEDS} seeds")
    return "; ".join(why) or None


def _oriented(diffs: pd.DataFrame, a: str, b: str) -> dict | None:
    """The row of ``diffs`` for A − B (a B − A row negated, its interval swapped), or ``None``."""
    for sign, (x, y) in ((1.0, (a, b)), (-1.0, (b, a))):
        hit = diffs[(diffs["method_a"] == x) & (diffs["method_b"] == y)]
        if len(hit):
            r = hit.iloc[0]
            lo, hi = sign * r["ci_low"], sign * r["ci_high"]
            return {"bpb_a": r["bpb_a"] if sign > 0 else r["bpb_b"], "bpb_b": r["bpb_b"] if sign > 0 else r["bpb_a"],
                    "difference": sign * r["difference"], "ci_low": min(lo, hi), "ci_high": max(lo, hi),
                    "n_documents": int(r["n_documents"]),
                    "p_value": t_p_value(float(r["difference"]), float(r["std_error"]), float(r["dof"])),
                    "n_seeds_a": int(r["n_seeds_a"] if sign > 0 else r["n_seeds_b"]),
                    "n_seeds_b": int(r["n_seeds_b"] if sign > 0 else r["n_seeds_a"])}
    return None


def comparisons_table(runs: list[RunRecord], design: StudyDesign | None, *, protocol: str | None,
                      n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0,
                      known: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """The study's comparisons and the forgetting of every trained method, with intervals.

    Rows, each a difference A − B in bits per byte on the documents every run of both scored
    (:func:`~bashkir_peft.report.lm.differences_table`: interval over seeds and documents;
    negative = A better):
    - ``primary`` and ``secondary`` (:data:`DESIGN_ROLES`): the study's comparisons on their
      split, each also on the corpus's test split when that is another split (role
      ``... (test split)``); without a ``study`` block, every pair of methods on the test split
      (role :data:`PAIR_ROLE`);
    - :data:`FORGETTING_ROLE`: every trained method against ``base`` on each external set of
      :data:`~bashkir_peft.report.forgetting.FORGETTING_SPLITS` that was scored (> 0: forgotten);
    - :data:`TRANSFER_ROLE`: the same on each set of
      :data:`~bashkir_peft.report.forgetting.TRANSFER_SPLITS` (Tatar; < 0: transfer). A set
      the report's protocol did not score is compared under :data:`GOLDFISH` where it was
      scored so (bits per byte of the second halves), its split named ``<set> (goldfish)``.

    Args:
        runs: all runs (the finished ones are used).
        design: the grid's study block (``None``: a grid without one).
        protocol: the evaluation protocol of the per-document rows.
        n_resamples, confidence, seed: of the bootstrap.
        known: split -> its :func:`~bashkir_peft.report.lm.differences_table` already computed
            with the same protocol and bootstrap settings (the report's headline split), not
            computed again.

    Returns:
        :data:`COMPARISON_COLUMNS`; ``flag`` says why a row's interval is not interpreted
        (:func:`interval_flag`); ``family`` (:func:`~bashkir_peft.report.multiplicity.family_of`:
        ``primary``, the one confirmatory row; ``secondary``, ``forgetting``: exploratory),
        ``p_value`` (two-sided, from the interval's t: < 0.05 where the 95 % interval
        excludes 0) and ``p_holm`` (Holm-adjusted within the family).

    Raises:
        RecordError: a finished run's per-document table does not match the contract.
    """
    cache: dict[tuple[str, str | None], pd.DataFrame] = {(k, protocol): v for k, v in (known or {}).items()}

    def diffs(split: str, proto: str | None = protocol) -> pd.DataFrame:
        if (split, proto) not in cache:
            cache[split, proto] = differences_table(runs, protocol=proto, split=split, n_resamples=n_resamples,
                                                    confidence=confidence, seed=seed)
        return cache[split, proto]

    wanted: list[tuple[str, Comparison]] = []
    if design is not None:
        for role, c in [("primary", design.primary), *(("secondary", c) for c in design.secondary)]:
            wanted.append((role, c))
            if c.split != "test":
                wanted.append((f"{role} (test split)", c.model_copy(update={"split": "test"})))
    else:
        for _, r in diffs("test").iterrows():
            wanted.append((PAIR_ROLE, Comparison(a=r["method_a"], b=r["method_b"], split="test", question="")))
    trained = sorted({r.method_label for r in runs if r.status == "finished" and r.method != "base"},
                     key=method_sort_key)
    for role, splits in ((FORGETTING_ROLE, FORGETTING_SPLITS), (TRANSFER_ROLE, TRANSFER_SPLITS)):
        for split in splits:
            for label in trained:
                wanted.append((role, Comparison(a=label, b="base", split=split, question="")))
    rows = []
    for role, c in wanted:
        d, split = diffs(c.split), c.split
        if d.empty and role in (FORGETTING_ROLE, TRANSFER_ROLE) and protocol != GOLDFISH:
            # a FLORES-200 side scored under the Goldfish protocol only: bits per byte of the
            # sentences' second halves, named so
            d, split = diffs(c.split, GOLDFISH), f"{c.split} ({GOLDFISH})"
        for model in sorted(set(d["model"])):
            row = _oriented(d[d["model"] == model], c.a, c.b)
            if row is None:
                continue
            row = {"role": role, "question": c.question, "model": model, "a": c.a, "b": c.b, "split": split,
                   **row}
            row["flag"] = interval_flag(row)
            row["family"] = family_of(role)
            rows.append(row)
    table = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    for _, idx in table.groupby("family").groups.items():  # Holm within each family; primary alone
        table.loc[idx, "p_holm"] = holm(table.loc[idx, "p_value"].to_numpy(float))
    return table
