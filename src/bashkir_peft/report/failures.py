"""The cells left out of the results (failed, unfinished, never readable), and the check that a
grid has anything to report at all."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bashkir_peft.errors import DataError
from bashkir_peft.report.runs import RUN_KEYS, RunRecord, run_keys

FAILURE_COLUMNS = [*RUN_KEYS, "status", "failed_stage", "error", "path"]
"""Columns of :func:`failures_table`."""


def failures_table(runs: list[RunRecord], gaps: list[dict] = ()) -> pd.DataFrame:
    """Cells left out of the results: failed (with the stage and error), incomplete, and the
    grid's cells that have no readable run (:func:`~bashkir_peft.report.runs.index_gaps`:
    not started, folder removed, corrupt, stale).

    Args:
        runs: all runs.
        gaps: the index's cells without a readable run.

    Returns:
        :data:`FAILURE_COLUMNS`: ``run_id, model, method, method_label, lora_r, seed, status,
        failed_stage, error, path`` (path: the run's folder inside the grid's runs folder, so
        the table is the same wherever the runs folder lies, e.g. extracted from a results
        bundle).
    """
    rows = [{**run_keys(r), "status": r.status, "failed_stage": r.failed_stage,
             "error": r.error or ("no evaluation record yet" if r.status == "incomplete" else None),
             "path": r.path.name}
            for r in runs if r.status != "finished"] + list(gaps)
    return pd.DataFrame(rows, columns=FAILURE_COLUMNS)


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
