"""The rank Bashkir needs: the weight-change spectrum of the grid's full fine-tuning runs,
beside the LoRA ranks of its adapter cells.

Each finished full fine-tuning run wrote ``weight_spectrum.parquet`` (one row per adapted
matrix: :mod:`bashkir_peft.models.spectrum`); this module summarises those tables by model and
matrix type over layers and seeds. The question is Biderman et al.'s (2024, "LoRA Learns Less
and Forgets Less"): is full fine-tuning's weight change of a rank LoRA can hold?
"""

from __future__ import annotations

from bashkir_peft.names import ADAPTER_METHODS, method_sort_key
from bashkir_peft.records import RunFiles, read_weight_spectrum
from bashkir_peft.report.runs import RunRecord

SPECTRUM_COLUMNS = ["model", "method_label", "matrix", "shape", "full_rank", "runs", "matrices", "rank_90_median", "rank_90_min",
                    "rank_90_max", "rank_90_share", "stable_rank_median", "stable_rank_min", "stable_rank_max",
                    "relative_norm_median", "lora_ranks_in_grid"]
"""Columns of :func:`spectrum_table`."""


def _spectra(runs: list[RunRecord]):
    """The weight-spectrum tables of the finished full fine-tuning runs, stacked, with the
    run's ``run_id``, ``model``, ``method_label`` (``full``, ``full @long``: an arm of another
    budget apart) and ``seed`` (``None``: no run has one)."""
    import pandas as pd

    parts = []
    for run in runs:
        path = run.path / RunFiles.WEIGHT_SPECTRUM
        if run.method == "full" and run.train is not None and run.train.status == "finished" and path.is_file():
            parts.append(read_weight_spectrum(path).assign(run_id=run.run_id, model=run.model,
                                                              method_label=run.method_label, seed=run.seed))
    return pd.concat(parts, ignore_index=True) if parts else None


def spectrum_table(runs: list[RunRecord]):
    """The weight-change spectrum of full fine-tuning by model, arm and matrix type.

    Args:
        runs: all runs of a grid (those without a spectrum are skipped: adapter and base runs,
            full runs that finished before the training stage wrote one).

    Returns:
        A pandas DataFrame with :data:`SPECTRUM_COLUMNS`, one row per model x full fine-tuning
        arm (``method_label``: ``full``, and ``full @long`` where the study block makes a budget
        an arm of its own: budgets are not pooled) x matrix type (in the model's order, e.g.
        ``self_attn.q_proj`` ... ``mlp.down_proj``): its ``shape``
        (rows x cols as stored) and ``full_rank`` min(m, n); ``runs`` and ``matrices`` (layers
        x runs) summarised; the rank holding 90 % of ΔW's Frobenius energy (median, min and
        max over layers and seeds) and its median ``rank_90_share`` of the full rank; the
        stable rank ||ΔW||_F^2 / ||ΔW||_2^2 (median, min, max); the median relative norm
        ||ΔW||_F / ||W_base||_F; and ``lora_ranks_in_grid``, the ranks of the grid's LoRA and
        QLoRA cells of that model (e.g. ``8, 64``; ``–`` none). ``None`` where no full
        fine-tuning run of the grid has a spectrum.
    """
    import pandas as pd

    spectra = _spectra(runs)
    if spectra is None:
        return None
    ranks = {model: sorted({r.lora_r for r in runs if r.model == model and r.method in ADAPTER_METHODS
                            and r.lora_r is not None}) for model in spectra["model"].unique()}
    spectra = spectra.assign(rank_90_share=spectra["rank_90"] / spectra["full_rank"],
                             shape=spectra["rows"].astype(str) + " x " + spectra["cols"].astype(str))
    rows = []
    order = {label: i for i, label in enumerate(sorted(spectra["method_label"].unique(), key=method_sort_key))}
    spectra = spectra.assign(order=spectra["method_label"].map(order)).sort_values("order", kind="stable")
    for (model, label, matrix), g in spectra.groupby(["model", "method_label", "matrix"], sort=False):
        rows.append({"model": model, "method_label": label, "matrix": matrix, "shape": g["shape"].iloc[0],
                     "full_rank": int(g["full_rank"].iloc[0]), "runs": g["run_id"].nunique(), "matrices": len(g),
                     "rank_90_median": float(g["rank_90"].median()), "rank_90_min": int(g["rank_90"].min()),
                     "rank_90_max": int(g["rank_90"].max()), "rank_90_share": float(g["rank_90_share"].median()),
                     "stable_rank_median": float(g["stable_rank"].median()),
                     "stable_rank_min": float(g["stable_rank"].min()), "stable_rank_max": float(g["stable_rank"].max()),
                     "relative_norm_median": float(g["relative_norm"].median()),
                     "lora_ranks_in_grid": ", ".join(map(str, ranks[model])) or "–"})
    return pd.DataFrame(rows, columns=SPECTRUM_COLUMNS)
