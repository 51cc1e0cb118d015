"""bashkir-peft: LoRA, QLoRA and full fine-tuning for Bashkir, from data to book.

Commands:
    setup-models   provision the offline models of the registry (tiny random models,
                   the converted SmolLM2 GGUF) into the cache folder
    models         list the registry
    prepare-data   clean, filter, de-duplicate and split a corpus (notebook 01's logic)
    grid run       run an experiment grid: papermill over notebooks 01-04
    grid status    the state of every cell of a grid
    report         aggregate a grid's runs into tables and figures
    book           build the grid's Jupyter Book, strictly and offline
    lessons        execute the lessons (lessons/*.ipynb) for the book
    bundle         write a grid's results bundle (no weights) for rebuilding its book
    spectrum       the singular-value spectrum of a finished full fine-tuning run's weight change

    grid verify    every cell's state with full checksums of the files each stage wrote

Exit status: 0 success; 1 a stage failed (a grid cell, the data prep, the book build), a
selected cell is not finished at the end of ``grid run`` (another process holds it), or an
unexpected error; 2 an error the user can fix (:class:`ConfigError`), printed as one line
before any work. Every error is one line; ``--debug`` shows the traceback instead.

Paths on the command line are taken from the current folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bashkir_peft.book import BookError, build_book
from bashkir_peft.config.book import BookParams
from bashkir_peft.config.data import DataPrepParams
from bashkir_peft.config.grid import grid_file, load_grid, parse_only, report_dirs, resolve_grid
from bashkir_peft.config.report import ReportParams
from bashkir_peft.data.corpus import HUB_PREFIX
from bashkir_peft.data.prepare import prepare
from bashkir_peft.errors import ConfigError
from bashkir_peft.grid.gpus import run_grid_gpus
from bashkir_peft.grid.runner import StageFailed, data_problem, grid_cell_state, plan, run_grid, stale_runs, write_index
from bashkir_peft.grid.slurm import run_grid_submitit, slurm_parameters
from bashkir_peft.lessons import execute_lessons
from bashkir_peft.models.provision import provision_all
from bashkir_peft.models.registry import load_registry
from bashkir_peft.models.spectrum import write_weight_spectrum
from bashkir_peft.records import GridFiles, RunFiles
from bashkir_peft.report.build import build_report
from bashkir_peft.report.bundle import BUNDLE_SUFFIX, write_bundle
from bashkir_peft.report.views import format_headline
from bashkir_peft.runtime import configure_threads
from bashkir_peft.yamlio import parse_yaml, validate


def _setup_models(args: argparse.Namespace) -> int:
    for name, path in provision_all(args.names or None).items():
        print(f"{name}: {path}")
    return 0


def _models(args: argparse.Namespace) -> int:
    for name, e in load_registry().models.items():
        print(f"{name:14s} {e.source:5s} {e.model_type:8s} {e.hub_id or '-':36s} {','.join(e.target_modules)}")
    return 0


# --- prepare-data ------------------------------------------------------------

def _value(text: str):
    return parse_yaml(text)


def resolve_path(path: str | None) -> str | None:
    """A command-line path made absolute from the current folder (``None`` stays ``None``)."""
    return None if path is None else str(Path(path).expanduser().absolute())


def _prepare(args: argparse.Namespace) -> int:
    corpus = args.corpus if args.corpus.startswith(HUB_PREFIX) else resolve_path(args.corpus)
    values = {"corpus": corpus, "output_dir": resolve_path(args.output_dir)}
    for item in args.set or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected key=value")
        values[key.strip()] = _value(raw)
    params = validate(DataPrepParams, values, "prepare-data")
    configure_threads()
    manifest = prepare(params, log=print)
    print(f"fingerprint {manifest.fingerprint}")
    return 0


def add_data_parser(sub) -> None:
    """Register ``prepare-data`` on the CLI's subparsers."""
    p = sub.add_parser("prepare-data", help="clean, filter, de-duplicate and split a corpus (as notebook 01)")
    p.add_argument("corpus", help="a .jsonl/.jsonl.gz/.parquet file or folder, a folder of .txt, or hub:OWNER/NAME")
    p.add_argument("output_dir", help="where train/validation/test.parquet and manifest.json go")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any other DataPrepParams field, e.g. --set seed=7 --set min_chars=100 (YAML values)")
    p.set_defaults(func=_prepare)


