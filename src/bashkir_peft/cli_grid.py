"""``bashkir-peft grid run|status GRID.yaml``: the experiment grid from the command line.

Exit status: 0 all selected cells finished (or were finished before); 1 a cell (or the
data prep) failed; 2 a configuration error (printed as one line before any work).
"""

from __future__ import annotations

import argparse
import sys


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("grid", help="grid file, e.g. params/grids/cpu-demo.yaml")
    p.add_argument("--only", action="append", metavar="KEY=VALUE",
                   help="select cells: model, method, lora_r, seed, label or run_id (repeatable; "
                        "values comma-separated; different keys must all match)")
    p.add_argument("--runs-dir", default=None, help="runs root (default $BASHKIR_PEFT_RUNS or <repo>/runs)")
    p.add_argument("--notebooks", default=None, help="folder of the stage notebooks (default <repo>/notebooks)")


def _load(args: argparse.Namespace, need_corpus: bool):
    from .grid import load_grid, parse_only
    from .gridrun import plan

    grid = load_grid(args.grid)
    return plan(grid, getattr(args, "corpus", None), runs_root=args.runs_dir, notebooks_dir=args.notebooks,
                only=parse_only(args.only), need_corpus=need_corpus)


def _run(args: argparse.Namespace) -> int:
    from .gridrun import StageFailed, run_grid

    run = _load(args, need_corpus=True)
    try:
        if args.executor == "local" or args.dry_run:
            results = run_grid(run, force=args.force, dry_run=args.dry_run, progress=not args.no_progress)
        else:
            from .gridslurm import run_grid_submitit, slurm_parameters

            results = run_grid_submitit(run, force=args.force, cluster=args.executor, slurm=slurm_parameters(
                args.slurm_partition, args.slurm_gpus, args.slurm_cpus, args.slurm_timeout_min))
    except StageFailed as err:
        print(f"error: data preparation failed: {err} (details: {run.root / 'data_prep.json'})", file=sys.stderr)
        return 1
    return 0 if args.dry_run else int(any(r.status == "failed" for r in results))


def _status(args: argparse.Namespace) -> int:
    from .gridrun import cell_state

    run = _load(args, need_corpus=False)
    if run.fingerprint is None:
        print(f"data of grid {run.grid.name!r} not prepared yet ({run.data_dir})")
    for p in run.cells:
        s = cell_state(run, p)
        rid = p.run_id or f"{p.cell.slug}-<pending data>"
        print(f"{rid}  {s['status']}" + (f"  {s['error']}" if s.get("error") else ""))
    return 0


def add_parser(sub) -> None:
    """Register ``grid run`` and ``grid status`` on the CLI's subparsers."""
    g = sub.add_parser("grid", help="run the experiment grid (papermill over notebooks 01-04)")
    gsub = g.add_subparsers(dest="grid_command", required=True)
    p = gsub.add_parser("run", help="data prep once, then train -> evaluate -> generate per cell")
    _common(p)
    p.add_argument("--corpus", default=None,
                   help="REQUIRED: a local .jsonl/.jsonl.gz/.parquet file or folder, or hub:OWNER/NAME "
                        "(no fallback between them)")
    p.add_argument("--dry-run", action="store_true", help="print the cells and their run ids; run nothing")
    p.add_argument("--force", action="store_true",
                   help="rerun selected cells even if finished (old run folders move to .replaced/)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--executor", choices=("local", "slurm", "debug"), default="local",
                   help="local: cells one after another in this process (default); slurm: one job per cell "
                        "via submitit (debug: submitit's in-process executor, for testing)")
    p.add_argument("--slurm-partition", default=None)
    p.add_argument("--slurm-gpus", type=int, default=1, help="GPUs per job (slurm)")
    p.add_argument("--slurm-cpus", type=int, default=8, help="CPUs per job (slurm)")
    p.add_argument("--slurm-timeout-min", type=int, default=24 * 60, help="time limit per job (slurm)")
    p.set_defaults(func=_run)
    p = gsub.add_parser("status", help="status of every cell of a grid")
    _common(p)
    p.set_defaults(func=_status)
