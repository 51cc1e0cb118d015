"""Every file a grid's stages will read, read once when the grid is planned (issue 31).

A malformed external test set (a SIB-200 row of two columns) or a missing
``downstream.sib200_dir`` used to fail in the evaluation or downstream stage of every cell,
after its training; read here, they stop ``grid run`` (and ``--dry-run``) with one line
before any work. Each distinct input is read once, by the reader its stage uses:
:func:`~bashkir_peft.data.external.load_external` (external sets),
:func:`~bashkir_peft.downstream.run.read_task` (the SIB-200 folder of the downstream task),
the prompts file's model (generation).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from bashkir_peft.config.generate import PromptsFile
from bashkir_peft.data.external import load_external
from bashkir_peft.downstream.run import read_task
from bashkir_peft.errors import ConfigError
from bashkir_peft.grid.stages import Unit
from bashkir_peft.settings import resolve_path
from bashkir_peft.yamlio import load_yaml


def _reads(unit: Unit) -> Iterator[tuple[tuple, Callable[[], object]]]:
    """``(key, read)`` of each input ``unit`` will read: ``key`` names the input (equal keys:
    one read), ``read()`` reads it as the stage will and raises its one-line error."""
    p = unit.params
    if unit.stage == "evaluate" and p.external is not None:
        spec = p.external.model_copy(update={"clean": False})  # every document parsed; cleaning is the stage's
        yield ("external", spec.format, spec.path, spec.sib200_split), lambda: load_external(spec)
    elif unit.stage == "downstream":
        yield ("sib200", p.sib200_dir, p.max_train, max(p.k_shots, default=0)), lambda: read_task(p)
    elif unit.stage == "generate" and p.prompts_file:
        yield ("prompts", p.prompts_file), lambda: load_yaml(resolve_path(p.prompts_file), PromptsFile)


def check_inputs(units: Iterable[tuple[str, Unit]]) -> int:
    """Read every input file of the planned units, each distinct one once.

    Args:
        units: ``(where, unit)`` pairs: a cell's name (for the message) and one of its
            :class:`~bashkir_peft.grid.stages.Unit`.

    Returns:
        The number of distinct inputs read.

    Raises:
        ConfigError: ``"<where>: <unit>: <the reader's one-line error>"`` for the first input
            that is missing or malformed.
    """
    done: set[tuple] = set()
    for where, unit in units:
        for key, read in _reads(unit):
            if key in done:
                continue
            try:
                read()
            except ConfigError as err:
                raise ConfigError(f"{where}: {unit.name}: {err}") from None
            done.add(key)
    return len(done)
