"""Language-model quality over seeds: the tidy metrics of every finished run, their mean and
spread over seeds, the headline protocol, and the paired differences in bits per byte between
methods on the same model with intervals over seeds and documents.

Every function takes :class:`~bashkir_peft.report.runs.RunRecord` objects (or tables built
from them) and returns a :class:`pandas.DataFrame`; nothing here writes files. The paired
differences read the runs' per-document tables (``eval_documents.parquet``).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from bashkir_peft.names import label_parts, method_sort_key
from bashkir_peft.records import METRICS
from bashkir_peft.report.bootstrap import hierarchical_bpb_difference, seed_level_problem
from bashkir_peft.report.runs import RUN_KEYS, RunRecord, eval_documents, eval_metrics, run_keys

DIFFERENCE_COLUMNS = ["model", "method_a", "method_b", "protocol", "split", "bpb_a", "bpb_b", "difference",
                      "ci_low", "ci_high", "std_error", "dof", "confidence", "n_documents", "n_seeds_a", "n_seeds_b",
                      "note"]
"""Columns of :func:`differences_table`."""


def metrics_table(runs: list[RunRecord]) -> pd.DataFrame:
    """Tidy evaluation metrics of the finished runs.

    Args:
        runs: all runs.

    Returns:
        One row per finished run x protocol x split x source: :data:`RUN_KEYS`, ``protocol,
        split, source`` and the metrics of :data:`~bashkir_peft.records.METRICS`.
    """
    frames = []
    for run in runs:
        if run.status != "finished":
            continue
        m = eval_metrics(run)
        for k, v in reversed(run_keys(run).items()):
            m.insert(0, k, v)
        frames.append(m)
    cols = [*RUN_KEYS, "protocol", "split", "source", *METRICS]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def summary_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation (ddof=1; NaN for one seed) and n over seeds, by
    model x method x protocol x split (all sources together).

    Args:
        metrics: :func:`metrics_table`.

    Returns:
        Columns ``model, method_label, protocol, split, n, <metric>_mean, <metric>_std`` for
        each metric of :data:`METRICS`, rows sorted by model then method.
    """
    m = metrics[metrics["source"] == "all"] if len(metrics) else metrics
    keys = ["model", "method_label", "protocol", "split"]
    if m.empty:
        return pd.DataFrame(columns=[*keys, "n"] + [f"{x}_{s}" for x in METRICS for s in ("mean", "std")])
    g = m.groupby(keys, sort=False)
    out = g.size().rename("n").to_frame()
    for x in METRICS:
        out[f"{x}_mean"] = g[x].mean()
        out[f"{x}_std"] = g[x].std(ddof=1)
    out = out.reset_index()
    out["_order"] = out["method_label"].map(method_sort_key)
    return out.sort_values(["model", "_order", "protocol", "split"]).drop(columns="_order").reset_index(drop=True)


def headline_protocol(metrics: pd.DataFrame, preferred: str = "rolling") -> str | None:
    """The protocol of the headline tables.

    Args:
        metrics: :func:`metrics_table`.
        preferred: the protocol wanted.

    Returns:
        ``preferred`` if any run was evaluated under it, else the protocol most rows have
        (``None`` without metrics).
    """
    if metrics.empty:
        return None
    protocols = metrics["protocol"].value_counts()
    return preferred if preferred in protocols.index else str(protocols.index[0])


