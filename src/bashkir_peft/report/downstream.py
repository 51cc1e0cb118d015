"""Beyond perplexity: SIB-200 Bashkir topic classification of every run (notebook 06's records),
and the accuracy differences between methods with intervals over seeds and test sentences.

A classifier is selected by the typed fields of its
:class:`~bashkir_peft.records.DownstreamResult` (``approach``, ``k``, ``score``, ``selection``:
:class:`DownstreamMeasure`), never by matching the words of its ``setting``. Nothing here
writes files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from bashkir_peft.config.design import StudyDesign
from bashkir_peft.names import label_parts, method_sort_key
from bashkir_peft.records import DownstreamResult, RunFiles
from bashkir_peft.report.comparisons import interval_flag
from bashkir_peft.report.lm import difference_row
from bashkir_peft.report.multiplicity import holm, t_p_value
from bashkir_peft.report.runs import RunRecord

DOWNSTREAM_SCORES = ("accuracy", "accuracy_low", "accuracy_high", "macro_f1", "macro_f1_low", "macro_f1_high", "n")
"""The scores of a classifier the downstream table shows (intervals: percentile bootstrap over test sentences)."""
DOWNSTREAM_BASELINES = ("majority", "char_tfidf")
"""Approaches that do not depend on the model: shown once, with ``method_label`` ``baseline``."""

DOWNSTREAM_COMPARISON_COLUMNS = ["measure", "model", "a", "b", "accuracy_a", "accuracy_b", "difference", "ci_low",
                                 "ci_high", "n_documents", "n_seeds_a", "n_seeds_b", "flag", "p_value", "p_holm"]
"""Columns of :func:`downstream_comparisons`."""


@dataclass(frozen=True)
class DownstreamMeasure:
    """A classifier of the downstream records, by the typed fields of its result.

    Attributes:
        name: the measure's name in :func:`downstream_comparisons` (its ``measure`` column).
        approach: the result's ``approach`` (``in_context``, ``probe`` ...).
        k: the in-context shots (``None``: any).
        score: ``acc`` or ``acc_norm`` of an in-context result (``None``: any).
        selection: ``fixed`` or ``best on dev`` of a probe's layer (``None``: any).
    """

    name: str
    approach: str
    k: int | None = None
    score: str | None = None
    selection: str | None = None

    def selects(self, result: DownstreamResult) -> bool:
        """Whether ``result`` is this measure's classifier (every field the measure sets matches)."""
        wanted = {"approach": self.approach, "k": self.k, "score": self.score, "selection": self.selection}
        return all(getattr(result, field) == value for field, value in wanted.items() if value is not None)


ZERO_SHOT = DownstreamMeasure("zero-shot accuracy", "in_context", k=0, score="acc")
"""In-context classification without shots, the label of highest log-likelihood (lm-evaluation-harness ``acc``)."""
PROBE_ON_DEV = DownstreamMeasure("probe accuracy (layer chosen on dev)", "probe", selection="best on dev")
"""The linear probe on the layer chosen on the dev sentences."""
DOWNSTREAM_MEASURES = (ZERO_SHOT, PROBE_ON_DEV)
"""Downstream measures compared between methods (:func:`downstream_comparisons`), in order."""


def downstream_results(runs: list[RunRecord]) -> list[tuple[dict, DownstreamResult]]:
    """Every classifier of every finished run with a downstream record, as its table's row keys
    and its typed result, in the order of :func:`downstream_table`.

    The baselines (:data:`DOWNSTREAM_BASELINES`) do not depend on the model: they appear once
    (first), with ``method_label`` ``baseline``, from the first run that has them; the others
    follow sorted by model, method and seed.

    Args:
        runs: all runs.

    Returns:
        ``(keys, result)`` pairs; ``keys``: ``model, method_label, seed``.
    """
    rows, baselines = [], []
    for run in runs:
        if run.status != "finished" or run.downstream is None:
            continue
        for r in run.downstream.results:
            if r.approach in DOWNSTREAM_BASELINES:
                if not any(b.setting == r.setting for _, b in baselines):
                    baselines.append(({"model": None, "method_label": "baseline", "seed": None}, r))
            else:
                rows.append(({"model": run.model, "method_label": run.method_label, "seed": run.seed}, r))
    rows.sort(key=lambda kr: (kr[0]["model"], method_sort_key(kr[0]["method_label"]), kr[0]["seed"] or -1))
    return baselines + rows


