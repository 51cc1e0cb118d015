"""What every table and figure of a report is built from: one frozen context per grid.

:func:`read_context` reads a grid's runs folder once (its runs, the index's cells without a
readable run, the grid file's study block, the data folder); the table registry
(:mod:`bashkir_peft.report.registry`) builds each table from the context, and the context of
the next table holds it too (:meth:`ReportContext.with_table`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

import pandas as pd

from bashkir_peft.config.design import StudyDesign
from bashkir_peft.config.grid import study_design
from bashkir_peft.config.report import ReportParams
from bashkir_peft.records import GridFiles
from bashkir_peft.report.failures import require_runs
from bashkir_peft.report.lm import headline_protocol
from bashkir_peft.report.runs import RunRecord, discover_runs, index_gaps, run_data_dir, with_arms
from bashkir_peft.settings import resolve_path


@dataclass(frozen=True)
class ReportContext:
    """What the report's table and figure builders read.

    Attributes:
        params: the report's parameters (headline ``protocol`` wanted, ``split``, bootstrap
            ``n_resamples``, ``confidence``, ``seed``).
        runs_dir: the grid's runs folder.
        runs: the runs read from it (:func:`~bashkir_peft.report.runs.discover_runs`).
        gaps: the grid index's cells without a readable run
            (:func:`~bashkir_peft.report.runs.index_gaps`).
        design: the grid file's study block (``None``: a grid name, or no block).
        data_dir: the prepared data folder (``None``: none found).
        tables: the tables built so far, by name (read-only).
    """

    params: ReportParams
    runs_dir: Path
    runs: list[RunRecord]
    gaps: list[dict]
    design: StudyDesign | None
    data_dir: Path | None
    tables: Mapping[str, pd.DataFrame] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def protocol(self) -> str | None:
        """The headline protocol (:func:`~bashkir_peft.report.lm.headline_protocol` of the
        ``metrics`` table: ``params.protocol`` if any run was evaluated under it).

        Raises:
            KeyError: the ``metrics`` table is not built yet.
        """
        return headline_protocol(self.tables["metrics"], self.params.protocol)

    @property
    def bootstrap(self) -> dict:
        """The bootstrap settings as keyword arguments: ``n_resamples, confidence, seed``."""
        return {"n_resamples": self.params.n_resamples, "confidence": self.params.confidence,
                "seed": self.params.seed}

    def with_table(self, name: str, table: pd.DataFrame) -> ReportContext:
        """This context with ``table`` added to :attr:`tables` as ``name``."""
        return replace(self, tables=MappingProxyType({**self.tables, name: table}))


def data_folder(params: ReportParams, runs: list[RunRecord], runs_dir: Path) -> Path | None:
    """The data folder of a report: ``params.data_dir``, else ``<runs_dir>/data`` (the grid's
    own, also in a grid copied, moved or extracted from a results bundle), else the runs'
    recorded data folder, else ``None``."""
    if params.data_dir:
        return resolve_path(params.data_dir)
    local = runs_dir / GridFiles.DATA
    if local.is_dir():
        return local
    return next((d for d in map(run_data_dir, runs) if d.is_dir()), None)


def read_context(params: ReportParams, runs_dir: Path) -> ReportContext:
    """Read a grid's runs folder into a context without tables.

    Args:
        params: the report's parameters (``grid``: the grid file whose study block is read).
        runs_dir: the grid's runs folder.

    Returns:
        The :class:`ReportContext`.

    Raises:
        DataError: no runs folder, or no run record in it.
        RecordError: a record that does not match the contract.
        ConfigError: an invalid grid file.
    """
    runs = discover_runs(runs_dir)
    require_runs(runs, runs_dir)
    design = study_design(params.grid)
    runs = with_arms(runs, design.label_arms) if design is not None else runs
    return ReportContext(params=params, runs_dir=runs_dir, runs=runs, gaps=index_gaps(runs_dir),
                         design=design, data_dir=data_folder(params, runs, runs_dir))
