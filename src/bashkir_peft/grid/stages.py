"""The pipeline's stages as the grid runner sees them: notebook, parameters, record.

Each stage is a notebook under ``notebooks/`` executed by papermill. The runner injects
two kinds of parameters, and only names the notebook declares in its ``parameters``
cell (read with ``papermill.inspect_notebook``):

- runner values: paths and the cell's axes (data prep: ``corpus``, ``corpus_kind``,
  ``output_dir``; the others: ``model``, ``method``, ``lora_r``, ``seed``, ``data_dir``,
  ``run_dir``, ``output_dir``) - a grid may not set these;
- the grid's stage settings - each must be a parameter of the notebook, or the grid is
  rejected before any work starts.

Every cell's parameters are validated against the stage's pydantic parameter model
(e.g. :class:`~bashkir_peft.train.run.TrainParams`) before any work starts, so a wrong type
or an out-of-range value fails in seconds, not after hours of other cells.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from traitlets.config import Config

from bashkir_peft.data.prepare import DataPrepParams
from bashkir_peft.downstream.run import DownstreamParams
from bashkir_peft.errors import ConfigError
from bashkir_peft.evaluate.run import EvalParams
from bashkir_peft.generate.run import GenerateParams
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
from bashkir_peft.report.build import ReportParams
from bashkir_peft.settings import REPO_ROOT
from bashkir_peft.train.run import TrainParams
from bashkir_peft.yamlio import StrictModel, validate

KERNEL = "bashkir-peft"
KERNEL_INSTALL = ('python -m ipykernel install --sys-prefix --name bashkir-peft '
                  '--display-name "Python (bashkir-peft)"')


@dataclass(frozen=True)
class Stage:
    """One pipeline stage: a notebook, its parameter model and the record it writes.

    Attributes:
        name: grid section name (data, train, evaluate, generate, downstream, report).
        notebook: file name under the notebooks folder.
        params_model: the stage's pydantic parameter model (every cell's parameters are
            validated against it before any work starts).
        record: the record file the stage writes into its output folder, and its model in
            :mod:`bashkir_peft.records` (parsed after the notebook ran; its ``status`` is
            checked); ``None`` for the report, which writes tables.
        required: parameters the notebook must declare for the runner to drive it.
    """

    name: str
    notebook: str
    params_model: type[StrictModel]
    record: tuple[str, type[Record]] | None
    required: tuple[str, ...]


STAGES: dict[str, Stage] = {
    "data": Stage("data", "01_data_prep.ipynb", DataPrepParams, (DataFiles.MANIFEST, DataManifest),
                  ("corpus", "output_dir")),
    "train": Stage("train", "02_train.ipynb", TrainParams, (RunFiles.TRAIN, TrainRecord),
                   ("model", "method", "data_dir", "output_dir")),
    "evaluate": Stage("evaluate", "03_evaluate.ipynb", EvalParams, (RunFiles.EVAL, EvalRecord),
                      ("model", "data_dir")),
    "generate": Stage("generate", "04_generate.ipynb", GenerateParams, (RunFiles.GENERATE, GenerateRecord),
                      ("model", "data_dir")),
    "downstream": Stage("downstream", "06_downstream.ipynb", DownstreamParams,
                        (RunFiles.DOWNSTREAM, DownstreamRecord), ("model",)),
    "report": Stage("report", "05_report.ipynb", ReportParams, None, ("grid", "runs_dir")),
}
"""The stages a grid runs, in order; a new stage adds its row here and its record model in
:mod:`bashkir_peft.records`."""


def default_notebooks_dir() -> Path:
    return REPO_ROOT / "notebooks"


@lru_cache(maxsize=32)
def _inspect(path: str, mtime: float) -> dict[str, dict]:
    import papermill

    return papermill.inspect_notebook(path)


def notebook_parameters(path: str | Path) -> dict[str, dict]:
    """The parameters a notebook declares (name -> papermill's description with ``default``).

    Raises:
        ConfigError: the notebook is missing or has no cell tagged ``parameters``.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"notebook {path} not found")
    params = _inspect(str(path), path.stat().st_mtime)
    if not params:
        raise ConfigError(f"{path}: no cell tagged 'parameters' (papermill needs one to inject parameters)")
    return params


