"""Gained and forgotten: bits per byte of every trained run on the parallel Bashkir, English and
Russian sides of SIB-200 (external test sets scored raw), against the base model of the same
model on the same sentences.

The question is the one Biderman et al. 2024 ("LoRA Learns Less and Forgets Less") ask of
English tasks. The per-run table reads the runs' per-document tables; nothing here writes
files. The same sides' differences with intervals are rows of the study's comparisons
(:func:`bashkir_peft.report.comparisons.comparisons_table`, :data:`FORGETTING_SPLITS`).
"""

from __future__ import annotations

import math

import pandas as pd

from bashkir_peft.names import method_sort_key
from bashkir_peft.report.runs import RUN_KEYS, RunRecord, eval_documents, run_keys

FORGETTING_SIDES = {"bak_Cyrl": "bashkir", "eng_Latn": "english", "rus_Cyrl": "russian"}
"""The SIB-200 language folders the forgetting table reads (the ``source`` of an external
SIB-200 set's per-document rows, :mod:`bashkir_peft.data.external`) and their column names."""

FORGETTING_SPLITS = {"sib200-eng": "English", "sib200-rus": "Russian",
                     "flores-eng": "English (FLORES-200 devtest)", "flores-rus": "Russian (FLORES-200 devtest)"}
"""External sets (by name) on which a trained method's change against the base model is forgetting
(languages the base model knew; the shipped grids' names)."""

TRANSFER_SPLITS = {"flores-tat": "Tatar (FLORES-200 devtest)"}
"""External sets (by name) on which a trained method's change against the base model is transfer:
Tatar, Bashkir's closest well-documented relative (Kipchak, Cyrillic), never trained on; a
gain there after Bashkir training is transfer to a related language."""

FORGETTING_MEASURES = ["bashkir_gain", "english_loss", "russian_loss"]
"""The measures of :func:`forgetting_table` (bits per byte; > 0: learnt, forgotten, forgotten)."""


def _side_sums(run: RunRecord, protocol: str) -> dict[str, pd.DataFrame]:
    """Per-document ``nll, bytes`` (indexed by id) of each SIB-200 side a run was scored on."""
    docs = eval_documents(run)
    docs = docs[(docs["protocol"] == protocol) & docs["source"].isin(list(FORGETTING_SIDES))]
    return {FORGETTING_SIDES[src]: g.set_index("id")[["nll", "bytes"]] for src, g in docs.groupby("source")}


def _bpb(nll: pd.Series, bytes_: pd.Series) -> float:
    """Bits per byte of summed NLL (nats) over UTF-8 bytes: sum(nll) / (ln 2 x sum(bytes))."""
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
            *FORGETTING_MEASURES]
    finished = [r for r in runs if r.status == "finished"]
    base = {r.model: _side_sums(r, protocol) for r in finished if r.method == "base"}
    rows = []
    for run in finished:
        if run.method == "base":
            continue
        own, ref = _side_sums(run, protocol), base.get(run.model, {})
        if not own:
            continue
        row = run_keys(run)
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

    Args:
        forgetting: :func:`forgetting_table`.

    Returns:
        Columns ``model, method_label, n`` and ``<measure>_mean, <measure>_std`` for
        ``bashkir_gain, english_loss, russian_loss`` (bits per byte), sorted by model then
        method.
    """
    cols = ["model", "method_label", "n", *(f"{m}_{s}" for m in FORGETTING_MEASURES for s in ("mean", "std"))]
    if forgetting.empty:
        return pd.DataFrame(columns=cols)
    g = forgetting.groupby(["model", "method_label"], sort=False)
    out = g.size().rename("n").to_frame()
    for m in FORGETTING_MEASURES:
        out[f"{m}_mean"] = g[m].mean()
        out[f"{m}_std"] = g[m].std(ddof=1)
    out = out.reset_index()
    order = sorted(range(len(out)), key=lambda i: (out["model"].iloc[i], method_sort_key(out["method_label"].iloc[i])))
    return out.iloc[order].reset_index(drop=True)[cols]
