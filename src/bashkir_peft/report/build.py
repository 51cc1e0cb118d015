"""The report of a grid: every run record under ``runs/<grid>/`` aggregated into tidy tables
(CSV + Parquet) and seaborn figures (PNG) under ``runs/<grid>/report/``.

Use::

    from bashkir_peft.config.report import ReportParams
    from bashkir_peft.report.build import build_report
    result = build_report(ReportParams(grid="params/grids/cpu-demo.yaml"))
    result.tables["summary"], result.figures["metrics_by_method"]

or ``bashkir-peft report GRID.yaml`` (``notebooks/05_report.ipynb`` calls the same function).
The tables and figures are those of the registry (:mod:`bashkir_peft.report.registry`), built
from one context (:mod:`bashkir_peft.report.context`); the reader's views of them are in
:mod:`bashkir_peft.report.views`. Failed and unfinished runs are left out of every result table
and listed in ``failures``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bashkir_peft.atomic import atomic_path, write_parquet_atomic
from bashkir_peft.config.design import StudyDesign
from bashkir_peft.config.grid import report_dirs
from bashkir_peft.config.report import ReportParams
from bashkir_peft.report.context import read_context
from bashkir_peft.report.registry import FIGURES, TABLES
from bashkir_peft.report.runs import RunRecord

INTEGER_COLUMNS = ("lora_r", "seed", "n", "ours_n", "n_documents")
"""Columns written as nullable integers (``Int64``) wherever a table has them."""


def write_table(df: pd.DataFrame, stem: Path) -> tuple[Path, Path]:
    """Write ``df`` as ``stem.csv`` and ``stem.parquet``, each atomically (temp + rename)."""
    csv, parquet = stem.with_suffix(".csv"), stem.with_suffix(".parquet")
    with atomic_path(csv) as tmp:
        df.to_csv(tmp, index=False)
    write_parquet_atomic(df.astype({c: "string" for c in df.columns if df[c].dtype == object}), parquet)
    return csv, parquet


@dataclass
class ReportResult:
    """What :func:`build_report` produced.

    Attributes:
        grid: grid name.
        runs_dir, out_dir: folders read and written.
        runs: the run records read.
        protocol: the headline protocol used.
        tables: name -> DataFrame (also written as ``out_dir/tables/<name>.csv|.parquet``).
        figures: name -> PNG path (only figures that had data).
        design: the grid file's study block (``None``: a grid without one).
    """

    grid: str
    runs_dir: Path
    out_dir: Path
    runs: list[RunRecord]
    protocol: str | None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Path] = field(default_factory=dict)
    design: StudyDesign | None = None

    @property
    def headline(self) -> pd.DataFrame:
        """The headline table: the headline protocol and split, mean ± std over seeds."""
        s = self.tables["summary"]
        return s[(s["protocol"] == self.protocol)] if len(s) else s


def build_report(params: ReportParams) -> ReportResult:
    """Aggregate every run record of a grid into tables and figures.

    Args:
        params: :class:`ReportParams`.

    Returns:
        :class:`ReportResult` with one table per entry of
        :data:`~bashkir_peft.report.registry.TABLES` (``sweep`` only for a study with a
        learning-rate sweep; columns of :data:`INTEGER_COLUMNS` as ``Int64``), each also written
        under ``out_dir/tables``, and the figures of :data:`~bashkir_peft.report.registry.FIGURES`
        that had data, under ``out_dir/figures``.

    Raises:
        ConfigError: no runs folder or no run record in it (DataError), bad grid file, a
            record that does not match the contract (RecordError: one line naming the file
            and the field).
    """
    name, runs_dir, out_dir = report_dirs(params)
    context = read_context(params, runs_dir)
    for table in TABLES:
        df = table.build(context)
        if df is not None:
            context = context.with_table(table.name, df)
    tables = dict(context.tables)
    for k, df in tables.items():
        for col in INTEGER_COLUMNS:
            if col in df.columns:
                df[col] = pd.array(df[col].astype("Float64").round(), dtype="Int64")
        write_table(df, out_dir / "tables" / k)
    figures = {}
    for figure in FIGURES:
        path = figure.draw(context, out_dir / "figures" / f"{figure.name}.png")
        if path is not None:
            figures[figure.name] = path
    return ReportResult(grid=name, runs_dir=runs_dir, out_dir=out_dir, runs=context.runs, protocol=context.protocol,
                        tables=tables, figures=figures, design=context.design)
