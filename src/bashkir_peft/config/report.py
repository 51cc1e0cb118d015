"""Parameters of the report (notebook 05, :mod:`bashkir_peft.report.build`); where they put a
grid's runs and tables: :func:`bashkir_peft.config.grid.report_dirs`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bashkir_peft.yamlio import StrictModel


class ReportParams(StrictModel):
    """Parameters of the report (defaults here are the single source of defaults).

    Attributes:
        grid: a grid YAML file (``params/grids/NAME.yaml``; read through the grid loader) or a
            grid name.
        runs_dir: the grid's runs folder; default ``<grid name>`` under ``$BASHKIR_PEFT_RUNS``
            (default ``<repo>/runs``), as the grid runner lays them out.
        output_dir: where tables and figures go; default ``<runs_dir>/report``.
        data_dir: the data-prep output (for the tokenizer fertility table); default: the
            ``data_dir`` of the runs' cell records, if it exists, else ``<runs_dir>/data``.
        protocol: evaluation protocol of the headline tables and figures (``rolling``:
            comparable across tokenizers); falls back to the one the runs have.
        split: evaluated split of the headline tables.
        n_resamples: bootstrap resamples for the paired differences.
        confidence: confidence level of the intervals.
        seed: seed of the bootstrap resampling.
    """

    grid: str = Field("params/grids/cpu-demo.yaml", json_schema_extra={"source": "ours: the CPU demo grid"})
    runs_dir: str | None = Field(None, json_schema_extra={"source": "ours: the grid runner's layout"})
    output_dir: str | None = Field(None, json_schema_extra={"source": "ours: <runs folder>/report"})
    data_dir: str | None = Field(None, json_schema_extra={"source": "ours: the runs' data folder"})
    protocol: Literal["rolling", "paper"] = Field("rolling", json_schema_extra={
        "source": "ours: the protocol comparable across tokenizers (lm-evaluation-harness rolling)"})
    split: Literal["test", "validation"] = Field("test", json_schema_extra={"source": "paper: it reports test"})
    n_resamples: int = Field(2000, ge=100, le=100_000, json_schema_extra={
        "source": "Efron & Tibshirani 1993: 1,000-2,000 resamples for interval ends"})
    confidence: float = Field(0.95, gt=0.5, lt=1.0, json_schema_extra={"source": "convention: 95 % intervals"})
    seed: int = Field(0, json_schema_extra={"source": "ours: any fixed seed (same seed, same interval)"})
