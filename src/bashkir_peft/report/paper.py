"""The paper's quoted numbers beside ours, each of ours with the data mode that produced it.

Only the four test perplexities the paper states are quoted (:data:`PAPER_NUMBERS`);
everything else in the report is ours. Nothing here writes files.
"""

from __future__ import annotations

import math

import pandas as pd

from bashkir_peft.data.folder import read_manifest
from bashkir_peft.data.stats import data_mode
from bashkir_peft.errors import DataError
from bashkir_peft.names import ADAPTER_METHODS, label_parts, method_label
from bashkir_peft.report.runs import RunRecord, run_data_dir

# The paper's stated test perplexities (Arabov & Khaybullina, arXiv 2605.04948, abstract and
# results). Only these four numbers are quoted; everything else in the report is ours. The
# DeepSeek-7B number is "PEFT ... DeepSeek-7B with rank 8" in the paper's words: LoRA or QLoRA
# is not stated, so its method is PAPER_PEFT and it faces our LoRA and QLoRA cells of rank 8.
PAPER_PEFT = "peft"
PAPER_SOURCE = "quoted from the paper (Arabov & Khaybullina, arXiv 2605.04948)"
PAPER_NUMBERS = (
    {"model": "gpt2-medium", "method": "full", "lora_r": None, "perplexity": 3.34},
    {"model": "mistral-7b", "method": "qlora", "lora_r": None, "perplexity": 3.79},
    {"model": "phi-2", "method": "qlora", "lora_r": None, "perplexity": 3.81},
    {"model": "deepseek-7b", "method": PAPER_PEFT, "lora_r": 8, "perplexity": 129.55},
)


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
        folder = str(run_data_dir(run))
        if folder not in by_dir:
            try:
                by_dir[folder] = data_mode(read_manifest(folder))
            except DataError:
                by_dir[folder] = f"unknown (no readable manifest in {folder})"
        out.setdefault((run.model, run.method_label), set()).add(by_dir[folder])
    return {k: " + ".join(sorted(v)) for k, v in out.items()}


def _quoted_cell_matches(quoted: dict, model: str, label: str) -> bool:
    """Whether our cell ``model``/``label`` is the paper's ``quoted`` one (a quoted number
    without a rank matches every rank of its method)."""
    if model != quoted["model"]:
        return False
    method, r = label_parts(label)
    if quoted["method"] == PAPER_PEFT:  # the paper's unnamed PEFT method: LoRA or QLoRA of that rank
        return method in ADAPTER_METHODS and r == quoted["lora_r"]
    if quoted["lora_r"] is None:
        return method == quoted["method"]
    return label == method_label(quoted["method"], quoted["lora_r"])


def paper_table(summary: pd.DataFrame, modes: dict[tuple[str, str], str] | None = None) -> pd.DataFrame:
    """The paper's stated test perplexities beside ours (token perplexity, ``paper`` protocol,
    test split, mean ± std over seeds), every quoted value labelled with its source and each
    of ours with the data mode that produced it.

    Args:
        summary: :func:`~bashkir_peft.report.lm.summary_table`.
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
