"""The learning-forgetting frontier: how much Bashkir every trained run learnt against how much
English and Russian it forgot, across methods, ranks, learning rates and seeds, and which runs
lie on the Pareto front.

Biderman et al. 2024 ("LoRA Learns Less and Forgets Less", arXiv 2405.09673) find that LoRA and
full fine-tuning lie on one learning-forgetting frontier: a method that learns less also
forgets less, and the learning rate moves a run along it. Here every finished trained run of a
grid and of its learning-rate sweep (the study's ``learning_rate_sweep`` grid,
:func:`~bashkir_peft.report.cost.sweep_runs_dir`) is one point, scored on the parallel
FLORES-200 devtest sides (:data:`FRONTIER_SETS`) under the Goldfish protocol (bits per byte of
each sentence's second half, :mod:`bashkir_peft.evaluate.goldfish`), against the zero-shot base
model on the same sentences. Reads the runs' per-document tables; nothing here writes files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from bashkir_peft.names import method_label, method_sort_key
from bashkir_peft.report.comparisons import GOLDFISH
from bashkir_peft.report.runs import RunRecord, eval_documents

FRONTIER_SETS = {"bashkir": "flores-bak", "english": "flores-eng", "russian": "flores-rus", "tatar": "flores-tat"}
"""Side -> the external set (by name) the frontier reads, as the CPU grids name their FLORES-200
devtest sides; each scored under :data:`~bashkir_peft.report.comparisons.GOLDFISH`."""

FRONTIER_MEASURES = {"bashkir_gain": "Bashkir gain", "english_loss": "English loss",
                     "russian_loss": "Russian loss", "tatar_change": "Tatar change"}
"""The frontier's measures (bits per byte) and their names: ``bashkir_gain`` = base − run (> 0:
learnt), ``english_loss`` and ``russian_loss`` = run − base (> 0: forgotten), ``tatar_change`` =
run − base (< 0: transfer to a related language never trained on)."""

LOSS_SIDES = ("english", "russian")
"""The sides whose loss the Pareto front is drawn against (``pareto_<side>``)."""

STUDY, SWEEP = "study", "sweep"
"""The ``grid`` column's values: the report's own grid, and its learning-rate sweep."""

FRONTIER_COLUMNS = ["grid", "run_id", "model", "method_label", "label", "learning_rate", "lora_r", "seed",
                    "sentences", "base_grid", *FRONTIER_MEASURES, *(f"pareto_{s}" for s in LOSS_SIDES)]
"""Columns of :func:`frontier_table`."""

LEFT_OUT_COLUMNS = ["grid", "run_id", "model", "method_label", "seed", "reason"]
"""Columns of :func:`frontier_left_out`."""

SUMMARY_COLUMNS = ["grid", "model", "method_label", "label", "learning_rate", "lora_r", "n", *FRONTIER_MEASURES,
                   *(f"pareto_{s}" for s in LOSS_SIDES)]
"""Columns of :func:`frontier_summary`."""


def _sides(run: RunRecord) -> dict[str, pd.DataFrame]:
    """Per-sentence ``nll, bytes`` (indexed by id) of each frontier set the run scored under
    the Goldfish protocol."""
    docs = eval_documents(run)
    docs = docs[(docs["protocol"] == GOLDFISH) & docs["split"].isin(list(FRONTIER_SETS.values()))]
    by_set = {name: g.set_index("id")[["nll", "bytes"]] for name, g in docs.groupby("split")}
    return {side: by_set[name] for side, name in FRONTIER_SETS.items() if name in by_set}


def _bpb(frame: pd.DataFrame) -> float:
    """Bits per byte of summed NLL (nats) over UTF-8 bytes: sum(nll) / (ln 2 x sum(bytes))."""
    return float(frame["nll"].sum() / (math.log(2) * frame["bytes"].sum()))


def _same_sentences(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> bool:
    """Whether two runs scored the same sentences of every frontier set: the same set names and,
    in each, the same document ids."""
    return set(a) == set(b) and all(set(a[s].index) == set(b[s].index) for s in a)


def _scores(runs_by_grid: Mapping[str, list[RunRecord]]) -> tuple[list[dict], list[dict]]:
    """The frontier's rows and the left-out runs with their reasons (see :func:`frontier_table`)."""
    bases: list[tuple[str, RunRecord, dict[str, pd.DataFrame]]] = []
    for grid, runs in runs_by_grid.items():
        for run in runs:
            if run.status == "finished" and run.method_label == method_label("base", None):
                bases.append((grid, run, _sides(run)))
    rows, left_out = [], []
    for grid, runs in runs_by_grid.items():
        for run in runs:
            if run.status != "finished" or run.method == "base":
                continue
            keys = {"grid": grid, "run_id": run.run_id, "model": run.model, "method_label": run.method_label,
                    "seed": run.seed}
            own = _sides(run)
            missing = [FRONTIER_SETS[s] for s in FRONTIER_SETS if s not in own]
            if missing:
                left_out.append({**keys, "reason": f"not scored on {', '.join(missing)} under the {GOLDFISH} protocol"})
                continue
            # the zero-shot run of the same model in the same grid, else in another, on the same sentences
            candidates = sorted((b for b in bases if b[1].model == run.model), key=lambda b: b[0] != grid)
            base = next((b for b in candidates if _same_sentences(own, b[2])), None)
            if base is None:
                why = "no zero-shot run of the model" if not candidates else \
                    "no zero-shot run of the model scored the same sentences (set names and document ids)"
                left_out.append({**keys, "reason": why})
                continue
            run_bpb = {s: _bpb(f) for s, f in own.items()}
            base_bpb = {s: _bpb(f) for s, f in base[2].items()}
            rows.append({**keys, "label": run.label or "", "learning_rate": run.train.params.learning_rate,
                         "lora_r": run.lora_r,
                         "sentences": ", ".join(f"{FRONTIER_SETS[s].removeprefix('flores-')} {len(own[s])}"
                                                for s in FRONTIER_SETS),
                         "base_grid": base[0],
                         "bashkir_gain": base_bpb["bashkir"] - run_bpb["bashkir"],
                         "english_loss": run_bpb["english"] - base_bpb["english"],
                         "russian_loss": run_bpb["russian"] - base_bpb["russian"],
                         "tatar_change": run_bpb["tatar"] - base_bpb["tatar"]})
    return rows, left_out


