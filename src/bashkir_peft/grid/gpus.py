"""One cell per GPU on one machine (``grid run ... --executor gpus --gpus 0,1,2,3``).

Data preparation runs once in this process; then the cells run concurrently as submitit
*local* jobs (``submitit.LocalExecutor``: one subprocess per job, its
``CUDA_VISIBLE_DEVICES`` set to the GPUs it was given), at most one cell per group of
``gpus_per_cell`` GPUs at a time: a cell starts when a group is free. Each job runs
:func:`bashkir_peft.grid.slurm.cell_job`, so locks, records, skipping and resuming are those of
the other executors. A cell whose training asks for ``processes: N`` needs ``gpus_per_cell``
>= N (its torchrun processes take one GPU each). Job logs go to ``runs/<grid>/.submitit/``.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from bashkir_peft.errors import ConfigError
from bashkir_peft.grid.runner import CellResult, GridRun, assign_run_ids, prepare_data, results_table, write_index
from bashkir_peft.grid.slurm import cell_job, job_outcome


def gpu_groups(gpus: list[int], gpus_per_cell: int) -> list[list[int]]:
    """Split the GPU indices into groups of ``gpus_per_cell`` (a remainder stays unused).

    Raises:
        ConfigError: no GPU given, repeated indices, or fewer GPUs than one cell needs.
    """
    if not gpus or len(set(gpus)) != len(gpus):
        raise ConfigError(f"--gpus must list distinct GPU indices, got {gpus}")
    if gpus_per_cell < 1 or gpus_per_cell > len(gpus):
        raise ConfigError(f"--gpus-per-cell {gpus_per_cell}: must be between 1 and the {len(gpus)} GPU(s) given")
    n = len(gpus) // gpus_per_cell
    return [gpus[i * gpus_per_cell:(i + 1) * gpus_per_cell] for i in range(n)]


def run_grid_gpus(run: GridRun, gpus: list[int], *, gpus_per_cell: int = 1, force: bool = False,
                  timeout_min: int = 24 * 60, poll_s: float = 1.0, out: TextIO | None = None) -> list[CellResult]:
    """Run the planned cells concurrently, one per GPU group (module docstring).

    Args:
        run: a plan from :func:`bashkir_peft.grid.runner.plan` (its grid must come from a file).
        gpus: GPU indices to use (as ``nvidia-smi`` numbers them).
        gpus_per_cell: GPUs each cell gets (its ``CUDA_VISIBLE_DEVICES``).
        force: rerun finished cells.
        timeout_min: time limit of each cell's job.
        poll_s: seconds between checks for finished jobs.

    Returns:
        One :class:`CellResult` per cell, in plan order.

    Raises:
        ConfigError: bad ``gpus`` / ``gpus_per_cell``; StageFailed: data preparation failed.
    """
    import submitit

    groups = gpu_groups(gpus, gpus_per_cell)
    out = out or sys.stdout
    if run.grid.path is None:
        raise ValueError("the gpus executor needs a grid loaded from a file")
    run.fingerprint = prepare_data(run)
    assign_run_ids(run)
    args = (str(run.grid.path), run.corpus, str(run.root.parent), str(run.notebooks))
    executor = submitit.LocalExecutor(folder=run.root / ".submitit")
    pending, running, done = list(run.cells), {}, {}
    while pending or running:
        while pending and groups:
            group, p = groups.pop(0), pending.pop(0)
            executor.update_parameters(visible_gpus=group, gpus_per_node=len(group), timeout_min=timeout_min)
            running[executor.submit(cell_job, *args, p.run_id, force)] = (p, group)
            print(f"{p.run_id}: started on GPU {','.join(map(str, group))}", file=out)
        finished = [job for job in running if job.done()]
        if not finished:
            time.sleep(poll_s)
        for job in finished:
            p, group = running.pop(job)
            groups.append(group)
            done[p.run_id] = job_outcome(p, job)
    results = [done[p.run_id] for p in run.cells]
    write_index(run)
    print(results_table(results), file=out)
    return results
