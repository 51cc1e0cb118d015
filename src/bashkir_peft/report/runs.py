"""Read the run folders of a grid (``runs/<grid>/<run_id>/``) into one typed record per run.

A run folder is a folder holding the grid runner's cell record ``grid_cell.json``; beside it
each stage writes its record (:class:`~bashkir_peft.records.RunFiles`): ``train.json`` (absent
for a zero-shot ``base`` run), ``eval.json`` with its per-document table
``eval_documents.parquet``, and ``generate.json``. Every record is parsed by its model of
:mod:`bashkir_peft.records`; a record that does not match the contract raises
:class:`~bashkir_peft.records.RecordError` naming the file and the field (it is never taken
for a failed run).

A run is ``failed`` if its cell record or a stage record says so, ``finished`` when its cell
is finished and its evaluation record has at least one evaluation, and ``incomplete``
otherwise. Where the grid runner's index ``grid.json`` exists, each of its cells is judged by
the one rule the grid commands use (:func:`bashkir_peft.cellstate.cell_state`): a cell that is
not finished there (not started, its folder gone, running, interrupted, corrupt, stale) is
reported with that state (:func:`index_gaps`), never dropped. ``bashkir-peft report``,
``book`` and ``bundle`` given the grid file rewrite the index from it first (as ``grid
status`` does), so the index read here is the grid file's current cells.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from bashkir_peft.cellstate import CellState, CellStatus, cell_state
from bashkir_peft.config.lora import lora_variant_label
from bashkir_peft.errors import DataError
from bashkir_peft.models.registry import load_registry
from bashkir_peft.names import ADAPTER_METHODS, method_label
from bashkir_peft.records import (
    METRICS,
    CellRecord,
    DownstreamRecord,
    EvalRecord,
    GenerateRecord,
    GridFiles,
    GridIndex,
    IndexCell,
    RunFiles,
    TrainRecord,
    read_eval_documents,
    read_record,
    read_record_if_any,
)
from bashkir_peft.report.bundle import LEFT_OUT_DIRS, MANIFEST
from bashkir_peft.settings import resolve_path

RunStatus = Literal["finished", "failed", "incomplete"] | CellStatus

RUN_KEYS = ["run_id", "model", "method", "method_label", "lora_r", "seed"]
"""The columns that name a run in every per-run table of the report (:func:`run_keys`)."""


@dataclass(frozen=True)
class RunRecord:
    """The typed records of one run folder.

    Attributes:
        run_id: the folder name.
        path: the run folder.
        cell: the grid runner's cell record (``grid_cell.json``): axes, status, failure.
        train: the training record (``None``: not written, e.g. a ``base`` run).
        eval: the evaluation record (``None``: not evaluated yet).
        generate: the generation record (``None``: no generation).
        downstream: the downstream record (``None``: the stage has not run).
        arm: the cell's label where the grid's study block names it an arm of its own
            (:func:`with_arms`; ``None``: pooled with its method's other runs).
    """

    run_id: str
    path: Path
    cell: CellRecord
    train: TrainRecord | None
    eval: EvalRecord | None
    generate: GenerateRecord | None
    state: CellStatus | None = None
    downstream: DownstreamRecord | None = None
    arm: str | None = None

    @property
    def model(self) -> str:
        """The cell's model (registry name or Hub id)."""
        return self.cell.params.model

    @property
    def method(self) -> str:
        """``base``, ``full``, ``lora`` or ``qlora``."""
        return self.cell.params.method

    @property
    def lora_r(self) -> int | None:
        """The adapter rank (``None`` for full fine-tuning and the base model)."""
        return self.cell.params.lora_r

    @property
    def seed(self) -> int | None:
        """The training seed of the cell."""
        return self.cell.params.seed

    @property
    def label(self) -> str | None:
        """The cell's ``label`` axis (a named variant), if any."""
        return self.cell.params.label

    @property
    def method_label(self) -> str:
        """:func:`method_label` of the run, with its LoRA placement where it is not the
        architecture's default (:func:`lora_placement`) and its LoRA variant, both from the
        training record (a run without one has neither)."""
        options = self.train.params.lora_options if self.train is not None else None
        return method_label(self.method, self.lora_r, self.cell.params.tokenizer, lora_variant_label(options),
                            lora_placement(self), self.arm)

    @property
    def model_type(self) -> str | None:
        """The architecture (``config.model_type``): the registry entry's for a registry model,
        else the training record's (``None``: neither says)."""
        entry = load_registry().models.get(self.model)
        if entry is not None:
            return entry.model_type
        return self.train.model.model_type if self.train is not None and self.train.model is not None else None

    @property
    def status(self) -> RunStatus:
        """``failed`` (the cell or the training record says so), ``finished`` (the cell is
        finished and the evaluation record has an evaluation) or ``incomplete``; where the
        grid's state of the cell (``state``) is neither finished nor failed, that state."""
        if self.state is not None and self.state not in ("finished", "failed"):
            return self.state
        if self.cell.status == "failed" or (self.train is not None and self.train.status == "failed"):
            return "failed"
        if self.cell.status == "finished" and self.eval is not None and self.eval.evaluations:
            return "finished"
        return "incomplete"

    @property
    def error(self) -> str | None:
        """Why a failed run failed: the cell's ``error`` (or its failure's exception), else the
        training record's ``reason``; ``None`` unless failed."""
        if self.status != "failed":
            return None
        if self.cell.error:
            return self.cell.error
        if self.cell.failure is not None:
            return f"{self.cell.failure.ename}: {self.cell.failure.evalue}"
        if self.train is not None and self.train.reason:
            return self.train.reason
        return "failed (no reason recorded)"

    @property
    def failed_stage(self) -> str | None:
        """The stage that failed (the cell's failure, else its first failed stage, else
        ``train`` where only the training record says failed); ``None`` unless failed."""
        if self.status != "failed":
            return None
        if self.cell.failure is not None:
            return self.cell.failure.stage
        stage = next((s for s, state in self.cell.stages.items() if state.status == "failed"), None)
        if stage is None and self.train is not None and self.train.status == "failed":
            return "train"
        return stage

    def notebooks(self) -> list[Path]:
        """The executed notebooks of the run (``notebooks/*.ipynb``, sorted by name)."""
        return sorted((self.path / RunFiles.NOTEBOOKS).glob("*.ipynb"))


def lora_placement(run: RunRecord) -> str:
    """Where an adapter run's LoRA sits, for its method label: ``""`` (the registry's default
    for the architecture, every linear layer, or a run that is not an adapter or has no
    training record), ``"attention"`` (the attention projections alone) or the module list
    (:meth:`bashkir_peft.models.registry.Registry.placement` of the training record's
    ``params.target_modules``, as set in the grid)."""
    if run.method not in ADAPTER_METHODS or run.train is None or not run.train.params.target_modules:
        return ""
    return load_registry().placement(run.model_type, run.train.params.target_modules)


def run_keys(run: RunRecord) -> dict:
    """The :data:`RUN_KEYS` of a run, as a row's first columns (``lora_r`` and ``seed`` ``None``
    where the cell has none)."""
    return {"run_id": run.run_id, "model": run.model, "method": run.method,
            "method_label": run.method_label, "lora_r": run.lora_r, "seed": run.seed}


def as_float(x: float | int | None) -> float:
    """A record's optional number as a table's float (``None`` -> NaN)."""
    return math.nan if x is None else float(x)


def with_arms(runs: list[RunRecord], label_arms: list[str]) -> list[RunRecord]:
    """The runs, those whose cell label is one of ``label_arms`` (the study block's
    :attr:`~bashkir_peft.config.design.StudyDesign.label_arms`) made an arm of their own
    (their method label ends in ``@<label>``)."""
    return [dataclasses.replace(r, arm=r.label) if r.label in label_arms else r for r in runs]


def read_run(path: str | Path, state: CellStatus | None = None) -> RunRecord:
    """Read one run folder.

    Args:
        path: ``runs/<grid>/<run_id>``.

    Returns:
        The :class:`RunRecord` (stage records not written yet are ``None``).

    Raises:
        RecordError: no ``grid_cell.json``, or a record that does not match the contract
            (the message names the file and the field).
    """
    path = Path(path)
    return RunRecord(run_id=path.name, path=path,
                     cell=read_record(path / RunFiles.CELL, CellRecord),
                     train=read_record_if_any(path / RunFiles.TRAIN, TrainRecord),
                     eval=read_record_if_any(path / RunFiles.EVAL, EvalRecord),
                     generate=read_record_if_any(path / RunFiles.GENERATE, GenerateRecord),
                     downstream=read_record_if_any(path / RunFiles.DOWNSTREAM, DownstreamRecord), state=state)


def run_data_dir(run: RunRecord) -> Path:
    """The data folder of a run: its grid folder's ``data/`` where that exists (the grid
    runner prepares every cell's data there, so a grid folder copied or moved, ``cp -a``,
    reads its own data, not the folder its cells recorded), else the recorded one
    (``grid_cell.json``'s ``data_dir``)."""
    local = run.path.parent / GridFiles.DATA
    return local if local.is_dir() else resolve_path(run.cell.data_dir)


def current_run_ids(runs_dir: Path) -> set[str] | None:
    """Run ids of the grid's current cells, from the runner's index ``grid.json``.

    After a change of parameters or data, folders of older run ids stay on disk (finished
    results are never deleted); only the cells the index lists belong to the grid now.

    Args:
        runs_dir: the grid's runs folder.

    Returns:
        The set of run ids, or ``None`` where there is no index (every run folder counts).

    Raises:
        RecordError: an index that does not match :class:`~bashkir_peft.records.GridIndex`.
    """
    index = read_record_if_any(runs_dir / GridFiles.INDEX, GridIndex)
    if index is None:
        return None
    return {c.run_id for c in index.cells if c.run_id}


def discover_runs(runs_dir: str | Path) -> list[RunRecord]:
    """Read the run folders under ``runs_dir`` (folders holding a ``grid_cell.json``); where
    the grid runner's index ``grid.json`` exists, only its current cells whose state
    (:func:`bashkir_peft.cellstate.cell_state`) is finished, failed, running or interrupted
    (older runs' folders stay on disk, never read; the other cells are :func:`index_gaps`).

    Args:
        runs_dir: the grid's runs folder (``runs/<grid>``).

    Returns:
        The runs, sorted by run id.

    Raises:
        DataError: ``runs_dir`` does not exist.
        RecordError: a record that does not match the contract.
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise DataError(f"{runs_dir}: no runs folder (run the grid first: bashkir-peft grid run GRID.yaml)")
    index = read_record_if_any(runs_dir / GridFiles.INDEX, GridIndex)
    if index is None:
        return [read_run(d) for d in sorted(runs_dir.iterdir()) if (d / RunFiles.CELL).is_file()]
    runs = []
    for c in sorted((c for c in index.cells if c.run_id), key=lambda c: c.run_id):
        state = index_cell_state(runs_dir, c).status
        if state in READABLE:
            runs.append(read_run(runs_dir / c.run_id, state))
    return runs


def index_cell_state(runs_dir: Path, cell: IndexCell) -> CellState:
    """:func:`bashkir_peft.cellstate.cell_state` of a cell of the grid's index; a cell the
    index calls ``stale`` is stale (what its parameters mean changed: only the grid can
    tell; ``grid run``, ``grid status`` and ``grid verify`` refresh the index). In a grid
    extracted from a results bundle, the weights and checkpoints the bundle leaves out are
    not missing."""
    bundled = (Path(runs_dir) / MANIFEST).is_file()
    state = cell_state(runs_dir, cell.run_id, left_out=LEFT_OUT_DIRS if bundled else ())
    if cell.status == "stale" and state.status not in ("not started", "corrupt"):
        return CellState("stale", cell.error, state.wall_time_s)
    return state


READABLE = ("finished", "failed", "running", "interrupted")
"""Cell states whose records parse, so the report reads them (the others are
:func:`index_gaps`)."""


def index_gaps(runs_dir: str | Path) -> list[dict]:
    """The cells of the grid's index whose records cannot be read as a run: not started (or
    their folder removed), corrupt or stale, with the state and why.

    Args:
        runs_dir: the grid's runs folder.

    Returns:
        One dict per such cell: ``run_id, model, method, method_label, lora_r, seed, status,
        failed_stage (None), error, path`` (path: the run's folder inside the grid's runs
        folder, None before the data is prepared; empty without an index). ``method_label``
        names the method, rank and tokenizer of the cell's axes; a LoRA placement or variant
        is named from a training record, which such a cell does not have.
    """
    runs_dir = Path(runs_dir)
    index = read_record_if_any(runs_dir / GridFiles.INDEX, GridIndex)
    rows = []
    for c in index.cells if index else []:
        state = index_cell_state(runs_dir, c)
        if state.status in READABLE:
            continue
        path = runs_dir / c.run_id if c.run_id else None
        error = state.error or ("no run folder" if path is None or not path.exists() else "no cell record")
        rows.append({"run_id": c.run_id, "model": c.model, "method": c.method,
                     "method_label": method_label(c.method, c.lora_r, c.tokenizer), "lora_r": c.lora_r, "seed": c.seed,
                     "status": state.status, "failed_stage": None, "error": error,
                     "path": c.run_id})  # inside the grid's runs folder, as for failed runs
    return rows


def eval_metrics(run: RunRecord) -> pd.DataFrame:
    """Tidy metric rows of one run's evaluation record (``evaluations[key].metrics`` and
    ``.by_source``).

    Args:
        run: a run.

    Returns:
        Columns ``protocol, split, source, perplexity, bits_per_byte, word_perplexity``
        (one row per protocol x split x source; empty if the run has no evaluation).
    """
    blocks = [b for entry in (run.eval.evaluations.values() if run.eval else ())
              for b in (entry.metrics, *entry.by_source.values())]
    return pd.DataFrame([b.model_dump(include={"protocol", "split", "source", *METRICS}) for b in blocks],
                        columns=["protocol", "split", "source", *METRICS])


def eval_documents(run: RunRecord) -> pd.DataFrame:
    """The evaluation's per-document sums of a run (``eval_documents.parquet``).

    Args:
        run: an evaluated run.

    Returns:
        Columns of :data:`~bashkir_peft.records.EVAL_DOCUMENT_COLUMNS` (``id``: the document id).

    Raises:
        RecordError: the table is missing, unreadable, or a column is missing or mistyped.
    """
    return read_eval_documents(run.path / RunFiles.EVAL_DOCUMENTS)