# --- grid run | status -------------------------------------------------------

def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("grid", help="grid file, e.g. params/grids/cpu-demo.yaml")
    p.add_argument("--only", action="append", metavar="KEY=VALUE",
                   help="select cells: model, method, lora_r, seed, label or run_id (repeatable; "
                        "values comma-separated; different keys must all match)")
    p.add_argument("--tier", default=None, metavar="NAME",
                   help="only the cells of one of the grid's named tiers (its `tiers` block, e.g. quick); "
                        "--only then selects within it")
    p.add_argument("--runs-dir", default=None, help="runs root (default $BASHKIR_PEFT_RUNS or <repo>/runs)")
    p.add_argument("--notebooks", default=None, help="folder of the stage notebooks (default <repo>/notebooks)")


def _load(args: argparse.Namespace, need_corpus: bool):
    grid = load_grid(resolve_path(args.grid))
    return plan(grid, getattr(args, "corpus", None), runs_root=resolve_path(args.runs_dir), notebooks_dir=resolve_path(args.notebooks),
                only=parse_only(args.only), tier=args.tier, need_corpus=need_corpus)


def _gpu_list(text: str | None) -> list[int]:
    """``--gpus 0,1,3`` as indices; ``None``: every GPU torch sees."""
    if text is None:
        import torch

        return list(range(torch.cuda.device_count()))
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--gpus {text}: expected comma-separated GPU indices, e.g. 0,1") from None


def _run(args: argparse.Namespace) -> int:
    run = _load(args, need_corpus=True)
    try:
        if args.executor == "local" or args.dry_run:
            results = run_grid(run, force=args.force, dry_run=args.dry_run, progress=not args.no_progress)
        elif args.executor == "gpus":
            results = run_grid_gpus(run, _gpu_list(args.gpus), gpus_per_cell=args.gpus_per_cell, force=args.force)
        else:
            results = run_grid_submitit(run, force=args.force, cluster=args.executor, slurm=slurm_parameters(
                args.slurm_partition, args.slurm_gpus, args.slurm_cpus, args.slurm_timeout_min))
    except StageFailed as err:
        print(f"error: data preparation failed: {err} (details: {run.root / GridFiles.DATA_ATTEMPT}; the last "
              "good data, if any, is untouched)", file=sys.stderr)
        return 1
    if args.dry_run:
        return 0
    held = [r.planned.run_id for r in results if r.status == "locked"]
    if held:
        print(f"error: {len(held)} cell(s) held by another process, not finished yet: {', '.join(held)}",
              file=sys.stderr)
    return int(any(r.status not in ("finished", "skipped") for r in results))


def _states(args: argparse.Namespace, checksums: bool) -> int:
    """Print the data's and every selected cell's state (and refresh the grid's index, where the
    report reads the grid's verdicts); 0 when every cell is finished."""
    run = _load(args, need_corpus=False)
    if run.root.is_dir():
        try:
            write_index(run)
        except OSError as err:  # e.g. a full disk: the states are still worth listing
            print(f"warning: could not write the grid's index {run.root / GridFiles.INDEX}: {err.strerror or err}",
                  file=sys.stderr)
    if run.fingerprint is None:
        print(f"data of grid {run.grid.name!r} not prepared yet ({run.data_dir})")
    problem = data_problem(run, checksums)
    if problem:
        print(f"data: altered or missing, `grid run` prepares it again: {problem}")
    ok = not problem
    for p in run.cells:
        s = grid_cell_state(run, p, checksums)
        ok &= s.status == "finished"
        rid = p.run_id or f"{p.cell.slug}-<pending data>"
        print(f"{rid}  {s.status}" + (f"  {s.error}" if s.error else ""))
    stale = stale_runs(run)
    if stale:
        print(f"stale: {len(stale)} run folder(s) of earlier parameters or data, not in the grid: {', '.join(stale)}")
    return int(not ok)


