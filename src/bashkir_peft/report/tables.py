"""Tidy tables of a grid's runs: metrics over seeds, paired differences, cost, fertility,
generation language, the paper's quoted numbers, failures.

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

from bashkir_peft.errors import DataError, ModelNotFoundError
from bashkir_peft.models.registry import get_entry
from bashkir_peft.records import FERTILITY_COLUMNS, LANGUAGES, METRICS, DataFiles, GenerationSummary, read_table
from bashkir_peft.report.bootstrap import paired_bpb_difference
from bashkir_peft.report.runs import (
    REFERENCE_LABEL,
    RunRecord,
    eval_documents,
    eval_metrics,
    label_parts,
    method_label,
    method_sort_key,
)

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
    """Paired bootstrap CIs of bits-per-byte differences between methods on the same model.

    Per-document NLL is averaged over the seeds of a method (the bootstrap then measures the
    uncertainty from the choice of test documents, not from training seeds); documents are
    matched by id and only those scored by both methods are used.

    Args:
        runs: all runs (the finished ones are used).
        protocol: the evaluation protocol whose per-document rows are used (``None``: all).
        split: the evaluated split.
        n_resamples, confidence, seed: see :func:`~bashkir_peft.report.bootstrap.paired_bpb_difference`.

    Returns:
        Columns ``model, method_a, method_b, protocol, split, bpb_a, bpb_b, difference,
        ci_low, ci_high, confidence, n_documents, n_seeds_a, n_seeds_b``
        (difference = bits_per_byte(A) - bits_per_byte(B); negative means A is better).

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
        per.setdefault((run.model, run.method_label), []).append(docs[["id", "nll", "bytes"]])
    rows = []
    models = sorted({m for m, _ in per})
    for model in models:
        labels = sorted((lab for m, lab in per if m == model), key=method_sort_key)
        avg = {}
        for lab in labels:
            frames = per[(model, lab)]
            cat = pd.concat(frames)
            avg[lab] = (cat.groupby("id").agg(nll=("nll", "mean"), bytes=("bytes", "first")), len(frames))
        for a, b in itertools.combinations(labels, 2):
            # a precedes b in the method order (base, full, lora, qlora): report b - a.
            (da, na), (db, nb) = avg[b], avg[a]
            j = da.merge(db, left_index=True, right_index=True, how="inner", suffixes=("_a", "_b"))
            if j.empty:
                continue
            ci = paired_bpb_difference(j["nll_a"].to_numpy(), j["nll_b"].to_numpy(), j["bytes_a"].to_numpy(),
                                       n_resamples=n_resamples, confidence=confidence, seed=seed)
            total = math.log(2) * j["bytes_a"].sum()
            rows.append({"model": model, "method_a": b, "method_b": a, "protocol": protocol, "split": split,
                         "bpb_a": j["nll_a"].sum() / total, "bpb_b": j["nll_b"].sum() / total,
                         "difference": ci.estimate, "ci_low": ci.low, "ci_high": ci.high,
                         "confidence": confidence, "n_documents": ci.n_documents,
                         "n_seeds_a": na, "n_seeds_b": nb})
    cols = ["model", "method_a", "method_b", "protocol", "split", "bpb_a", "bpb_b", "difference",
            "ci_low", "ci_high", "confidence", "n_documents", "n_seeds_a", "n_seeds_b"]
    return pd.DataFrame(rows, columns=cols)


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
                    protocol: str | None = None) -> pd.DataFrame:
    """Fertility (tokens per whitespace word) of each model's tokenizer beside its bits_per_byte.

    Fertility comes from the data folder's tokenizer table (:func:`read_fertility`) where it
    has the model's row (or a row of the model's registry tokenizer: tiny-gpt2 is profiled
    as gpt2), else from the evaluation's own per-document sums under ``protocol`` (scored
    tokens / whitespace words of the same documents); the column ``fertility_source`` says
    which.

    Args:
        runs: all runs (the finished ones are used).
        quality: :func:`quality_cost_table`.
        data_dir: the prepared data folder (``None``: evaluation sums only).
        protocol: the protocol of the evaluation sums.

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
    for run in runs:
        if run.status != "finished" or run.model in fert:
            continue
        docs = eval_documents(run)
        if protocol is not None and (docs["protocol"] == protocol).any():
            docs = docs[docs["protocol"] == protocol]
        if docs["words"].sum() > 0:
            by_model.setdefault(run.model, []).append(float(docs["tokens"].sum() / docs["words"].sum()))
    for model, vals in by_model.items():
        fert[model] = (float(np.mean(vals)), "evaluation sums (scored tokens / words)")
    g = quality.groupby(["model", "method_label"], as_index=False)[["bits_per_byte", "perplexity"]].mean()
    g["fertility"] = g["model"].map(lambda m: fert.get(m, (math.nan, ""))[0])
    g["fertility_source"] = g["model"].map(lambda m: fert.get(m, (math.nan, "not found"))[1])
    return g[cols]


def _registry_tokenizer(model: str) -> str | None:
    """The offline tokenizer a registry model uses (``None`` for a Hub id or a local path)."""
    try:
        return get_entry(model).tokenizer
    except ModelNotFoundError:
        return None


def _generation_row(keys: dict, summary: GenerationSummary) -> dict:
    row = dict(keys)
    for name, value in summary.model_dump(exclude={"language_shares"}).items():
        row["n_continuations" if name == "n" else name] = _float(value)
    for lang in LANGUAGES:
        row[f"share_{lang}"] = _float(summary.language_shares.get(lang))
    return row


def generation_table(runs: list[RunRecord]) -> pd.DataFrame:
    """The generation measures of every finished run with a generation record.

    Args:
        runs: all runs.

    Returns:
        One row per run: the run keys, every number of its
        :class:`~bashkir_peft.records.GenerationSummary` (``n`` as ``n_continuations``; NaN
        where undefined) and the language shares of the generated text (``share_bak``,
        ``share_rus``, ``share_eng``, ``share_other``). Where a record has a
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


