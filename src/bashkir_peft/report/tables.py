"""Tidy tables of a grid's runs: metrics over seeds, paired differences, cost, fertility,
generation language, the paper's quoted numbers, failures.

Every function takes :class:`~bashkir_peft.report.runs.RunRecord` objects (or tables built
from them) and returns a :class:`pandas.DataFrame`; nothing here reads or writes files
except :func:`fertility_table` (the data-prep output, when given).
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from bashkir_peft.report.bootstrap import paired_bpb_difference
from bashkir_peft.errors import DataError
from bashkir_peft.report.runs import LANGUAGES, METRICS, RunRecord, _is_number, eval_metrics, find_value, per_document

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
METHOD_ORDER = ("reference", "base", "full", "lora", "qlora")


def _method_sort_key(label: str) -> tuple:
    method, _, r = label.partition(" r=")
    method = "reference" if label == "reference text" else method
    return (METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER), method,
            int(r) if r.isdigit() else 0)


def _num(x: object) -> float:
    return float(x) if _is_number(x) else math.nan


def _run_keys(run: RunRecord) -> dict:
    seed = run.params.get("seed")
    return {"run_id": run.run_id, "model": run.model, "method": run.method,
            "method_label": run.method_label, "lora_r": run.lora_r,
            "seed": int(seed) if _is_number(seed) else None}


def runs_table(runs: list[RunRecord]) -> pd.DataFrame:
    """One row per run: keys, status, error, trainable parameters and training cost.

    Cost fields are read from the training record wherever they sit in it:
    ``trainable_params``, ``total_params``, ``wall_time_s``, ``peak_rss_mib``,
    ``peak_gpu_mib``, ``tokens_per_s``, ``tokens_seen``. ``peak_memory_mib`` is the GPU peak
    where there is one, else the RSS peak. A base run has ``trainable_params`` 0.
    """
    rows = []
    for run in runs:
        rec = run.records.get("train", {})
        # The run's totals (``cost``, top-level keys) before per-session values.
        train = [{"cost": rec.get("cost")} if isinstance(rec.get("cost"), dict) else {},
                 {k: v for k, v in rec.items() if not isinstance(v, (dict, list))}, rec]
        row = {**_run_keys(run), "lora_alpha": run.params.get("lora_alpha"), "status": run.status,
               "failed_stage": run.failed_stage, "error": run.error,
               "trainable_params": _num(find_value(train, ("trainable_params",))),
               "total_params": _num(find_value(train, ("total_params", "all_params", "params_total"))),
               "wall_time_s": _num(find_value(train, ("wall_time_s", "train_runtime"))),
               "peak_rss_mib": _num(find_value(train, ("peak_rss_mib",))),
               "peak_gpu_mib": _num(find_value(train, ("peak_gpu_mib",))),
               "tokens_per_s": _num(find_value(train, ("tokens_per_s", "tokens_per_second",
                                                       "train_tokens_per_s"))),
               "tokens_seen": _num(find_value(train, ("tokens_seen", "train_tokens")))}
        if run.method == "base" and math.isnan(row["trainable_params"]):
            row["trainable_params"] = 0.0
        row["peak_memory_mib"] = row["peak_gpu_mib"] if not math.isnan(row["peak_gpu_mib"]) else row["peak_rss_mib"]
        rows.append(row)
    return pd.DataFrame(rows)


def metrics_table(runs: list[RunRecord]) -> pd.DataFrame:
    """Tidy evaluation metrics of the finished runs: one row per run x protocol x split x source."""
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
    out["_order"] = out["method_label"].map(_method_sort_key)
    return out.sort_values(["model", "_order", "protocol", "split"]).drop(columns="_order").reset_index(drop=True)


def headline_protocol(metrics: pd.DataFrame, preferred: str = "rolling") -> str | None:
    """``preferred`` if any run was evaluated under it, else the protocol most rows have."""
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
        runs: all runs (only finished ones with a per-document table are used).
        protocol: the evaluation protocol whose per-document rows are used (rows without a
            protocol column are taken as is).
        split: the evaluated split.
        n_resamples, confidence, seed: see :func:`~bashkir_peft.report.bootstrap.paired_bpb_difference`.

    Returns:
        Columns ``model, method_a, method_b, protocol, split, bpb_a, bpb_b, difference,
        ci_low, ci_high, confidence, n_documents, n_seeds_a, n_seeds_b``
        (difference = bits_per_byte(A) - bits_per_byte(B); negative means A is better).
    """
    per: dict[tuple[str, str], list[pd.DataFrame]] = {}
    for run in runs:
        if run.status != "finished":
            continue
        docs = per_document(run)
        if docs is None:
            continue
        if "protocol" in docs.columns and protocol is not None:
            docs = docs[docs["protocol"] == protocol]
        if "split" in docs.columns:
            docs = docs[docs["split"] == split]
        if docs.empty:
            continue
        per.setdefault((run.model, run.method_label), []).append(docs[["doc_id", "nll", "bytes"]])
    rows = []
    models = sorted({m for m, _ in per})
    for model in models:
        labels = sorted((lab for m, lab in per if m == model), key=_method_sort_key)
        avg = {}
        for lab in labels:
            frames = per[(model, lab)]
            cat = pd.concat(frames)
            avg[lab] = (cat.groupby("doc_id").agg(nll=("nll", "mean"), bytes=("bytes", "first"),
                                                  k=("nll", "size")), len(frames))
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
    """Finished runs with their training cost beside bits_per_byte and perplexity (one row per run)."""
    if metrics.empty or runs_tab.empty:
        return pd.DataFrame()
    m = metrics[(metrics["protocol"] == protocol) & (metrics["split"] == split) & (metrics["source"] == "all")]
    cost_cols = ["run_id", "trainable_params", "total_params", "wall_time_s", "peak_memory_mib",
                 "tokens_per_s", "tokens_seen"]
    return m.merge(runs_tab[cost_cols], on="run_id", how="left")