def _status(args: argparse.Namespace) -> int:
    _states(args, checksums=False)
    return 0


def _verify(args: argparse.Namespace) -> int:
    return _states(args, checksums=True)


def add_grid_parser(sub) -> None:
    """Register ``grid run`` and ``grid status`` on the CLI's subparsers."""
    g = sub.add_parser("grid", help="run the experiment grid (papermill over notebooks 01-04)")
    gsub = g.add_subparsers(dest="grid_command", required=True)
    p = gsub.add_parser("run", help="data prep once, then train -> evaluate -> generate -> downstream per cell")
    _common(p)
    p.add_argument("--corpus", default=None,
                   help="REQUIRED: a local .jsonl/.jsonl.gz/.parquet file or folder, or hub:OWNER/NAME "
                        "(no fallback between them)")
    p.add_argument("--dry-run", action="store_true", help="print the cells and their run ids; run nothing")
    p.add_argument("--force", action="store_true",
                   help="rerun selected cells even if finished (old run folders move to .replaced/)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--executor", choices=("local", "slurm", "debug", "gpus"), default="local",
                   help="local: cells one after another in this process (default); slurm: one job per cell "
                        "via submitit (debug: submitit's in-process executor, for testing); gpus: cells "
                        "concurrently on this machine, one per GPU (submitit's local executor)")
    p.add_argument("--gpus", default=None, help="GPU indices for --executor gpus, e.g. 0,1,2,3 (default: all visible)")
    p.add_argument("--gpus-per-cell", type=int, default=1, help="GPUs each cell gets (--executor gpus)")
    p.add_argument("--slurm-partition", default=None)
    p.add_argument("--slurm-gpus", type=int, default=1, help="GPUs per job (slurm)")
    p.add_argument("--slurm-cpus", type=int, default=8, help="CPUs per job (slurm)")
    p.add_argument("--slurm-timeout-min", type=int, default=24 * 60, help="time limit per job (slurm)")
    p.set_defaults(func=_run)
    p = gsub.add_parser("status", help="status of every cell of a grid")
    _common(p)
    p.set_defaults(func=_status)
    p = gsub.add_parser("verify", help="every cell's state, checking each file a stage wrote by SHA-256 "
                                       "(exit 1 unless every selected cell is finished and intact)")
    _common(p)
    p.set_defaults(func=_verify)


# --- report | book -----------------------------------------------------------

def _grid_dir(args: argparse.Namespace) -> str | None:
    """``--runs-dir`` is the runs ROOT, as for ``grid run``: the grid's folder is ``<root>/<name>``."""
    if not args.runs_dir:
        return None
    return str(Path(resolve_path(args.runs_dir)) / resolve_grid(_grid_arg(args.grid))[0])


def _grid_arg(grid: str) -> str:
    """A grid YAML path made absolute from the current folder; a grid name as it is."""
    return resolve_path(grid) if Path(grid).suffix in (".yaml", ".yml") else grid


def _refresh_index(args: argparse.Namespace) -> None:
    """Rewrite the grid's index ``grid.json`` from the grid file and the prepared data, as
    ``grid status`` does, before the report, the book or the bundle read it: the cells they
    read are the grid file's current cells, never those of an index written before the grid
    file or the data changed, or of no index at all. A bare grid name (no file to compute the
    cells from) reads the index as it is."""
    grid = grid_file(_grid_arg(args.grid))
    if grid is None:
        return
    run = plan(grid, None, runs_root=resolve_path(args.runs_dir), need_corpus=False)
    if run.root.is_dir():
        write_index(run)


