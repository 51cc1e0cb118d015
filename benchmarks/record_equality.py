"""Records of two runs of the same grid, field by field: equal in everything but times?

Checks a change that must not alter what runs compute (issue 26: the typed record contract).
Run a grid with the code before the change into one runs root and with the code after it into
another, then::

    python benchmarks/record_equality.py RUNS_BEFORE/GRID RUNS_AFTER/GRID

Every record of both grid folders (``grid.json``, ``data_prep.json``, ``data/manifest.json``,
and per run folder ``grid_cell.json`` and the stage records of :data:`bashkir_peft.stages.RUN_RECORDS`)
is read through the current record contract (older versions through its upgrades), dumped to
JSON and compared. Left out of the comparison: times and what measures the machine rather than
the run (wall time, peak memory, throughput, timestamps, file modification times), the git
commit and package versions (they name the code), the runs roots in paths (replaced by
``<runs>``; the repository root by ``<repo>``), and the size and SHA-256 that a stage's file
manifest records for a file that is itself one of the records compared (its serialisation holds
the times and the schema version; its fields are compared one by one). Prints one line per difference and a summary;
exits 1 if any record differs or is missing on one side.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from bashkir_peft.records import (
    CellRecord,
    DataFiles,
    DataManifest,
    DataPrepRecord,
    GridFiles,
    GridIndex,
    RunFiles,
    read_record,
)
from bashkir_peft.stages import RUN_RECORDS

TIMES = {"wall_time_s", "peak_rss_mib", "peak_gpu_mib", "tokens_per_s", "new_tokens_per_s", "words_per_s", "generate_time_s",
         "started", "finished", "created", "created_utc", "mtime_ns", "baselines_s", "probe_s", "in_context_s",
         "process_costs", "packages", "git"}
"""Keys whose values measure the machine or name the code, at any depth."""


RECORD_NAMES = {GridFiles.INDEX, GridFiles.DATA_RECORD, DataFiles.MANIFEST, RunFiles.CELL, *RUN_RECORDS}


def _normalise(value, roots: list[tuple[str, str]]):
    if isinstance(value, dict):
        return {k: _normalise(v, roots) for k, v in value.items()
                if k not in TIMES and k not in RECORD_NAMES}
    if isinstance(value, list):
        return [_normalise(v, roots) for v in value]
    if isinstance(value, str):
        for root, name in roots:
            value = value.replace(root, name)
    return value


def _diff(a, b, where: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{where}.{k}: only in {'after' if k not in a else 'before'}")
            else:
                _diff(a[k], b[k], f"{where}.{k}", out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            _diff(x, y, f"{where}[{i}]", out)
    elif isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return
    elif a != b:
        out.append(f"{where}: {json.dumps(a)[:80]} != {json.dumps(b)[:80]}")


def records(grid: Path) -> dict[str, tuple[Path, type]]:
    """Relative path -> (file, record model) of every record of a grid folder."""
    found = {GridFiles.INDEX: GridIndex, GridFiles.DATA_RECORD: DataPrepRecord,
             f"{GridFiles.DATA}/{DataFiles.MANIFEST}": DataManifest}
    out = {rel: (grid / rel, kind) for rel, kind in found.items() if (grid / rel).is_file()}
    for run in sorted(d for d in grid.iterdir() if (d / RunFiles.CELL).is_file()):
        for name, kind in {RunFiles.CELL: CellRecord, **RUN_RECORDS}.items():
            if (run / name).is_file():
                out[f"{run.name}/{name}"] = (run / name, kind)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("before", type=Path, help="the grid folder written by the code before the change")
    ap.add_argument("after", type=Path, help="the grid folder written by the code after it")
    ap.add_argument("--repo", action="append", default=[], help="a repository root to replace by <repo> (repeatable)")
    args = ap.parse_args(argv)
    roots = [(str(args.before.resolve().parent), "<runs>"), (str(args.after.resolve().parent), "<runs>"),
             *((str(Path(r).resolve()), "<repo>") for r in args.repo)]
    before, after = records(args.before), records(args.after)
    problems = [f"{rel}: only {'before' if rel in before else 'after'}" for rel in sorted(set(before) ^ set(after))]
    for rel in sorted(set(before) & set(after)):
        (a, kind), (b, _) = before[rel], after[rel]
        dumped = [_normalise(read_record(p, kind).model_dump(mode="json"), roots) for p in (a, b)]
        _diff(*dumped, rel, problems)
    for line in problems:
        print(line)
    print(f"{len(set(before) & set(after))} records compared, {len(problems)} difference(s) "
          f"(times, machine measures, git commit and package versions left out)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
