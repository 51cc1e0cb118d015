"""The language of the generated text: every run's generation measures, the language rates pooled
over seeds with bootstrap intervals over prompts, and their summary by model and method.

The measures come from each run's generation record
(:class:`~bashkir_peft.records.GenerationSummary`), the intervals from its per-prompt table
(``generations.parquet``). Nothing here writes files.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bashkir_peft.names import REFERENCE_LABEL, method_sort_key
from bashkir_peft.records import (
    GENERATION_RATE_COLUMNS,
    LANGUAGES,
    GenerationSummary,
    RecordError,
    RunFiles,
    read_table,
)
from bashkir_peft.report.bootstrap import pooled_rate_interval, prompt_rate_interval
from bashkir_peft.report.runs import RUN_KEYS, RunRecord, as_float, run_keys

RATE_INTERVALS = (*(f"share_{lang}" for lang in LANGUAGES), "code_switch_rate")
"""The generation rates that get an interval over prompts and seeds."""


def _generation_row(keys: dict, summary: GenerationSummary) -> dict:
    """One row of :func:`generation_table`: ``keys`` and the numbers of ``summary``."""
    row = dict(keys)
    nested = {"language_shares", "code_switch_languages", "switch_rates", "crosscheck"}
    for name, value in summary.model_dump(exclude=nested).items():
        row["n_continuations" if name == "n" else name] = as_float(value)
    for lang in LANGUAGES:
        row[f"share_{lang}"] = as_float(summary.language_shares.get(lang))
    # before issue 13 a long "other" sentence counted as a switch: no comparable rate then
    if "other" in summary.code_switch_languages:
        row["code_switch_rate"] = math.nan
    row["crosscheck_agreement"] = as_float(summary.crosscheck.agreement if summary.crosscheck else None)
    return row


def generation_table(runs: list[RunRecord]) -> pd.DataFrame:
    """The generation measures of every finished run with a generation record.

    Args:
        runs: all runs.

    Returns:
        One row per run: the run keys, every number of its
        :class:`~bashkir_peft.records.GenerationSummary` (``n`` as ``n_continuations``; NaN
        where undefined; ``code_switch_rate`` NaN for records that counted ``other`` as a
        switch), the language shares of the generated text (``share_bak``, ``share_rus``,
        ``share_eng``, ``share_other``) and ``crosscheck_agreement`` (with fastText lid.176). Where a record has a
        ``reference_summary`` (the same measures on the test documents' own continuations
        of the prompts), one row per model with method :data:`REFERENCE_LABEL` is added (the
        first such record of the model): what Bashkir text itself scores.
    """
    rows, refs = [], {}
    for run in runs:
        rec = run.generate
        if run.status != "finished" or rec is None:
            continue
        rows.append(_generation_row(run_keys(run), rec.summary))
        if rec.reference_summary is not None and run.model not in refs:
            refs[run.model] = _generation_row(
                {"run_id": run.run_id, "model": run.model, "method": "reference",
                 "method_label": REFERENCE_LABEL, "lora_r": None, "seed": None}, rec.reference_summary)
    return pd.DataFrame(rows + list(refs.values()))


def _shared_prompts(tables: list[pd.DataFrame]) -> bool:
    """Whether every seed's table continues the same prompts in the same order (and any has
    a non-empty continuation): then prompts are resampled once for all seeds."""
    ids = [t["prompt_id"].astype(str).tolist() if "prompt_id" in t.columns else None for t in tables]
    return (ids[0] is not None and len(ids[0]) > 0 and all(i == ids[0] for i in ids)
            and any((t["n_letters"] > 0).any() for t in tables))


def generation_intervals(runs: list[RunRecord], *, n_resamples: int = 2000, confidence: float = 0.95,
                         seed: int = 0) -> pd.DataFrame:
    """Language rates of the generated text by model x method, pooled over seeds, each with a
    bootstrap interval over prompts shared by the seeds, then seeds, where every seed continued
    the same prompts (:func:`bashkir_peft.report.bootstrap.prompt_rate_interval`), else over
    prompts within seeds (:func:`bashkir_peft.report.bootstrap.pooled_rate_interval`).

    Rates (non-empty continuations only): ``share_<lang>`` = letters of sentences labelled
    ``lang`` / letters of all sentences; ``code_switch_rate`` = share of continuations with a
    sentence of ``min_letters``+ letters labelled Russian or English.

    Args:
        runs: all runs; finished runs whose ``generations.parquet`` has the columns of
            :data:`~bashkir_peft.records.GENERATION_RATE_COLUMNS` count (tables written before
            issue 13 lack ``long_*`` and are left out).
        n_resamples, confidence, seed: of the bootstrap.

    Returns:
        One row per model x method_label: ``n_prompts`` (continuations, all seeds), and per
        rate of :data:`RATE_INTERVALS` the pooled estimate and ``<rate>_low``/``<rate>_high``.
    """
    groups: dict[tuple[str, str], list[pd.DataFrame]] = {}
    for run in runs:
        path = run.path / RunFiles.GENERATIONS
        if run.status != "finished" or run.generate is None or not path.is_file():
            continue
        try:
            df = read_table(path, GENERATION_RATE_COLUMNS)
        except RecordError:
            continue  # written before the per-label columns existed
        groups.setdefault((run.model, run.method_label), []).append(df)
    rows = []
    for (model, label), every in groups.items():
        if _shared_prompts(every):
            row = {"model": model, "method_label": label, "n_prompts": int(sum((t["n_letters"] > 0).sum() for t in every))}
            letters = np.stack([t[[f"letters_{lang}" for lang in LANGUAGES]].sum(axis=1).to_numpy() for t in every])
            nums = {f"share_{lang}": (np.stack([t[f"letters_{lang}"].to_numpy() for t in every]), letters)
                    for lang in LANGUAGES}
            nums["code_switch_rate"] = (np.stack([(t["long_rus"] | t["long_eng"]).to_numpy(float) for t in every]),
                                        np.stack([(t["n_letters"] > 0).to_numpy(float) for t in every]))
            for name, (num, den) in nums.items():
                ci = prompt_rate_interval(num, den, n_resamples=n_resamples, confidence=confidence, seed=seed)
                row.update({name: ci.estimate, f"{name}_low": ci.low, f"{name}_high": ci.high})
            rows.append(row)
            continue
        tables = [t[t["n_letters"] > 0] for t in every]
        tables = [t for t in tables if len(t)]
        if not tables:
            continue
        row = {"model": model, "method_label": label, "n_prompts": sum(len(t) for t in tables)}
        letters = [t[[f"letters_{lang}" for lang in LANGUAGES]].sum(axis=1).to_numpy() for t in tables]
        nums = {f"share_{lang}": ([t[f"letters_{lang}"].to_numpy() for t in tables], letters) for lang in LANGUAGES}
        nums["code_switch_rate"] = ([(t["long_rus"] | t["long_eng"]).to_numpy(float) for t in tables], None)
        for name, (num, den) in nums.items():
            ci = pooled_rate_interval(num, den, n_resamples=n_resamples, confidence=confidence, seed=seed)
            row.update({name: ci.estimate, f"{name}_low": ci.low, f"{name}_high": ci.high})
        rows.append(row)
    return pd.DataFrame(rows)


def generation_summary(gen: pd.DataFrame, intervals: pd.DataFrame | None = None) -> pd.DataFrame:
    """Mean over seeds of the generation metrics, by model x method.

    Args:
        gen: :func:`generation_table`.
        intervals: :func:`generation_intervals`; where it has a row, the rates of
            :data:`RATE_INTERVALS` are its pooled estimates (not the mean of per-seed rates)
            with their ``_low``/``_high`` bounds, and ``n_prompts`` is added.

    Returns:
        ``model, method_label, n`` (runs) and the mean of every numeric column, sorted by
        model then method.
    """
    if gen.empty:
        return gen
    num = [c for c in gen.columns if c not in RUN_KEYS and pd.api.types.is_numeric_dtype(gen[c])]
    g = gen.groupby(["model", "method_label"], as_index=False)
    out = g[num].mean()
    out.insert(2, "n", g.size()["size"].to_numpy())
    if intervals is not None and len(intervals):
        out = out.merge(intervals, on=["model", "method_label"], how="left", suffixes=("", "_pooled"))
        for name in RATE_INTERVALS:
            pooled = out.pop(f"{name}_pooled")
            out[name] = pooled.where(pooled.notna(), out[name])
    order = sorted(range(len(out)), key=lambda i: (out["model"].iloc[i], method_sort_key(out["method_label"].iloc[i])))
    return out.iloc[order].reset_index(drop=True)