def _report(args: argparse.Namespace) -> int:
    import pandas as pd

    given = {"grid": _grid_arg(args.grid), "runs_dir": _grid_dir(args), "output_dir": resolve_path(args.out_dir),
             "data_dir": resolve_path(args.data_dir)}
    params = validate(ReportParams, {k: v for k, v in given.items() if v}, "report")
    _refresh_index(args)
    result = build_report(params)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(format_headline(result.headline, result.tables.get("floors")).to_string(index=False))
    failed = result.tables["failures"]
    finished = sum(r.status == "finished" for r in result.runs)
    print(f"\n{finished} finished, {len(failed)} failed or unfinished; "
          f"tables and figures in {result.out_dir}")
    return 0


def _book(args: argparse.Namespace) -> int:
    given = {"grid": _grid_arg(args.grid), "runs_dir": _grid_dir(args), "book_dir": resolve_path(args.book_dir),
             "build": not args.no_build, "from_bundle": resolve_path(args.from_bundle), "lessons_dir": resolve_path(args.lessons_dir)}
    params = validate(BookParams, {k: v for k, v in given.items() if v is not None}, "book")
    if not params.from_bundle:
        _refresh_index(args)
    try:
        out = build_book(params)
    except BookError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"book: {out}" + ("" if args.no_build else "  (open it in a browser: file://" + str(out) + ")"))
    return 0


RUNS_HELP = "runs root, as for `grid run` (default $BASHKIR_PEFT_RUNS or <repo>/runs); the grid's runs are in <root>/<grid name>"


def add_report_parsers(sub) -> None:
    """Add the ``report`` and ``book`` sub-commands to the CLI's sub-parsers."""
    p = sub.add_parser("report", help="aggregate a grid's runs into tables and figures")
    p.add_argument("grid", help="grid YAML (params/grids/NAME.yaml) or grid name")
    p.add_argument("--runs-dir", help=RUNS_HELP)
    p.add_argument("--out-dir", help="output folder (default: <runs-dir>/report)")
    p.add_argument("--data-dir", help="data-prep output, for the fertility table")
    p.set_defaults(func=_report)
    p = sub.add_parser("book", help="build the Jupyter Book of a grid (strict, offline)")
    p.add_argument("grid", help="grid YAML (params/grids/NAME.yaml) or grid name")
    p.add_argument("--runs-dir", help=RUNS_HELP)
    p.add_argument("--book-dir", help="book sources (default: book/); output in <book-dir>/_build/html")
    p.add_argument("--no-build", action="store_true", help="assemble book/generated/ only")
    p.add_argument("--lessons-dir", help="executed lessons to include (default: <runs root>/lessons, `make lessons`)")
    p.add_argument("--from-bundle", metavar="ARCHIVE|FOLDER",
                   help="build from a results bundle (`bashkir-peft bundle`), or the union of a folder of one grid's "
                        "bundles (a grid run in parts, e.g. results/cpu-study/), extracted into <runs-dir>/<grid> "
                        "(default <runs root>/from-bundle/<grid>), instead of a trained grid; a study's sweep from the "
                        "folder beside (results/<sweep>/), extracted beside the grid's")
    p.set_defaults(func=_book)


# --- bundle ------------------------------------------------------------------

def _bundle(args: argparse.Namespace) -> int:
    if args.out and not args.out.endswith(BUNDLE_SUFFIX):
        raise ConfigError(f"--out {args.out}: a bundle's name ends in {BUNDLE_SUFFIX} (the book reads a folder "
                          f"of bundles by that name)")
    name, runs_dir, _ = report_dirs(ReportParams(grid=args.grid, runs_dir=_grid_dir(args)))
    keep = None
    if args.tier is not None:
        grid = grid_file(_grid_arg(args.grid))
        if grid is None:
            raise ConfigError(f"--tier {args.tier}: needs the grid's file (its tiers), not the name {args.grid!r}")
        run = plan(grid, None, runs_root=resolve_path(args.runs_dir), tier=args.tier, need_corpus=False)
        keep = {p.run_id for p in run.cells if p.run_id}
    _refresh_index(args)
    out = Path(args.out) if args.out else runs_dir.parent / f"{name}{BUNDLE_SUFFIX}"
    manifest = write_bundle(runs_dir, out, name, keep)
    print(f"bundle: {out} ({len(manifest['files'])} files, {out.stat().st_size / 2**20:.1f} MiB; no weights)")
    return 0