def _fertility_from_data_prep(data_dir: Path) -> pd.DataFrame | None:
    """The tokenizer table of the data-prep output (any ``*token*`` CSV/Parquet/JSON file
    with a ``fertility`` column, or a manifest list/dict with ``fertility`` entries)."""
    for p in sorted({*data_dir.glob("*token*"), *data_dir.glob("*fertility*")}):
        try:
            if p.suffix == ".parquet":
                df = pd.read_parquet(p)
            elif p.suffix == ".csv":
                df = pd.read_csv(p)
            elif p.suffix == ".json":
                df = pd.json_normalize(json.loads(p.read_text(encoding="utf-8")))
            else:
                continue
        except (OSError, ValueError):
            continue
        if "fertility" in df.columns:
            return df
    manifest = data_dir / "manifest.json"
    if manifest.is_file():
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        for key in ("tokenizers", "tokenizer_stats", "fertility"):
            v = data.get(key)
            if isinstance(v, list) and v and isinstance(v[0], dict):
                df = pd.DataFrame(v)
            elif isinstance(v, dict) and v and all(isinstance(x, dict) for x in v.values()):
                df = pd.DataFrame([{"model": k, **x} for k, x in v.items()])
            else:
                continue
            if "fertility" in df.columns:
                return df
    return None


def fertility_table(runs: list[RunRecord], quality: pd.DataFrame, data_dir: str | Path | None = None,
                    protocol: str | None = None) -> pd.DataFrame:
    """Fertility (tokens per whitespace word) of each model's tokenizer beside its bits_per_byte.

    Fertility comes from the data-prep tokenizer table when ``data_dir`` has one (matched on
    the model/tokenizer name), else from the evaluation's own per-document sums under
    ``protocol`` (scored tokens / whitespace words of the same test documents); the column
    ``fertility_source`` says which.

    Returns:
        Columns ``model, method_label, fertility, fertility_source, bits_per_byte, perplexity``
        (mean over seeds).
    """
    cols = ["model", "method_label", "fertility", "fertility_source", "bits_per_byte", "perplexity"]
    if quality.empty:
        return pd.DataFrame(columns=cols)
    prep = _fertility_from_data_prep(Path(data_dir)) if data_dir else None
    fert: dict[str, tuple[float, str]] = {}
    if prep is not None:
        by_name: dict[str, float] = {}
        for col in ("model", "tokenizer", "name"):
            if col in prep.columns:
                for name, value in zip(prep[col].astype(str), prep["fertility"]):
                    by_name.setdefault(name, float(value))
        for model in {r.model for r in runs if r.status == "finished"}:
            # The model's own row, else its tokenizer's (tiny-gpt2 profiles as gpt2).
            for name in (model, _registry_tokenizer(model)):
                if name in by_name:
                    fert[model] = (by_name[name], f"data prep ({name} tokenizer, test split)")
                    break
    by_model: dict[str, list[float]] = {}
    for run in runs:
        if run.status != "finished" or run.model in fert:
            continue
        docs = per_document(run)
        if docs is None or not {"tokens", "words"} <= set(docs.columns):
            continue
        if protocol is not None and "protocol" in docs.columns and (docs["protocol"] == protocol).any():
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
    """The offline tokenizer a registry model uses (``None`` if not a registry name)."""
    try:
        from bashkir_peft.models.registry import get_entry

        return get_entry(model).tokenizer
    except Exception:  # noqa: BLE001 - a path or Hub id is simply not in the registry
        return None


REFERENCE_LABEL = "reference text"


