"""Tidy tables of a grid's runs: metrics over seeds, paired differences, cost, fertility,
generation language, the paper's quoted numbers, failures, downstream classification and
tokenizer parity.

Every function takes :class:`~bashkir_peft.report.runs.RunRecord` objects (or tables built
from them) and returns a :class:`pandas.DataFrame`; nothing here writes files. The paired
differences and the fertility fallback read the runs' per-document tables, and
:func:`fertility_table` the data folder's tokenizer table.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd

from bashkir_peft.data.folder import read_manifest
from bashkir_peft.data.stats import data_mode
from bashkir_peft.errors import DataError, ModelNotFoundError
from bashkir_peft.models.registry import get_entry
from bashkir_peft.names import REFERENCE_LABEL, label_parts, method_label, method_sort_key
from bashkir_peft.records import (
    FERTILITY_COLUMNS,
    GENERATION_RATE_COLUMNS,
    LANGUAGES,
    METRICS,
    DataFiles,
    GenerationSummary,
    RecordError,
    RunFiles,
    read_table,
)
from bashkir_peft.report.bootstrap import hierarchical_bpb_difference, pooled_rate_interval, seed_level_problem
from bashkir_peft.report.runs import RunRecord, eval_documents, eval_metrics

# The paper's stated test perplexities (Arabov & Khaybullina, arXiv 2605.04948, abstract and
# results). Only these four numbers are quoted; everything else in the report is ours.
PAPER_SOURCE = "quoted from the paper (Arabov & Khaybullina, arXiv 2605.04948)"
PAPER_NUMBERS = (
    {"model": "gpt2-medium", "method": "full", "lora_r": None, "perplexity": 3.34},
    {"model": "mistral-7b", "method": "qlora", "lora_r": None, "perplexity": 3.79},
    {"model": "phi-2", "method": "qlora", "lora_r": None, "perplexity": 3.81},
    {"model": "deepseek-7b", "method": "lora", "lora_r": 8, "perplexity": 129.55},
)
RUN_KEYS = ["run_id", "model", "method", "method_label", "lora_r", "seed"]
"""Columns of the data folder's tokenizer table the report reads
(:func:`bashkir_peft.data.fertility.profile_split` writes them)."""


def _float(x: float | int | None) -> float:
    return math.nan if x is None else float(x)


def _run_keys(run: RunRecord) -> dict:
    return {"run_id": run.run_id, "model": run.model, "method": run.method,
            "method_label": run.method_label, "lora_r": run.lora_r, "seed": run.seed}


def runs_table(runs: list[RunRecord]) -> pd.DataFrame:
    """One row per run: keys, status, error, trainable parameters and training cost.

    Args:
        runs: all runs.

    Returns:
        The run keys, ``lora_alpha`` (training parameter of an adapter run), ``status``,
        ``failed_stage``, ``error``, then from the training record ``trainable_params``,
        ``total_params``, ``wall_time_s``, ``peak_rss_mib``, ``peak_gpu_mib`` (its ``cost``),
        ``tokens_per_s``, ``tokens_seen``, and ``peak_memory_mib`` (the GPU peak where there
        is one, else the RSS peak). A base run has ``trainable_params`` 0; a field the record
        does not have yet is NaN.
    """
    rows = []
    for run in runs:
        train = run.train
        cost = train.cost if train else None
        row = {**_run_keys(run),
               "lora_alpha": train.params.get("lora_alpha") if train and run.lora_r is not None else None,
               "status": run.status, "failed_stage": run.failed_stage, "error": run.error,
               "trainable_params": 0.0 if run.method == "base" else _float(train.trainable_params if train else None),
               "total_params": _float(train.total_params if train else None),
               "wall_time_s": _float(cost.wall_time_s if cost else None),
               "peak_rss_mib": _float(cost.peak_rss_mib if cost else None),
               "peak_gpu_mib": _float(cost.peak_gpu_mib if cost else None),
               "tokens_per_s": _float(train.tokens_per_s if train else None),
               "tokens_seen": _float(train.tokens_seen if train else None)}
        row["peak_memory_mib"] = row["peak_gpu_mib"] if not math.isnan(row["peak_gpu_mib"]) else row["peak_rss_mib"]
        rows.append(row)
    return pd.DataFrame(rows)


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
        for k, v in reversed(_run_keys(run).items()):
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
        Columns ``model, method_a, method_b, protocol, split, bpb_a, bpb_b, difference,
        ci_low, ci_high, std_error, dof, confidence, n_documents, n_seeds_a, n_seeds_b, note``
        (difference = bits_per_byte(A) - bits_per_byte(B), each the mean over its seeds;
        negative means A is better).

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
    cols = ["model", "method_a", "method_b", "protocol", "split", "bpb_a", "bpb_b", "difference",
            "ci_low", "ci_high", "std_error", "dof", "confidence", "n_documents", "n_seeds_a", "n_seeds_b", "note"]
    return pd.DataFrame(rows, columns=cols)


def difference_row(runs_a: list[pd.DataFrame], runs_b: list[pd.DataFrame], label_a: str, label_b: str, *,
                    n_resamples: int, confidence: float, seed: int) -> dict | None:
    """One row of :func:`differences_table` from the per-document tables (indexed by id) of
    each run of A and of B; ``None`` if they share no document."""
    common = runs_a[0].index
    for frame in (*runs_a[1:], *runs_b):
        common = common.intersection(frame.index)
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
    if problems:
        return {**row, "difference": row["bpb_a"] - row["bpb_b"], "ci_low": math.nan, "ci_high": math.nan,
                "std_error": math.nan, "dof": math.nan, "note": "; ".join(problems)}
    ci = hierarchical_bpb_difference(nll_a, nll_b, n_bytes, seeded_a=seeded[label_a], seeded_b=seeded[label_b],
                                     n_resamples=n_resamples, confidence=confidence, seed=seed)
    return {**row, "difference": ci.estimate, "ci_low": ci.low, "ci_high": ci.high, "std_error": ci.std_error,
            "dof": ci.dof, "note": None}


def quality_cost_table(runs_tab: pd.DataFrame, metrics: pd.DataFrame, protocol: str | None,
                       split: str = "test") -> pd.DataFrame:
    """Finished runs with their training cost beside their metrics.

    Args:
        runs_tab: :func:`runs_table`.
        metrics: :func:`metrics_table`.
        protocol, split: the evaluation whose metrics are used (all sources together).

    Returns:
        One row per finished run: the columns of :func:`metrics_table` and ``trainable_params,
        total_params, wall_time_s, peak_memory_mib, tokens_per_s, tokens_seen``.
    """
    if metrics.empty or runs_tab.empty:
        return pd.DataFrame()
    m = metrics[(metrics["protocol"] == protocol) & (metrics["split"] == split) & (metrics["source"] == "all")]
    cost_cols = ["run_id", "trainable_params", "total_params", "wall_time_s", "peak_memory_mib",
                 "tokens_per_s", "tokens_seen"]
    return m.merge(runs_tab[cost_cols], on="run_id", how="left")


def read_fertility(data_dir: Path) -> pd.DataFrame | None:
    """The data folder's tokenizer table (``tokenizer_fertility.parquet``).

    Args:
        data_dir: a prepared data folder.

    Returns:
        The table (columns include :data:`~bashkir_peft.records.FERTILITY_COLUMNS`), or ``None`` where the data
        stage profiled no tokenizer.

    Raises:
        RecordError: the table is unreadable or lacks (or mistypes) a column of
            :data:`~bashkir_peft.records.FERTILITY_COLUMNS`.
    """
    path = data_dir / DataFiles.FERTILITY
    return read_table(path, FERTILITY_COLUMNS) if path.is_file() else None


def fertility_table(runs: list[RunRecord], quality: pd.DataFrame, data_dir: str | Path | None = None,
                    protocol: str | None = None, split: str = "test") -> pd.DataFrame:
    """Fertility (tokens per whitespace word) of each model's tokenizer beside its bits_per_byte.

    Fertility comes from the data folder's tokenizer table (:func:`read_fertility`) where it
    has the model's row (or a row of the model's registry tokenizer: tiny-gpt2 is profiled
    as gpt2), else from the evaluation's own per-document sums under ``protocol`` (scored
    tokens / whitespace words of the same documents); the column ``fertility_source`` says
    which. A run with an adapted tokenizer (grid axis ``tokenizer``) always takes its own
    evaluation sums: the data folder profiles the base tokenizers only.

    Args:
        runs: all runs (the finished ones are used).
        quality: :func:`quality_cost_table`.
        data_dir: the prepared data folder (``None``: evaluation sums only).
        protocol, split: the protocol and split of the evaluation sums.

    Returns:
        Columns ``model, method_label, fertility, fertility_source, bits_per_byte, perplexity``
        (mean over seeds).

    Raises:
        RecordError: a tokenizer table or a per-document table that does not match the contract.
    """
    cols = ["model", "method_label", "fertility", "fertility_source", "bits_per_byte", "perplexity"]
    if quality.empty:
        return pd.DataFrame(columns=cols)
    prep = read_fertility(Path(data_dir)) if data_dir else None
    fert: dict[str, tuple[float, str]] = {}
    for model in ({r.model for r in runs if r.status == "finished"} if prep is not None else ()):
        name, rows = model, prep[prep["model"] == model]
        if rows.empty:
            name = _registry_tokenizer(model)
            rows = prep[prep["tokenizer"] == name]
        if len(rows):
            row = rows.iloc[0]
            fert[model] = (float(row["fertility"]), f"data prep ({name} tokenizer, {row['split']} split)")
    by_model: dict[str, list[float]] = {}
    adapted: dict[tuple[str, str], list[float]] = {}
    for run in runs:
        is_adapted = run.cell.params.tokenizer != "base"
        if run.status != "finished" or (run.model in fert and not is_adapted):
            continue
        docs = eval_documents(run)
        docs = docs[docs["split"] == split]  # not the external sets' rows (other languages)
        if protocol is not None and (docs["protocol"] == protocol).any():
            docs = docs[docs["protocol"] == protocol]
        if docs["words"].sum() > 0:
            (adapted.setdefault((run.model, run.method_label), []) if is_adapted else by_model.setdefault(run.model, [])).append(
                float(docs["tokens"].sum() / docs["words"].sum()))
    source = "evaluation sums (scored tokens / words)"
    for model, vals in by_model.items():
        fert[model] = (float(np.mean(vals)), source)
    g = quality.groupby(["model", "method_label"], as_index=False)[["bits_per_byte", "perplexity"]].mean()
    own = {key: (float(np.mean(vals)), source) for key, vals in adapted.items()}
    found = [own.get((model, label)) or fert.get(model, (math.nan, "not found")) for model, label in
             zip(g["model"], g["method_label"])]
    g["fertility"] = [f[0] for f in found]
    g["fertility_source"] = [f[1] for f in found]
    return g[cols]


DOWNSTREAM_SCORES = ("accuracy", "accuracy_low", "accuracy_high", "macro_f1", "macro_f1_low", "macro_f1_high", "n")
DOWNSTREAM_BASELINES = ("majority", "char_tfidf")


def downstream_table(runs: list[RunRecord]) -> pd.DataFrame:
    """SIB-200 Bashkir classification scores of every finished run with a downstream record.

    The baselines (``majority``, ``char_tfidf``) do not depend on the model: they appear once,
    with ``method_label`` ``baseline``, from the first run that has them.

    Returns:
        One row per run x classifier: ``model, method_label, seed, approach, setting`` and
        :data:`DOWNSTREAM_SCORES` (intervals: percentile bootstrap over test sentences).
    """
    cols = ["model", "method_label", "seed", "approach", "setting", *DOWNSTREAM_SCORES]
    rows, baselines = [], []
    for run in runs:
        if run.status != "finished" or run.downstream is None:
            continue
        for r in run.downstream.results:
            scores = {k: getattr(r, k) for k in DOWNSTREAM_SCORES}
            if r.approach in DOWNSTREAM_BASELINES:
                if not any(b["setting"] == r.setting for b in baselines):
                    baselines.append({"model": None, "method_label": "baseline", "seed": None,
                                      "approach": r.approach, "setting": r.setting, **scores})
            else:
                rows.append({"model": run.model, "method_label": run.method_label, "seed": run.seed,
                             "approach": r.approach, "setting": r.setting, **scores})
    rows.sort(key=lambda r: (r["model"], method_sort_key(r["method_label"]), r["seed"] or -1))
    return pd.DataFrame(baselines + rows, columns=cols)


def parity_table(data_dir: str | Path | None) -> pd.DataFrame:
    """Tokenizer fertility and parity premium per model (the data folder's tokenizer table).

    Returns:
        Columns ``model, tokenizer, fertility, premium, tokens_bak, tokens_eng``; empty where
        data preparation profiled no tokenizer or no parity.

    Raises:
        RecordError: a tokenizer table that does not match the contract.
    """
    cols = ["model", "tokenizer", "fertility", "premium", "tokens_bak", "tokens_eng"]
    prep = read_fertility(Path(data_dir)) if data_dir else None
    if prep is None or "premium" not in prep.columns:
        return pd.DataFrame(columns=cols)
    return prep[cols].reset_index(drop=True)


def _registry_tokenizer(model: str) -> str | None:
    """The offline tokenizer a registry model uses (``None`` for a Hub id or a local path)."""
    try:
        return get_entry(model).tokenizer
    except ModelNotFoundError:
        return None


def _generation_row(keys: dict, summary: GenerationSummary) -> dict:
    row = dict(keys)
    nested = {"language_shares", "code_switch_languages", "switch_rates", "crosscheck"}
    for name, value in summary.model_dump(exclude=nested).items():
        row["n_continuations" if name == "n" else name] = _float(value)
    for lang in LANGUAGES:
        row[f"share_{lang}"] = _float(summary.language_shares.get(lang))
    # before issue 13 a long "other" sentence counted as a switch: no comparable rate then
    if "other" in summary.code_switch_languages:
        row["code_switch_rate"] = math.nan
    row["crosscheck_agreement"] = _float(summary.crosscheck.agreement if summary.crosscheck else None)
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
        rows.append(_generation_row(_run_keys(run), rec.summary))
        if rec.reference_summary is not None and run.model not in refs:
            refs[run.model] = _generation_row(
                {"run_id": run.run_id, "model": run.model, "method": "reference",
                 "method_label": REFERENCE_LABEL, "lora_r": None, "seed": None}, rec.reference_summary)
    return pd.DataFrame(rows + list(refs.values()))


RATE_INTERVALS = (*(f"share_{lang}" for lang in LANGUAGES), "code_switch_rate")
"""The generation rates that get an interval over prompts and seeds."""


def generation_intervals(runs: list[RunRecord], *, n_resamples: int = 2000, confidence: float = 0.95,
                         seed: int = 0) -> pd.DataFrame:
    """Language rates of the generated text by model x method, pooled over seeds, each with a
    bootstrap interval over prompts within seeds
    (:func:`bashkir_peft.report.bootstrap.pooled_rate_interval`).

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
        groups.setdefault((run.model, run.method_label), []).append(df[df["n_letters"] > 0])
    rows = []
    for (model, label), tables in groups.items():
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


def data_modes(runs: list[RunRecord]) -> dict[tuple[str, str], str]:
    """The data mode (:func:`bashkir_peft.data.stats.data_mode`) of each model x method's
    finished runs, read from their data folders' manifests.

    Args:
        runs: all runs (the finished ones are used).

    Returns:
        ``(model, method_label)`` -> ``cleaned``, ``paper``, ``pre-split``, or ``unknown
        (...)`` where a data folder is gone; several modes are joined with ``" + "``.
    """
    by_dir: dict[str, str] = {}
    out: dict[tuple[str, str], set[str]] = {}
    for run in runs:
        if run.status != "finished":
            continue
        folder = run.cell.data_dir
        if folder not in by_dir:
            try:
                by_dir[folder] = data_mode(read_manifest(folder))
            except DataError:
                by_dir[folder] = f"unknown (no readable manifest in {folder})"
        out.setdefault((run.model, run.method_label), set()).add(by_dir[folder])
    return {k: " + ".join(sorted(v)) for k, v in out.items()}


def paper_table(summary: pd.DataFrame, modes: dict[tuple[str, str], str] | None = None) -> pd.DataFrame:
    """The paper's stated test perplexities beside ours (token perplexity, ``paper`` protocol,
    test split, mean ± std over seeds), every quoted value labelled with its source and each
    of ours with the data mode that produced it.

    Args:
        summary: :func:`summary_table`.
        modes: :func:`data_modes` of the runs (``None``: not known).

    Returns:
        One row per quoted number and matching cell of ours (a quoted number without a rank
        matches every rank of its method): ``model, method, metric, paper, paper_source,
        ours_method, ours_mean, ours_std, ours_n, ours_data_mode`` (``paper``: every document
        as read, like the paper's split; ``cleaned``: our filtered, de-duplicated text, a
        different kind of test set). Ours is empty where the grid has no such cell (e.g. 7B
        models in the CPU demo).
    """
    rows = []
    modes = modes or {}
    s = summary[(summary["protocol"] == "paper") & (summary["split"] == "test")] if len(summary) else summary
    for p in PAPER_NUMBERS:
        label = method_label(p["method"], p["lora_r"])
        ours = s[[_quoted_cell_matches(p, m, lab) for m, lab in zip(s["model"], s["method_label"])]] if len(s) else s
        base = {"model": p["model"], "method": label, "metric": "token perplexity (test)",
                "paper": p["perplexity"], "paper_source": PAPER_SOURCE}
        if len(ours) == 0:
            rows.append({**base, "ours_method": None, "ours_mean": math.nan, "ours_std": math.nan, "ours_n": 0,
                         "ours_data_mode": None})
        for _, o in ours.iterrows():
            rows.append({**base, "ours_method": o["method_label"], "ours_mean": o["perplexity_mean"],
                         "ours_std": o["perplexity_std"], "ours_n": int(o["n"]),
                         "ours_data_mode": modes.get((o["model"], o["method_label"]), "unknown")})
    return pd.DataFrame(rows)


def _quoted_cell_matches(quoted: dict, model: str, label: str) -> bool:
    """Whether our cell ``model``/``label`` is the paper's ``quoted`` one (a quoted number
    without a rank matches every rank of its method)."""
    if model != quoted["model"]:
        return False
    if quoted["lora_r"] is None:
        return label_parts(label)[0] == quoted["method"]
    return label == method_label(quoted["method"], quoted["lora_r"])


def failures_table(runs: list[RunRecord], gaps: list[dict] = ()) -> pd.DataFrame:
    """Cells left out of the results: failed (with the stage and error), incomplete, and the
    grid's cells that have no readable run (:func:`~bashkir_peft.report.runs.index_gaps`:
    not started, folder removed, corrupt, stale).

    Args:
        runs: all runs.
        gaps: the index's cells without a readable run.

    Returns:
        Columns ``run_id, model, method, method_label, lora_r, seed, status, failed_stage,
        error, path`` (path: the run's folder inside the grid's runs folder, so the table
        is the same wherever the runs folder lies, e.g. extracted from a results bundle).
    """
    rows = [{**_run_keys(r), "status": r.status, "failed_stage": r.failed_stage,
             "error": r.error or ("no evaluation record yet" if r.status == "incomplete" else None),
             "path": r.path.name}
            for r in runs if r.status != "finished"] + list(gaps)
    return pd.DataFrame(rows, columns=[*RUN_KEYS, "status", "failed_stage", "error", "path"])


def require_runs(runs: list[RunRecord], runs_dir: Path) -> None:
    """Check that there is something to report.

    Args:
        runs: the runs read from ``runs_dir``.
        runs_dir: the grid's runs folder (for the message).

    Raises:
        DataError: no run at all.
    """
    if not runs:
        raise DataError(f"{runs_dir}: no run records found (run the grid first)")


FORGETTING_SIDES = {"bak_Cyrl": "bashkir", "eng_Latn": "english", "rus_Cyrl": "russian"}
"""The SIB-200 language folders the forgetting table reads (the ``source`` of an external
SIB-200 set's per-document rows, :mod:`bashkir_peft.data.external`) and their column names."""


def _side_sums(run: RunRecord, protocol: str) -> dict[str, pd.DataFrame]:
    """Per-document ``nll, bytes`` (indexed by id) of each SIB-200 side a run was scored on."""
    docs = eval_documents(run)
    docs = docs[(docs["protocol"] == protocol) & docs["source"].isin(list(FORGETTING_SIDES))]
    return {FORGETTING_SIDES[src]: g.set_index("id")[["nll", "bytes"]] for src, g in docs.groupby("source")}


def _bpb(nll: pd.Series, bytes_: pd.Series) -> float:
    return float(nll.sum() / (math.log(2) * bytes_.sum())) if bytes_.sum() else math.nan


def forgetting_table(runs: list[RunRecord], protocol: str = "rolling") -> pd.DataFrame:
    """Bashkir gained and English and Russian forgotten, per trained run, on the same content:
    bits per byte on the parallel SIB-200 sides (external test sets scored raw), against the
    base model of the same model.

    Each side is compared on the sentences both the run and the base model were scored on
    (matched by id); ``bashkir_gain`` = base − run on the Bashkir side (> 0: the run models
    Bashkir better), ``english_loss`` and ``russian_loss`` = run − base (> 0: forgotten).

    Args:
        runs: all runs (finished trained runs and the ``base`` run of their model are used).
        protocol: the protocol of the external sets' evaluation.

    Returns:
        One row per finished trained run: :data:`RUN_KEYS`, for each side (``bashkir``,
        ``english``, ``russian``) ``<side>_bpb``, ``<side>_base_bpb``, ``<side>_documents``, and
        ``bashkir_gain, english_loss, russian_loss`` (NaN where the run or its base model was
        not scored on the side). Empty where no run was scored on a SIB-200 side.

    Raises:
        RecordError: a finished run's per-document table does not match the contract.
    """
    sides = list(FORGETTING_SIDES.values())
    cols = [*RUN_KEYS, *(f"{s}_{k}" for s in sides for k in ("bpb", "base_bpb", "documents")),
            "bashkir_gain", "english_loss", "russian_loss"]
    finished = [r for r in runs if r.status == "finished"]
    base = {r.model: _side_sums(r, protocol) for r in finished if r.method == "base"}
    rows = []
    for run in finished:
        if run.method == "base":
            continue
        own, ref = _side_sums(run, protocol), base.get(run.model, {})
        if not own:
            continue
        row = _run_keys(run)
        for side in sides:
            a, b = own.get(side), ref.get(side)
            j = a.join(b, how="inner", lsuffix="_run", rsuffix="_base") if a is not None and b is not None else None
            ok = j is not None and len(j) > 0
            row[f"{side}_bpb"] = _bpb(j["nll_run"], j["bytes_run"]) if ok else math.nan
            row[f"{side}_base_bpb"] = _bpb(j["nll_base"], j["bytes_base"]) if ok else math.nan
            row[f"{side}_documents"] = len(j) if ok else 0
        row["bashkir_gain"] = row["bashkir_base_bpb"] - row["bashkir_bpb"]
        row["english_loss"] = row["english_bpb"] - row["english_base_bpb"]
        row["russian_loss"] = row["russian_bpb"] - row["russian_base_bpb"]
        rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def forgetting_summary(forgetting: pd.DataFrame) -> pd.DataFrame:
    """Per model and method: mean and standard deviation over seeds (ddof=1; NaN for one seed)
    of the Bashkir gain and the English and Russian losses of :func:`forgetting_table`.

    Returns:
        Columns ``model, method_label, n`` and ``<measure>_mean, <measure>_std`` for
        ``bashkir_gain, english_loss, russian_loss``, sorted by model then method.
    """
    measures = ["bashkir_gain", "english_loss", "russian_loss"]
    cols = ["model", "method_label", "n", *(f"{m}_{s}" for m in measures for s in ("mean", "std"))]
    if forgetting.empty:
        return pd.DataFrame(columns=cols)
    g = forgetting.groupby(["model", "method_label"], sort=False)
    out = g.size().rename("n").to_frame()
    for m in measures:
        out[f"{m}_mean"] = g[m].mean()
        out[f"{m}_std"] = g[m].std(ddof=1)
    out = out.reset_index()
    order = sorted(range(len(out)), key=lambda i: (out["model"].iloc[i], method_sort_key(out["method_label"].iloc[i])))
    return out.iloc[order].reset_index(drop=True)[cols]