def add_bundle_parser(sub) -> None:
    """Add the ``bundle`` sub-command to the CLI's sub-parsers."""
    p = sub.add_parser("bundle", help="write a grid's results bundle (records, tables, notebooks, figures; no weights)")
    p.add_argument("grid", help="grid YAML (params/grids/NAME.yaml) or grid name")
    p.add_argument("--runs-dir", help=RUNS_HELP)
    p.add_argument("--out", help="archive path (default: <runs root>/<grid>-results.tar.gz)")
    p.add_argument("--tier", default=None, metavar="NAME",
                   help="only the run folders of one of the grid's tiers (a part of a study), with the grid's index "
                        "and data; default: every run folder")
    p.set_defaults(func=_bundle)


# --- spectrum ----------------------------------------------------------------

def _spectrum(args: argparse.Namespace) -> int:
    configure_threads()
    run_dir = Path(args.run_dir)
    out = Path(resolve_path(args.out)) if args.out else run_dir / RunFiles.WEIGHT_SPECTRUM
    info = write_weight_spectrum(run_dir, out)
    print(f"spectrum: {out} ({info.matrices} matrices, {info.wall_time_s:.1f} s)")
    return 0


def add_spectrum_parser(sub) -> None:
    """Add the ``spectrum`` sub-command to the CLI's sub-parsers."""
    p = sub.add_parser("spectrum", help="the singular-value spectrum of a finished full fine-tuning run's weight "
                                        "change, per adapted matrix (weight_spectrum.parquet)")
    p.add_argument("run_dir", help="a finished full fine-tuning run folder (train.json and final/)")
    p.add_argument("--out", help="the table's path (default: RUN_DIR/weight_spectrum.parquet)")
    p.set_defaults(func=_spectrum)


# --- lessons -----------------------------------------------------------------

def _lessons(args: argparse.Namespace) -> int:
    from papermill import PapermillExecutionError

    parameters = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected NAME=VALUE")
        parameters[key] = _value(value)
    try:
        timings = execute_lessons(Path(args.out) if args.out else None, parameters, only=args.only or None)
    except PapermillExecutionError as err:
        print(f"error: a lesson failed: {err.ename}: {err.evalue}", file=sys.stderr)
        return 1
    for stem, t in timings.items():
        print(f"{stem}: {t['wall_s']:.0f} s wall, {t['cpu_s']:.0f} s CPU (kernel)")
    return 0


def add_lessons_parser(sub) -> None:
    """Add the ``lessons`` sub-command to the CLI's sub-parsers."""
    p = sub.add_parser("lessons", help="execute the lessons with papermill (for the book: <runs root>/lessons)")
    p.add_argument("--out", help="output folder (default: $BASHKIR_PEFT_RUNS/lessons or <repo>/runs/lessons)")
    p.add_argument("--only", nargs="*", help="lesson numbers or names (default: all)")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="a parameter given to every lesson (YAML value)")
    p.set_defaults(func=_lessons)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bashkir-peft", description=__doc__.split("\n")[0])
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("setup-models", help="provision offline models into the cache")
    p.add_argument("names", nargs="*", help="registry names (default: every tiny and gguf entry)")
    p.set_defaults(func=_setup_models)
    p = sub.add_parser("models", help="list the model registry")
    p.set_defaults(func=_models)
    add_grid_parser(sub)
    add_report_parsers(sub)
    add_data_parser(sub)
    add_lessons_parser(sub)
    add_bundle_parser(sub)
    add_spectrum_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Exception as err:
        if args.debug:
            raise
        if isinstance(err, ConfigError):
            print(f"error: {err}", file=sys.stderr)
            return 2
        first = (str(err).strip().splitlines() or [""])[0]
        print(f"error: {type(err).__name__}: {first} (--debug shows the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