def pareto_front(gain: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Which points are on the Pareto front of learning (``gain``, larger is better) against
    forgetting (``loss``, smaller is better): a point is on it unless another point has both a
    larger gain and a smaller loss (strictly; Biderman et al. 2024, Fig. 1's frontier).

    Args:
        gain: shape ``(n,)``, bits per byte.
        loss: shape ``(n,)``, bits per byte.

    Returns:
        Boolean array of shape ``(n,)``.
    """
    gain, loss = np.asarray(gain, float), np.asarray(loss, float)
    dominated = (gain[None, :] > gain[:, None]) & (loss[None, :] < loss[:, None])
    return ~dominated.any(axis=1)


def _with_pareto(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with ``pareto_<side>`` for each of :data:`LOSS_SIDES`, within each model."""
    table = table.copy()
    for side in LOSS_SIDES:
        flags = pd.Series(False, index=table.index)
        for _, g in table.groupby("model"):
            flags[g.index] = pareto_front(g["bashkir_gain"].to_numpy(), g[f"{side}_loss"].to_numpy())
        table[f"pareto_{side}"] = flags.astype(bool)
    return table


def _sorted(table: pd.DataFrame, seed: bool = True) -> pd.DataFrame:
    keys = [(m, method_sort_key(lab), str(lab2), lr, g, s if seed else 0)
            for m, lab, lab2, lr, g, s in zip(table["model"], table["method_label"], table["label"],
                                              table["learning_rate"], table["grid"],
                                              table["seed"] if seed else [0] * len(table))]
    return table.iloc[sorted(range(len(table)), key=keys.__getitem__)].reset_index(drop=True)


def frontier_table(runs_by_grid: Mapping[str, list[RunRecord]]) -> pd.DataFrame:
    """Bashkir learnt against English and Russian forgotten (and Tatar changed), per finished
    trained run of every grid given, with its place on the Pareto front.

    Each run is compared with the zero-shot run of the same model (method label ``base``: the
    model's own tokenizer) in the same grid, else in the other grid, that scored the same
    sentences (the same set names and document ids on every side of :data:`FRONTIER_SETS`):
    bits per byte under the Goldfish protocol, summed NLL over summed UTF-8 bytes of the second
    halves. A run not scored on every side, or without such a base run, is left out
    (:func:`frontier_left_out` says why): the table has no NaN.

    Args:
        runs_by_grid: grid role (:data:`STUDY`, :data:`SWEEP`) -> its runs (the finished ones
            are used; a run's own grid is searched for its base run first, then the others in
            order).

    Returns:
        :data:`FRONTIER_COLUMNS`: ``grid``, the run's keys, ``label`` (the cell's label axis, ``""``
        for none: it tells apart arms of one method label, e.g. LoRA on attention only),
        ``learning_rate`` (peak), ``sentences`` (per side), ``base_grid`` (where its base run
        is), the measures of :data:`FRONTIER_MEASURES` (bits per byte) and ``pareto_english``,
        ``pareto_russian`` (:func:`pareto_front` within the model, over every run of the
        table), sorted by model, method, label, rate, grid and seed.

    Raises:
        RecordError: a finished run's per-document table does not match the contract.
    """
    rows, _ = _scores(runs_by_grid)
    if not rows:
        return pd.DataFrame(columns=FRONTIER_COLUMNS)
    return _sorted(_with_pareto(pd.DataFrame(rows)))[FRONTIER_COLUMNS]


def frontier_left_out(runs_by_grid: Mapping[str, list[RunRecord]]) -> pd.DataFrame:
    """The finished trained runs :func:`frontier_table` leaves out, and why.

    Args:
        runs_by_grid: as for :func:`frontier_table`.

    Returns:
        :data:`LEFT_OUT_COLUMNS` (``reason``: a side not scored under the Goldfish protocol, or
        no zero-shot run of the model on the same sentences).

    Raises:
        RecordError: a finished run's per-document table does not match the contract.
    """
    _, left_out = _scores(runs_by_grid)
    return pd.DataFrame(left_out, columns=LEFT_OUT_COLUMNS)


def frontier_summary(frontier: pd.DataFrame) -> pd.DataFrame:
    """Per grid, model, method label, cell label and learning rate: the mean of each measure
    over seeds, and the Pareto front of these means.

    Args:
        frontier: :func:`frontier_table`.

    Returns:
        :data:`SUMMARY_COLUMNS`: ``n`` (seeds), the means of :data:`FRONTIER_MEASURES` (bits
        per byte) and ``pareto_english``, ``pareto_russian`` (:func:`pareto_front` of the means,
        within the model).
    """
    if frontier.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    keys = ["grid", "model", "method_label", "label", "learning_rate", "lora_r"]
    g = frontier.groupby(keys, dropna=False, sort=False)  # lora_r is NaN for full fine-tuning
    out = g[list(FRONTIER_MEASURES)].mean().join(g.size().rename("n")).reset_index()
    return _sorted(_with_pareto(out), seed=False)[SUMMARY_COLUMNS]


def _run_name(r) -> str:
    return f"{r['method_label']} at {r['learning_rate']:g}" + (f" ({r['grid']})" if r["grid"] != STUDY else "")


def _front_arms(front: pd.DataFrame) -> str:
    """``full at 0.0001, 0.0002; lora r=8 at 0.005``: the method labels of a front, each with its
    learning rates (ascending, each once), in method order."""
    parts = []
    for lab in sorted(set(front["method_label"]), key=lambda x: (method_sort_key(x), x)):
        rates = sorted(set(front.loc[front["method_label"] == lab, "learning_rate"]))
        parts.append(f"{lab} at {', '.join(f'{x:g}' for x in rates)}")
    return "; ".join(parts)


def frontier_sentences(summary: pd.DataFrame) -> list[str]:
    """Two sentences that read the frontier (:func:`frontier_summary`: means over seeds): which
    method labels and learning rates are on the English and on the Russian front, and where the
    largest Bashkir gain and the largest gain without English loss lie.

    Args:
        summary: :func:`frontier_summary` (read per model).

    Returns:
        Markdown sentences (two per model; empty without rows).
    """
    out = []
    for model, s in summary.groupby("model", sort=False):
        fronts = [f"the {side.capitalize()} front holds {int(s[f'pareto_{side}'].sum())} "
                  f"({_front_arms(s[s[f'pareto_{side}'].astype(bool)])})" for side in LOSS_SIDES]
        present = set(s["grid"])
        grids = ("the study and its learning-rate sweep" if present == {STUDY, SWEEP} else
                 "the learning-rate sweep" if present == {SWEEP} else "the grid")
        out.append(f"**Learning against forgetting, {model}** (exploratory; FLORES-200 devtest under the Goldfish "
                   f"protocol, bits per byte; {len(s)} arms and rates of {grids}, each the mean over its "
                   f"seeds). No other arm gains more Bashkir and forgets less than one on a front: {fronts[0]}, "
                   f"{fronts[1]}.")
        best = s.loc[s["bashkir_gain"].idxmax()]
        kept = s[s["english_loss"] <= 0]
        tail = ("no arm gained Bashkir without losing English" if kept.empty else
                f"the largest gain without English loss, {kept['bashkir_gain'].max():+.3f}, is that of "
                f"{_run_name(kept.loc[kept['bashkir_gain'].idxmax()])}")
        out.append(f"The largest Bashkir gain, {best['bashkir_gain']:+.3f}, is that of {_run_name(best)}, at an "
                   f"English loss of {best['english_loss']:+.3f} and a Russian loss of {best['russian_loss']:+.3f}; "
                   f"{tail}.")
    return out
