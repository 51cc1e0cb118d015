"""The grid runner's side of the stages (:data:`bashkir_peft.stages.STAGES`): which parameters
it injects into a stage notebook, and their validation.

The runner injects two kinds of parameters, and only names the notebook declares in its
``parameters`` cell (read with ``papermill.inspect_notebook``):

- runner values: paths and the cell's axes (data prep: ``corpus``, ``corpus_kind``,
  ``output_dir``; the others: ``model``, ``method``, ``lora_r``, ``seed``, ``data_dir``,
  ``run_dir``, ``output_dir``) - a grid may not set these;
- the grid's stage settings - each must be a parameter of the notebook, or the grid is
  rejected before any work starts.

Every cell's parameters are validated against the stage's parameter model (e.g.
:class:`~bashkir_peft.config.train.TrainParams`) once, when the grid is planned, before any
work starts, so a wrong type or an out-of-range value fails in seconds, not after hours of
other cells; the plan keeps the typed parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from bashkir_peft.errors import ConfigError
from bashkir_peft.stages import Stage
from bashkir_peft.yamlio import StrictModel, validate


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


RUN_DIR = "<run_dir>"
"""The run folder in a cell's parameters before its run id is known (the data not yet
prepared); :meth:`Unit.placed` puts the real folder in."""


@dataclass(frozen=True)
class Unit:
    """One unit of a cell's work: a stage, or one pass of a stage with ``passes`` (the passes of
    a stage whose notebook takes ``passes`` run in one notebook execution:
    :func:`bashkir_peft.grid.runner.executions`).

    Attributes:
        name: ``train``, ``evaluate``, or ``evaluate.1``, ``evaluate.2``... for passes.
        stage: the stage (a key of :data:`~bashkir_peft.stages.STAGES`).
        parameters: what papermill injects (JSON types, only the names given).
        params: the same, validated into the stage's parameter model once, when the grid
            was planned (the notebook's own defaults for the rest).
    """

    name: str
    stage: str
    parameters: dict[str, Any]
    params: StrictModel

    def placed(self, run_dir: str) -> Unit:
        """The unit with :data:`RUN_DIR` replaced by the cell's run folder (nothing validated again)."""
        paths = {k: run_dir for k, v in self.parameters.items() if v == RUN_DIR}
        return replace(self, parameters={**self.parameters, **paths},
                       params=self.params.model_copy(update={k: v for k, v in paths.items()
                                                             if k in type(self.params).model_fields}))


def build_parameters(stage: Stage, declared: dict, runner: dict[str, Any], settings: dict[str, Any],
                     where: str) -> tuple[dict[str, Any], StrictModel]:
    """The parameters papermill injects into one stage notebook.

    Args:
        stage: the stage.
        declared: the notebook's parameters (:func:`notebook_parameters`).
        runner: runner values (paths, axes); ``None`` values and names the notebook does not
            declare are left out, so the notebook's own default holds.
        settings: the grid's resolved stage settings (checked by :func:`check_settings`).
        where: prefix of error messages (grid file and cell).

    Returns:
        ``(parameters, params)``: name -> value (JSON types; papermill writes them as Python
        literals, so an int stays an int and a numeric-looking string stays a string), and
        the same validated into the stage's parameter model.

    Raises:
        ConfigError: a setting the notebook does not declare, or parameters the stage's
            parameter model rejects (wrong type, out of range).
    """
    check_settings(stage, declared, settings, where, runner)
    params = {k: v for k, v in runner.items() if v is not None and k in declared}
    params.update(settings)
    model = stage.params_model
    return params, validate(model, {k: v for k, v in params.items() if k in model.model_fields}, where)
