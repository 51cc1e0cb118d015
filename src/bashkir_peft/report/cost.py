"""Training and its cost: every run with its status and training cost, quality beside cost,
the learning curves, the learning-rate sweep, and the disk every run keeps.

Every function reads the runs' typed records (:class:`~bashkir_peft.report.runs.RunRecord`) or
tables built from them and returns a :class:`pandas.DataFrame`; nothing here writes files.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from bashkir_peft.config.design import StudyDesign
from bashkir_peft.names import method_sort_key
from bashkir_peft.records import RunFiles
from bashkir_peft.report.runs import RunRecord, as_float, run_keys

COST_COLUMNS = ["trainable_params", "total_params", "wall_time_s", "peak_memory_mib", "tokens_per_s", "tokens_seen"]
"""The training cost :func:`quality_cost_table` puts beside each run's metrics."""

CURVE_COLUMNS = ["run_id", "model", "method_label", "seed", "learning_rate", "step", "train_bytes_seen",
                 "eval_loss", "bits_per_byte", "label"]
"""Columns of :func:`learning_curves_table`."""

SWEEP_RUN_COLUMNS = ["run_id", "model", "method_label", "learning_rate", "seed", "steps", "tokens_seen",
                     "train_bytes_seen", "bits_per_byte"]
"""Columns of :func:`sweep_runs_table`."""

SWEEP_COLUMNS = ["model", "method_label", "learning_rate", "n_seeds", "steps", "tokens_seen", "train_bytes_seen",
                 "bits_per_byte", "bits_per_byte_sd", "chosen", "at_edge"]
"""Columns of :func:`sweep_table`."""

DISK_COLUMNS = ["run_id", "method_label", "final_mib", "checkpoints_mib", "other_mib", "total_mib"]
"""Columns of :func:`disk_usage`."""


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
        row = {**run_keys(run),
               "lora_alpha": train.params.lora_alpha if train and run.lora_r is not None else None,
               "status": run.status, "failed_stage": run.failed_stage, "error": run.error,
               "trainable_params": 0.0 if run.method == "base" else as_float(train.trainable_params if train else None),
               "total_params": as_float(train.total_params if train else None),
               "wall_time_s": as_float(cost.wall_time_s if cost else None),
               "peak_rss_mib": as_float(cost.peak_rss_mib if cost else None),
               "peak_gpu_mib": as_float(cost.peak_gpu_mib if cost else None),
               "tokens_per_s": as_float(train.tokens_per_s if train else None),
               "tokens_seen": as_float(train.tokens_seen if train else None)}
        row["peak_memory_mib"] = row["peak_gpu_mib"] if not math.isnan(row["peak_gpu_mib"]) else row["peak_rss_mib"]
        rows.append(row)
    return pd.DataFrame(rows)


def quality_cost_table(runs_tab: pd.DataFrame, metrics: pd.DataFrame, protocol: str | None,
                       split: str = "test") -> pd.DataFrame:
    """Finished runs with their training cost beside their metrics.

    Args:
        runs_tab: :func:`runs_table`.
        metrics: :func:`~bashkir_peft.report.lm.metrics_table`.
        protocol, split: the evaluation whose metrics are used (all sources together).

    Returns:
        One row per finished run: the columns of :func:`~bashkir_peft.report.lm.metrics_table`
        and :data:`COST_COLUMNS` (``trainable_params, total_params, wall_time_s,
        peak_memory_mib, tokens_per_s, tokens_seen``); empty without metrics or runs.
    """
    if metrics.empty or runs_tab.empty:
        return pd.DataFrame()
    m = metrics[(metrics["protocol"] == protocol) & (metrics["split"] == split) & (metrics["source"] == "all")]
    return m.merge(runs_tab[["run_id", *COST_COLUMNS]], on="run_id", how="left")


def learning_curves_table(runs: list[RunRecord]) -> pd.DataFrame:
    """Validation bits per byte against bytes of training text seen, for every trained run.

    Args:
        runs: all runs (those with a training record that has losses).

    Returns:
        One row per validation point of a run's ``train.json`` (:data:`CURVE_COLUMNS`;
        ``bits_per_byte`` and ``train_bytes_seen`` NaN for records written before the byte
        budget existed; ``label``: the cell's label axis, ``""`` for none).
    """
    rows = []
    for run in runs:
        if run.train is None or run.train.losses is None:
            continue
        for point in run.train.losses.eval:
            rows.append({"run_id": run.run_id, "model": run.model, "method_label": run.method_label,
                         "seed": run.seed, "learning_rate": run.train.params.learning_rate, "step": point.step,
                         "train_bytes_seen": point.train_bytes_seen, "eval_loss": point.eval_loss,
                         "bits_per_byte": point.bits_per_byte, "label": run.label or ""})
    out = pd.DataFrame(rows, columns=CURVE_COLUMNS)
    for col in ("train_bytes_seen", "bits_per_byte"):
        out[col] = out[col].astype(float)
    return out


def sweep_runs_dir(runs_dir: Path, design: StudyDesign | None) -> Path | None:
    """The runs folder of the study's learning-rate sweep (beside the grid's), if it has one.

    Args:
        runs_dir: the study grid's runs folder.
        design: its study block (``None``: no sweep).

    Returns:
        ``<runs_dir>/../<learning_rate_sweep>`` where the design names a sweep and the folder
        exists, else ``None``.
    """
    if design is None or design.learning_rate_sweep is None:
        return None
    path = Path(runs_dir).parent / design.learning_rate_sweep
    return path if path.is_dir() else None