def check_kernel() -> None:
    """Raise :class:`ConfigError` if the ``bashkir-peft`` Jupyter kernel is not registered."""
    from jupyter_client.kernelspec import KernelSpecManager

    if KERNEL not in KernelSpecManager().find_kernel_specs():
        raise ConfigError(f"Jupyter kernel {KERNEL!r} is not registered: {KERNEL_INSTALL}")


def check_settings(stage: Stage, declared: dict, settings: dict, where: str, owned_names=()) -> None:
    """Reject grid settings the notebook does not declare or the runner owns (``owned_names``)."""
    owned = sorted(set(settings) & set(owned_names))
    if owned:
        raise ConfigError(f"{where}: {', '.join(owned)} set by the grid runner (matrix axes, --corpus, "
                          "run folders), not in stage settings")
    unknown = sorted(set(settings) - set(declared))
    if unknown:
        raise ConfigError(f"{where}: {', '.join(unknown)} not a parameter of {stage.notebook} "
                          f"(its parameters: {', '.join(sorted(declared))})")
    missing = [n for n in stage.required if n not in declared]
    if missing:
        raise ConfigError(f"{stage.notebook} does not declare {', '.join(missing)}; the grid runner needs it")


def build_parameters(stage: Stage, declared: dict, runner: dict[str, Any], settings: dict[str, Any],
                     where: str) -> dict[str, Any]:
    """The parameters papermill injects into one stage notebook.

    Args:
        stage: the stage.
        declared: the notebook's parameters (:func:`notebook_parameters`).
        runner: runner values (paths, axes); ``None`` values and names the notebook does not
            declare are left out, so the notebook's own default holds.
        settings: the grid's resolved stage settings (checked by :func:`check_settings`).
        where: prefix of error messages (grid file and cell).

    Returns:
        name -> value (JSON types; papermill writes them as Python literals, so an int
        stays an int and a numeric-looking string stays a string).

    Raises:
        ConfigError: a setting the notebook does not declare, or parameters the stage's
            parameter model rejects (wrong type, out of range).
    """
    check_settings(stage, declared, settings, where, runner)
    params = {k: v for k, v in runner.items() if v is not None and k in declared}
    params.update(settings)
    model = stage.params_model
    validate(model, {k: v for k, v in params.items() if k in model.model_fields}, where)
    return params


def execute(notebook: Path, output: Path, parameters: dict, cwd: Path, timeout_s: int | None = None) -> None:
    """Execute ``notebook`` with papermill into ``output`` (kernel :data:`KERNEL`): the one
    papermill executor of the project (grid stages and the book's report).

    ``cwd`` is the repository root, where the notebooks' relative defaults (e.g.
    ``../shared/corpus/...``) point, as when a reader runs them by hand; the runner itself
    passes absolute paths. ``timeout_s``: per-cell limit (``None``: none).

    Raises:
        PapermillExecutionError: a notebook cell raised (the executed notebook, with the
            error, is still written to ``output``).
    """
    import papermill

    output.parent.mkdir(parents=True, exist_ok=True)
    # The kernel talks to papermill over local sockets (IPC), not unencrypted TCP: no warning
    # on every kernel start, nothing listening on a port. Each kernel gets its own socket
    # folder: jupyter_client's default names (kernel-ipc-1..5 in the working folder) are
    # shared by kernels started at the same time (one cell per GPU), whose messages then
    # cross ("Invalid Signature"), and they would litter the repository root.
    with tempfile.TemporaryDirectory(prefix="bpk-") as sockets:
        ipc = Config({"KernelManager": {"transport": "ipc", "ip": str(Path(sockets) / "k")}})
        papermill.execute_notebook(str(notebook), str(output), parameters=parameters, kernel_name=KERNEL,
                                   cwd=str(cwd), progress_bar=False, log_output=False, start_timeout=300,
                                   execution_timeout=timeout_s, config=ipc)