def generation_summary(gen: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds of the generation metrics, by model x method.

    Args:
        gen: :func:`generation_table`.

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
    order = sorted(range(len(out)), key=lambda i: (out["model"].iloc[i], method_sort_key(out["method_label"].iloc[i])))
    return out.iloc[order].reset_index(drop=True)


def paper_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The paper's stated test perplexities beside ours (token perplexity, ``paper`` protocol,
    test split, mean ± std over seeds), every quoted value labelled with its source.

    Args:
        summary: :func:`summary_table`.

    Returns:
        One row per quoted number and matching cell of ours (a quoted number without a rank
        matches every rank of its method): ``model, method, metric, paper, paper_source,
        ours_method, ours_mean, ours_std, ours_n``. Ours is empty where the grid has no such
        cell (e.g. 7B models in the CPU demo).
    """
    rows = []
    s = summary[(summary["protocol"] == "paper") & (summary["split"] == "test")] if len(summary) else summary
    for p in PAPER_NUMBERS:
        label = method_label(p["method"], p["lora_r"])
        ours = s[[_quoted_cell_matches(p, m, lab) for m, lab in zip(s["model"], s["method_label"])]] if len(s) else s
        base = {"model": p["model"], "method": label, "metric": "token perplexity (test)",
                "paper": p["perplexity"], "paper_source": PAPER_SOURCE}
        if len(ours) == 0:
            rows.append({**base, "ours_method": None, "ours_mean": math.nan, "ours_std": math.nan, "ours_n": 0})
        for _, o in ours.iterrows():
            rows.append({**base, "ours_method": o["method_label"], "ours_mean": o["perplexity_mean"],
                         "ours_std": o["perplexity_std"], "ours_n": int(o["n"])})
    return pd.DataFrame(rows)


def _quoted_cell_matches(quoted: dict, model: str, label: str) -> bool:
    """Whether our cell ``model``/``label`` is the paper's ``quoted`` one (a quoted number
    without a rank matches every rank of its method)."""
    if model != quoted["model"]:
        return False
    if quoted["lora_r"] is None:
        return label_parts(label)[0] == quoted["method"]
    return label == method_label(quoted["method"], quoted["lora_r"])


def failures_table(runs: list[RunRecord]) -> pd.DataFrame:
    """Runs left out of the results: failed (with the stage and error) or incomplete.

    Args:
        runs: all runs.

    Returns:
        Columns ``run_id, model, method, method_label, lora_r, seed, status, failed_stage,
        error, path`` (path: the run's folder inside the grid's runs folder, so the table
        is the same wherever the runs folder lies, e.g. extracted from a results bundle).
    """
    rows = [{**_run_keys(r), "status": r.status, "failed_stage": r.failed_stage,
             "error": r.error or ("no evaluation record yet" if r.status == "incomplete" else None),
             "path": r.path.name}
            for r in runs if r.status != "finished"]
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