def differences_table(runs: list[RunRecord], *, protocol: str | None, split: str = "test",
                      n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Differences in bits per byte between methods on the same model, with intervals over
    seeds and documents (:func:`~bashkir_peft.report.bootstrap.hierarchical_bpb_difference`).

    Documents are matched by id; only those scored by every run of both methods are used.
    Where a trained method has fewer than :data:`~bashkir_peft.report.bootstrap.MIN_SEEDS`
    seeds the seed level is degenerate: the row keeps its difference, has no interval
    (``ci_low``/``ci_high`` NaN), and ``note`` says why. The base model is seed-free.

    Args:
        runs: all runs (the finished ones are used).
        protocol: the evaluation protocol whose per-document rows are used (``None``: all).
        split: the evaluated split.
        n_resamples, confidence, seed: see :func:`~bashkir_peft.report.bootstrap.hierarchical_bpb_difference`.

    Returns:
        :data:`DIFFERENCE_COLUMNS`: ``model, method_a, method_b, protocol, split, bpb_a, bpb_b,
        difference, ci_low, ci_high, std_error, dof, confidence, n_documents, n_seeds_a,
        n_seeds_b, note`` (difference = bits_per_byte(A) - bits_per_byte(B), each the mean over
        its seeds; negative means A is better).

    Raises:
        RecordError: a finished run's per-document table is missing or does not match the
            contract (a missing ``id`` column is never replaced by row numbers).
    """
    per: dict[tuple[str, str], list[pd.DataFrame]] = {}
    for run in runs:
        if run.status != "finished":
            continue
        docs = eval_documents(run)
        if protocol is not None:
            docs = docs[docs["protocol"] == protocol]
        docs = docs[docs["split"] == split]
        if docs.empty:
            continue
        per.setdefault((run.model, run.method_label), []).append(docs.set_index("id")[["nll", "bytes"]])
    rows = []
    for model in sorted({m for m, _ in per}):
        labels = sorted((lab for m, lab in per if m == model), key=method_sort_key)
        for lo, hi in itertools.combinations(labels, 2):
            # lo precedes hi in the method order (base, full, lora, qlora): report hi - lo.
            row = difference_row(per[(model, hi)], per[(model, lo)], hi, lo,
                                 n_resamples=n_resamples, confidence=confidence, seed=seed)
            if row is not None:
                rows.append({"model": model, "method_a": hi, "method_b": lo, "protocol": protocol, "split": split,
                             **row})
    return pd.DataFrame(rows, columns=DIFFERENCE_COLUMNS)


def difference_row(runs_a: list[pd.DataFrame], runs_b: list[pd.DataFrame], label_a: str, label_b: str, *,
                   n_resamples: int, confidence: float, seed: int) -> dict | None:
    """One row of :func:`differences_table`: the paired difference A − B of two methods.

    bits_per_byte of a method = sum over the shared documents of its NLL (mean over its seeds)
    / (ln 2 x their bytes) (lm-evaluation-harness's bits per byte); the interval is
    :func:`~bashkir_peft.report.bootstrap.hierarchical_bpb_difference` (seeds, then documents,
    paired between the methods).

    Args:
        runs_a, runs_b: one per-document table per run (seed) of A and of B, indexed by document
            id, with columns ``nll`` (nats, summed over the document) and ``bytes`` (UTF-8).
        label_a, label_b: the method labels (a ``base`` label is seed-free).
        n_resamples, confidence, seed: of the bootstrap.

    Returns:
        ``bpb_a, bpb_b, difference, ci_low, ci_high, std_error, dof, confidence, n_documents,
        n_seeds_a, n_seeds_b, note`` (no interval, and a note why, where a trained method has
        too few seeds; a note of the documents left out because their scored bytes differ
        between runs, so that both methods are compared on the same text); ``None`` if the runs
        share no document scored on the same text.
    """
    common = runs_a[0].index
    for frame in (*runs_a[1:], *runs_b):
        common = common.intersection(frame.index)
    scored = pd.concat([f.loc[common, "bytes"] for f in (*runs_a, *runs_b)], axis=1)
    same_text = (scored.nunique(axis=1) == 1).to_numpy()  # a document cut or cleaned otherwise in one run
    common, other_text = common[same_text], int((~same_text).sum())
    if common.empty:
        return None
    nll_a = np.stack([f.loc[common, "nll"].to_numpy(dtype=float) for f in runs_a])
    nll_b = np.stack([f.loc[common, "nll"].to_numpy(dtype=float) for f in runs_b])
    n_bytes = runs_a[0].loc[common, "bytes"].to_numpy(dtype=float)
    total = math.log(2) * n_bytes.sum()
    row = {"bpb_a": nll_a.mean(axis=0).sum() / total, "bpb_b": nll_b.mean(axis=0).sum() / total,
           "confidence": confidence, "n_documents": len(common), "n_seeds_a": len(runs_a), "n_seeds_b": len(runs_b)}
    seeded = {lab: label_parts(lab)[0] != "base" for lab in (label_a, label_b)}
    problems = [p for p in (seed_level_problem(len(runs_a), seeded[label_a], label_a),
                            seed_level_problem(len(runs_b), seeded[label_b], label_b)) if p]
    left_out = (f"{other_text} document(s) left out: their scored bytes differ between runs (another cut or "
                "cleaning of the same document)") if other_text else None
    if problems:
        return {**row, "difference": row["bpb_a"] - row["bpb_b"], "ci_low": math.nan, "ci_high": math.nan,
                "std_error": math.nan, "dof": math.nan, "note": "; ".join([*problems, *filter(None, [left_out])])}
    ci = hierarchical_bpb_difference(nll_a, nll_b, n_bytes, seeded_a=seeded[label_a], seeded_b=seeded[label_b],
                                     n_resamples=n_resamples, confidence=confidence, seed=seed)
    return {**row, "difference": ci.estimate, "ci_low": ci.low, "ci_high": ci.high, "std_error": ci.std_error,
            "dof": ci.dof, "note": left_out}
