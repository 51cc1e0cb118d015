"""``bashkir-peft report GRID.yaml`` and ``bashkir-peft book GRID.yaml``.

report: aggregate ``runs/<grid>/`` into tables (CSV + Parquet) and figures (PNG) under
``runs/<grid>/report/`` and print the headline table.
book:   execute the report notebook, assemble ``book/generated/`` from the grid's runs and
build the book strictly into ``book/_build/html/`` (exit 1 if a notebook fails or Sphinx warns).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _grid_dir(args: argparse.Namespace) -> str | None:
    """``--runs-dir`` is the runs ROOT, as for ``grid run``: the grid's folder is ``<root>/<name>``."""
    if not args.runs_dir:
        return None
    from .report import resolve_grid

    return str(Path(args.runs_dir) / resolve_grid(args.grid)[0])


def _report(args: argparse.Namespace) -> int:
    import pandas as pd

    from .report import ReportParams, build_report, format_headline
    from .yamlio import validate

    given = {"grid": args.grid, "runs_dir": _grid_dir(args), "out_dir": args.out_dir, "data_dir": args.data_dir}
    params = validate(ReportParams, {k: v for k, v in given.items() if v}, "report")
    result = build_report(params)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(format_headline(result.headline).to_string(index=False))
    failed = result.tables["failures"]
    print(f"\n{len(result.runs) - len(failed)} finished, {len(failed)} failed or unfinished; "
          f"tables and figures in {result.out_dir}")
    return 0


def _book(args: argparse.Namespace) -> int:
    from .book import BookError, BookParams, build_book
    from .yamlio import validate

    given = {"grid": args.grid, "runs_dir": _grid_dir(args), "book_dir": args.book_dir, "build": not args.no_build}
    params = validate(BookParams, {k: v for k, v in given.items() if v is not None}, "book")
    try:
        out = build_book(params)
    except BookError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"book: {out}" + ("" if args.no_build else "  (open it in a browser: file://" + str(out) + ")"))
    return 0


RUNS_HELP = "runs root, as for `grid run` (default $BASHKIR_PEFT_RUNS or <repo>/runs); the grid's runs are in <root>/<grid name>"


def register(sub) -> None:
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
    p.set_defaults(func=_book)