def downstream_table(runs: list[RunRecord]) -> pd.DataFrame:
    """SIB-200 Bashkir classification scores of every finished run with a downstream record.

    The baselines (``majority``, ``char_tfidf``) do not depend on the model: they appear once,
    with ``method_label`` ``baseline``, from the first run that has them
    (:func:`downstream_results`).

    Args:
        runs: all runs.

    Returns:
        One row per run x classifier: ``model, method_label, seed, approach, setting`` and
        :data:`DOWNSTREAM_SCORES` (intervals: percentile bootstrap over test sentences).
    """
    cols = ["model", "method_label", "seed", "approach", "setting", *DOWNSTREAM_SCORES]
    rows = [{**keys, "approach": r.approach, "setting": r.setting, **{k: getattr(r, k) for k in DOWNSTREAM_SCORES}}
            for keys, r in downstream_results(runs)]
    return pd.DataFrame(rows, columns=cols)


def _correct(run: RunRecord) -> dict[str, pd.Series]:
    """Per downstream measure, 1.0/0.0 per test sentence (indexed by id) of a finished run.

    The measure's classifier is found in the run's record by its typed fields; its
    predictions are the rows of ``downstream_predictions.parquet`` the stage wrote for that
    classifier (the same ``approach`` and ``setting``: the table has no typed columns).
    """
    path = run.path / RunFiles.DOWNSTREAM_PREDICTIONS
    if run.status != "finished" or run.downstream is None or not path.is_file():
        return {}
    pred = pd.read_parquet(path)
    out = {}
    for measure in DOWNSTREAM_MEASURES:
        result = next((r for r in run.downstream.results if measure.selects(r)), None)
        if result is None:
            continue
        rows = pred[(pred["approach"] == result.approach) & (pred["setting"] == result.setting)]
        if len(rows):
            out[measure.name] = (rows["prediction"] == rows["category"]).astype(float).set_axis(rows["index_id"])
    return out


def downstream_comparisons(runs: list[RunRecord], design: StudyDesign | None, *, n_resamples: int = 2000,
                           confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Accuracy differences A − B on the downstream task (SIB-200 topics), for the study's
    comparisons and every trained method against ``base``, with an interval over seeds and
    test sentences: the bits-per-byte differences' paired row
    (:func:`~bashkir_peft.report.lm.difference_row`, hierarchical bootstrap) with each
    sentence's correctness (x ln 2) as its "NLL" and one "byte" per sentence, so the statistic
    is the difference of the mean accuracies.

    Args:
        runs: all runs (finished runs with a downstream record and its predictions are used).
        design: the grid's study block (``None``: only every trained method against ``base``).
        n_resamples, confidence, seed: of the bootstrap.

    Returns:
        :data:`DOWNSTREAM_COMPARISON_COLUMNS`: ``measure, model, a, b, accuracy_a, accuracy_b,
        difference, ci_low, ci_high, n_documents, n_seeds_a, n_seeds_b, flag`` (accuracies as
        shares; > 0: A classifies better; ``flag``:
        :func:`~bashkir_peft.report.comparisons.interval_flag`; ``p_value``: the t test of the
        interval; ``p_holm``: Holm-adjusted over every row, the downstream family, all of it
        exploratory: :mod:`bashkir_peft.report.multiplicity`), one block per measure of
        :data:`DOWNSTREAM_MEASURES`.
    """
    per: dict[tuple[str, str, str], list[pd.DataFrame]] = {}
    for run in runs:
        for name, correct in _correct(run).items():
            as_sums = pd.DataFrame({"nll": correct * math.log(2), "bytes": 1.0})
            per.setdefault((name, run.model, run.method_label), []).append(as_sums)
    pairs = [(c.a, c.b) for c in ([design.primary, *design.secondary] if design else [])]
    trained = sorted({lab for _, _, lab in per if label_parts(lab)[0] != "base"}, key=method_sort_key)
    pairs += [(lab, "base") for lab in trained if (lab, "base") not in pairs]
    rows = []
    for measure in DOWNSTREAM_MEASURES:
        name = measure.name
        for model in sorted({m for n, m, _ in per if n == name}):
            for a, b in pairs:
                sa, sb = per.get((name, model, a)), per.get((name, model, b))
                if not sa or not sb:
                    continue
                d = difference_row(sa, sb, a, b, n_resamples=n_resamples, confidence=confidence, seed=seed)
                if d is None:
                    continue
                row = {"measure": name, "model": model, "a": a, "b": b, "accuracy_a": d["bpb_a"],
                       "accuracy_b": d["bpb_b"], **{k: d[k] for k in ("difference", "ci_low", "ci_high",
                                                                      "n_documents", "n_seeds_a", "n_seeds_b")}}
                row["flag"] = interval_flag(row)
                row["p_value"] = t_p_value(float(d["difference"]), float(d["std_error"]), float(d["dof"]))
                rows.append(row)
    table = pd.DataFrame(rows, columns=DOWNSTREAM_COMPARISON_COLUMNS)
    table["p_holm"] = holm(table["p_value"].to_numpy(float))  # one family: every row is exploratory
    return table