def sweep_runs_table(runs: list[RunRecord]) -> pd.DataFrame:
    """The learning-rate sweep, one row per finished run: its final validation bits per byte.

    Args:
        runs: the sweep's runs (those with a finished training record and a final evaluation
            are used).

    Returns:
        :data:`SWEEP_RUN_COLUMNS` (``train_bytes_seen``: bytes of training text seen,
        :func:`~bashkir_peft.train.budget.text_seen`, rounded), sorted by model, method, rate
        and seed.
    """
    rows = []
    for run in runs:
        t = run.train
        if t is None or t.status != "finished" or t.final_eval is None:
            continue
        seen = t.text_seen
        rows.append({"run_id": run.run_id, "model": run.model, "method_label": run.method_label,
                     "learning_rate": t.params.learning_rate, "seed": run.seed, "steps": t.global_step,
                     "tokens_seen": t.tokens_seen, "train_bytes_seen": None if seen is None else round(seen),
                     "bits_per_byte": t.final_eval.bits_per_byte})
    out = pd.DataFrame(rows, columns=SWEEP_RUN_COLUMNS)
    out["bits_per_byte"] = out["bits_per_byte"].astype(float)
    order = sorted(range(len(out)), key=lambda i: (out["model"].iloc[i], method_sort_key(out["method_label"].iloc[i]),
                                                   out["learning_rate"].iloc[i], out["seed"].iloc[i] or 0))
    return out.iloc[order].reset_index(drop=True)


def sweep_table(sweep_runs: pd.DataFrame) -> pd.DataFrame:
    """The learning-rate sweep over seeds: per model, method label (with its placement and
    variant: :attr:`~bashkir_peft.report.runs.RunRecord.method_label`) and rate, the mean final
    validation bits per byte over the seeds that finished; per model and method label the rate
    with the lowest mean (``chosen``), and whether that rate is the lowest or highest one tried
    (``at_edge``: the optimum may lie outside the rates tried, so the grid should be extended
    one step beyond; a method with a single rate is always at the edge).

    Args:
        sweep_runs: :func:`sweep_runs_table`.

    Returns:
        :data:`SWEEP_COLUMNS`: ``n_seeds`` (finished runs of the rate), ``steps``,
        ``tokens_seen`` and ``train_bytes_seen`` (means over the seeds, rounded),
        ``bits_per_byte`` (mean over the seeds), ``bits_per_byte_sd`` (their sample standard
        deviation, ``ddof=1``; NaN for one seed), ``chosen`` and ``at_edge`` (``at_edge`` is
        set on the chosen row only); sorted by model, method and rate.
    """
    s = sweep_runs.dropna(subset=["bits_per_byte"]) if len(sweep_runs) else sweep_runs
    if s.empty:
        return pd.DataFrame(columns=SWEEP_COLUMNS)
    keys = ["model", "method_label", "learning_rate"]
    out = s.groupby(keys, sort=False).agg(
        n_seeds=("bits_per_byte", "size"), steps=("steps", "mean"), tokens_seen=("tokens_seen", "mean"),
        train_bytes_seen=("train_bytes_seen", "mean"), bits_per_byte=("bits_per_byte", "mean"),
        bits_per_byte_sd=("bits_per_byte", "std")).reset_index()
    for col in ("steps", "tokens_seen", "train_bytes_seen"):
        out[col] = pd.array(out[col].astype("Float64").round(), dtype="Int64")
    arm = out.groupby(["model", "method_label"])
    out["chosen"] = out["bits_per_byte"] == arm["bits_per_byte"].transform("min")
    edge = (out["learning_rate"] == arm["learning_rate"].transform("min")) | (
        out["learning_rate"] == arm["learning_rate"].transform("max"))
    out["at_edge"] = out["chosen"] & edge
    order = sorted(range(len(out)), key=lambda i: (out["model"].iloc[i], method_sort_key(out["method_label"].iloc[i]),
                                                   out["learning_rate"].iloc[i]))
    return out.iloc[order].reset_index(drop=True)[SWEEP_COLUMNS]


def disk_usage(runs: list[RunRecord]) -> pd.DataFrame:
    """Bytes every run keeps, from the file manifests its stages recorded in its cell record
    (so a results bundle, which leaves the weights out, reports the same): the final model or
    adapter, the checkpoints kept for resuming, and the rest the stages recorded (records,
    per-document tables, an adapted tokenizer; executed notebooks are not in the manifests).

    Args:
        runs: all runs.

    Returns:
        :data:`DISK_COLUMNS`: ``run_id, method_label, final_mib, checkpoints_mib, other_mib,
        total_mib`` (MiB = 2**20 bytes).
    """
    rows = []
    for run in runs:
        size = {"final": 0, "checkpoints": 0, "other": 0}
        for stage in run.cell.stages.values():
            for name, stamp in (stage.files or {}).items():
                top = name.split("/")[0]
                written = stamp.bytes if stamp.written_bytes is None else stamp.written_bytes  # as the run wrote it
                size[top if top in (RunFiles.FINAL, RunFiles.CHECKPOINTS) else "other"] += written
        rows.append({"run_id": run.run_id, "method_label": run.method_label, "final_mib": size["final"] / 2**20,
                     "checkpoints_mib": size["checkpoints"] / 2**20, "other_mib": size["other"] / 2**20,
                     "total_mib": sum(size.values()) / 2**20})
    return pd.DataFrame(rows, columns=DISK_COLUMNS)