def _generation_row(keys: dict, summary: dict) -> dict:
    row = dict(keys)
    for k, v in summary.items():
        if _is_number(v) and k not in row:
            row["n_continuations" if k == "n" else k] = float(v)
    shares = _find_language_shares(summary)
    for lang in LANGUAGES:
        row[f"share_{lang}"] = shares.get(lang, math.nan) if shares else math.nan
    row["code_switch_rate"] = _num(find_value(summary, ("code_switch_rate", "code_switching_rate")))
    return row


def generation_table(runs: list[RunRecord]) -> pd.DataFrame:
    """Per finished run with a generation record: language shares of the generated text
    (``share_bak``, ``share_rus``, ``share_eng``, ``share_other``), ``code_switch_rate`` and the
    other numeric summary metrics the record has (e.g. distinct-n, non-Bashkir word share).

    Where a record has a ``reference_summary`` (the same metrics on the test documents' own
    continuations of the prompts), one row per model with method ``reference text`` is added
    (the first such record of the model): what Bashkir text itself scores.
    """
    rows, refs = [], {}
    for run in runs:
        rec = run.records.get("generate")
        if run.status != "finished" or not rec:
            continue
        summary = rec.get("summary") if isinstance(rec.get("summary"), dict) else rec
        rows.append(_generation_row(_run_keys(run), summary))
        ref = rec.get("reference_summary")
        if isinstance(ref, dict) and run.model not in refs:
            refs[run.model] = _generation_row(
                {"run_id": run.run_id, "model": run.model, "method": "reference",
                 "method_label": REFERENCE_LABEL, "lora_r": None, "seed": None}, ref)
    return pd.DataFrame(rows + list(refs.values()))


def _find_language_shares(rec: object) -> dict | None:
    if isinstance(rec, dict):
        if rec and set(rec) <= set(LANGUAGES) and all(_is_number(v) for v in rec.values()):
            total = sum(rec.values())
            return {k: v / total for k, v in rec.items()} if total > 1.0 + 1e-6 else dict(rec)
        for v in rec.values():
            found = _find_language_shares(v)
            if found:
                return found
    return None


def generation_summary(gen: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds of the generation metrics, by model x method."""
    if gen.empty:
        return gen
    num = [c for c in gen.columns if c not in RUN_KEYS and pd.api.types.is_numeric_dtype(gen[c])]
    g = gen.groupby(["model", "method_label"], as_index=False)
    out = g[num].mean()
    out.insert(2, "n", g.size()["size"].to_numpy())
    order = sorted(range(len(out)), key=lambda i: (out["model"].iloc[i], _method_sort_key(out["method_label"].iloc[i])))
    return out.iloc[order].reset_index(drop=True)


def paper_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The paper's stated test perplexities beside ours (token perplexity, ``paper`` protocol,
    test split, mean ± std over seeds), every quoted value labelled with its source.

    Our value is empty where the grid has no such cell (e.g. 7B models in the CPU demo).
    """
    rows = []
    s = summary[(summary["protocol"] == "paper") & (summary["split"] == "test")] if len(summary) else summary
    for p in PAPER_NUMBERS:
        label = p["method"] if p["lora_r"] is None else f"{p['method']} r={p['lora_r']}"
        if len(s):
            if p["lora_r"] is None:
                ours = s[(s["model"] == p["model"]) & (s["method_label"].str.split(" ").str[0] == p["method"])]
            else:
                ours = s[(s["model"] == p["model"]) & (s["method_label"] == label)]
        else:
            ours = s
        base = {"model": p["model"], "method": label, "metric": "token perplexity (test)",
                "paper": p["perplexity"], "paper_source": PAPER_SOURCE}
        if len(ours) == 0:
            rows.append({**base, "ours_method": None, "ours_mean": math.nan, "ours_std": math.nan, "ours_n": 0})
        for _, o in ours.iterrows():
            rows.append({**base, "ours_method": o["method_label"], "ours_mean": o["perplexity_mean"],
                         "ours_std": o["perplexity_std"], "ours_n": int(o["n"])})
    return pd.DataFrame(rows)


def failures_table(runs: list[RunRecord]) -> pd.DataFrame:
    """Runs left out of the results: failed (with the stage and error) or incomplete."""
    rows = [{**_run_keys(r), "status": r.status, "failed_stage": r.failed_stage,
             "error": r.error or ("no evaluation record yet" if r.status == "incomplete" else None),
             "path": str(r.path)}
            for r in runs if r.status != "finished"]
    return pd.DataFrame(rows, columns=[*RUN_KEYS, "status", "failed_stage", "error", "path"])


def require_runs(runs: list[RunRecord], runs_dir: Path) -> None:
    """Raise DataError if there is nothing at all to report."""
    if not runs:
        raise DataError(f"{runs_dir}: no run records found (run the grid first)")
