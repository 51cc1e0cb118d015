"""Run a grid's cells as cluster jobs with submitit (``grid run ... --executor slurm``).

Data preparation runs as one job first (every cell needs its fingerprint); then each cell
is one job of a Slurm job array, which rebuilds the plan from the grid file and runs
:func:`bashkir_peft.grid.runner.run_cell` on its node: the same locks, records, skipping and resuming as the
local executor, so local and cluster invocations can be mixed and repeated. Job logs go to
``runs/<grid>/.submitit/``.
"""

from __future__ import annotations

import sys
from typing import TextIO

from bashkir_peft.config.grid import load_grid, parse_only
from bashkir_peft.grid.runner import (
    CellResult,
    GridRun,
    Planned,
    StageFailed,
    assign_run_ids,
    plan,
    prepare_data,
    results_table,
    run_cell,
    write_index,
)


def _replan(grid_file: str, corpus: str, runs_root: str, notebooks: str, run_id: str | None) -> GridRun:
    only = parse_only([f"run_id={run_id}"]) if run_id else None
    return plan(load_grid(grid_file), corpus, runs_root=runs_root, notebooks_dir=notebooks, only=only)


def data_job(grid_file: str, corpus: str, runs_root: str, notebooks: str) -> str:
    """Job: prepare the grid's data; returns the fingerprint."""
    return prepare_data(_replan(grid_file, corpus, runs_root, notebooks, None))


def cell_job(grid_file: str, corpus: str, runs_root: str, notebooks: str, run_id: str,
             force: bool) -> tuple[str, float, str | None]:
    """Job: run one cell; returns ``(status, wall_time_s, error)``."""
    run = _replan(grid_file, corpus, runs_root, notebooks, run_id)
    res = run_cell(run, run.cells[0], force=force)
    return res.status, res.wall_time_s, res.error


def job_outcome(p: Planned, job) -> CellResult:
    """The :class:`CellResult` of a finished :func:`cell_job` submitit job (waits for it); a job
    that died (node failure, timeout) is a failed cell with the job's last error line."""
    try:
        status, wall, error = job.result()
    except Exception as err:  # noqa: BLE001 - the job itself died (node failure, timeout)
        status, wall, error = "failed", 0.0, f"job {job.job_id}: {str(err).strip().splitlines()[-1]}"
    return CellResult(p, status, wall, error)


def run_grid_submitit(run: GridRun, *, force: bool = False, cluster: str | None = "slurm",
                      slurm: dict | None = None, out: TextIO | None = None) -> list[CellResult]:
    """Submit data prep, then one job per cell; wait and print the summary table.

    Args:
        run: a plan from :func:`bashkir_peft.grid.runner.plan` (its grid must come from a file).
        force: rerun finished cells.
        cluster: submitit cluster (``slurm``; ``debug`` runs the jobs in this process, for tests).
        slurm: submitit parameters, e.g. ``{"slurm_partition": "gpu", "gpus_per_node": 1,
            "timeout_min": 720, "cpus_per_task": 8}``.

    Raises:
        StageFailed: data preparation failed.
    """
    import submitit
    from tqdm.auto import tqdm

    out = out or sys.stdout
    if run.grid.path is None:
        raise ValueError("the submitit executor needs a grid loaded from a file")
    args = (str(run.grid.path), run.corpus, str(run.root.parent), str(run.notebooks))
    executor = submitit.AutoExecutor(folder=run.root / ".submitit", cluster=cluster)
    executor.update_parameters(name=f"grid-{run.grid.name}", **(slurm or {}))
    try:
        run.fingerprint = executor.submit(data_job, *args).result()
    except submitit.core.utils.FailedJobError as err:
        raise StageFailed(str(err).strip().splitlines()[-1]) from None
    assign_run_ids(run)
    with executor.batch():
        jobs = [executor.submit(cell_job, *args, p.run_id, force) for p in run.cells]
    results = [job_outcome(p, job)
               for p, job in zip(run.cells, tqdm(jobs, desc=f"grid {run.grid.name}", unit="cell", file=sys.stderr))]
    write_index(run)
    print(results_table(results), file=out)
    return results


def slurm_parameters(partition: str | None, gpus: int, cpus: int, timeout_min: int) -> dict:
    """submitit parameters from the CLI options (None/0 values left to the cluster's defaults)."""
    params = {"timeout_min": timeout_min, "cpus_per_task": cpus}
    if partition:
        params["slurm_partition"] = partition
    if gpus:
        params["gpus_per_node"] = gpus
    return params
