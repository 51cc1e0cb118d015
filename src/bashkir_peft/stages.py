"""The pipeline's stages, in one table: each stage's notebook, parameter model and record.

Everything that needs to know the stages derives from :data:`STAGES`: the grid runner (which
notebook a cell runs, which parameters it validates), the record contract's
:data:`RUN_RECORDS` (which records a run folder may hold, so the cell state parses every one),
the book (the report notebook), the report and the tests. A new stage adds its row here, its
parameter model under :mod:`bashkir_peft.config` and its record model in
:mod:`bashkir_peft.records`.
"""

from __future__ import annotations

from dataclasses import dataclass

from bashkir_peft.config.data import DataPrepParams
from bashkir_peft.config.downstream import DownstreamParams
from bashkir_peft.config.evaluate import EvalParams
from bashkir_peft.config.generate import GenerateParams
from bashkir_peft.config.report import ReportParams
from bashkir_peft.config.train import TrainParams
from bashkir_peft.records import (
    DataFiles,
    DataManifest,
    DownstreamRecord,
    EvalRecord,
    GenerateRecord,
    Record,
    RunFiles,
    TrainRecord,
)
from bashkir_peft.yamlio import StrictModel


@dataclass(frozen=True)
class Stage:
    """One pipeline stage: a notebook, its parameter model and the record it writes.

    Attributes:
        name: the grid section of its settings (data, train, evaluate, generate, downstream,
            report).
        notebook: file name under the notebooks folder.
        params_model: the stage's parameter model (:mod:`bashkir_peft.config`): every cell's
            parameters are validated against it before any work starts.
        record: the record file the stage writes into its output folder, and its model in
            :mod:`bashkir_peft.records` (parsed after the notebook ran; its ``status`` is
            checked); ``None`` for the report, which writes tables.
        required: parameters the notebook must declare for the runner to drive it.
        per_cell: ``True`` for the stages a grid cell runs (in the run folder), ``False`` for
            the grid's own (data preparation once, the report over all runs).
    """

    name: str
    notebook: str
    params_model: type[StrictModel]
    record: tuple[str, type[Record]] | None
    required: tuple[str, ...]
    per_cell: bool = True


STAGES: dict[str, Stage] = {
    "data": Stage("data", "01_data_prep.ipynb", DataPrepParams, (DataFiles.MANIFEST, DataManifest),
                  ("corpus", "output_dir"), per_cell=False),
    "train": Stage("train", "02_train.ipynb", TrainParams, (RunFiles.TRAIN, TrainRecord),
                   ("model", "method", "data_dir", "output_dir")),
    "evaluate": Stage("evaluate", "03_evaluate.ipynb", EvalParams, (RunFiles.EVAL, EvalRecord),
                      ("model", "data_dir")),
    "generate": Stage("generate", "04_generate.ipynb", GenerateParams, (RunFiles.GENERATE, GenerateRecord),
                      ("model", "data_dir")),
    "downstream": Stage("downstream", "06_downstream.ipynb", DownstreamParams,
                        (RunFiles.DOWNSTREAM, DownstreamRecord), ("model",)),
    "report": Stage("report", "05_report.ipynb", ReportParams, None, ("grid", "runs_dir"), per_cell=False),
}
"""The stages, in the order a grid runs them."""

CELL_STAGES: tuple[str, ...] = tuple(name for name, s in STAGES.items() if s.per_cell)
"""The stages of a grid cell, in order: ``train`` (not for a ``base`` cell), ``evaluate``,
``generate``, ``downstream``."""
STAGE_SECTIONS: tuple[str, ...] = tuple(name for name, s in STAGES.items() if s.record is not None)
"""The grid file's stage sections (the stages whose settings a grid sets: data and the cell stages)."""

RUN_RECORDS: dict[str, type[Record]] = {s.record[0]: s.record[1] for s in STAGES.values()
                                        if s.per_cell and s.record is not None}
"""The stage records a run folder may hold, by file name: a cell is finished only if every
one present parses (:mod:`bashkir_peft.cellstate`)."""
