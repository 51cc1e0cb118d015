"""Forgetting of a grid's finished runs: each run and base model scored on the grid's
external test sets (the SIB-200 sides), then the report's "gained vs forgotten" table.

For every run folder of ``RUNS_DIR`` (a grid's runs folder, e.g. a copy of the CPU demo's)
the evaluation notebook's function scores each external set of the grid file's
``evaluate.external_sets`` into the run folder (a set already there is skipped), then the
table of :func:`bashkir_peft.report.forgetting.forgetting_table` is printed (per run and mean
per method). ``--max-documents`` overrides the sets' own cap (the same first N sentences of
every side, for every run).

    .venv/bin/python benchmarks/forgetting.py /tmp/i13c/runs/cpu-demo --grid params/grids/cpu-demo.yaml
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def main() -> None:
    from bashkir_peft.config.evaluate import EvalParams
    from bashkir_peft.config.external import ExternalSet
    from bashkir_peft.config.grid import load_grid
    from bashkir_peft.evaluate.run import run_evaluation
    from bashkir_peft.report.runs import discover_runs

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs_dir", type=Path)
    ap.add_argument("--grid", default=str(REPO / "params/grids/cpu-demo.yaml"))
    ap.add_argument("--max-documents", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--table-only", action="store_true", help="print the table, score nothing")
    args = ap.parse_args()

    sets = [ExternalSet.model_validate(x) for x in load_grid(args.grid).spec.evaluate.get("external_sets", [])]
    if args.max_documents is not None:
        sets = [s.model_copy(update={"max_documents": args.max_documents}) for s in sets]
    runs = sorted(discover_runs(args.runs_dir), key=lambda r: (r.seed, r.run_id))  # first seed of every method first
    for run in [] if args.table_only else runs:
        done = set(run.eval.evaluations) if run.eval else set()
        for s in sets:
            if f"rolling/{s.name}" in done:
                continue
            who = {"model": run.model} if run.method == "base" else {"run_dir": str(run.path)}
            t = time.perf_counter()
            e = run_evaluation(EvalParams(**who, external=s, output_dir=str(run.path), batch_size=args.batch_size),
                               progress=False)
            print(f"{run.run_id} {s.name}: {e.metrics.documents} documents, {e.metrics.tokens} tokens, "
                  f"bits_per_byte {e.metrics.bits_per_byte:.4f} ({time.perf_counter() - t:.0f} s)", flush=True)
    from bashkir_peft.report.forgetting import forgetting_summary, forgetting_table

    table = forgetting_table(discover_runs(args.runs_dir))
    print(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    print(forgetting_summary(table).to_string(index=False, float_format=lambda x: f"{x:.4f}"))


if __name__ == "__main__":
    main()
