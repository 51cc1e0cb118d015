"""Every value a grid cell will use, with where it comes from (``grid run --dry-run``).

A stage notebook of a cell receives three kinds of values, and each has a source:

- runner values: the cell's axes (source: the grid's ``matrix`` axis or ``include``
  entry), the corpus (the command line) and folders (the grid runner's layout);
- the grid's settings: the source annotated in the grid file (or its ``default_source``),
  found through the path that set the value (:attr:`~bashkir_peft.config.grid.Cell.origins`);
- every other parameter: the default of the stage's params model, whose source is on its
  field (:func:`~bashkir_peft.yamlio.field_source`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from bashkir_peft.stages import STAGES
from bashkir_peft.yamlio import field_source

if TYPE_CHECKING:
    from bashkir_peft.grid.runner import GridRun, Planned

AXIS_NAMES = ("model", "method", "lora_r", "seed")
FOLDERS = {
    "data_dir": "grid runner: the grid's data folder (<runs>/<grid>/data)",
    "output_dir": "grid runner: the cell's run folder (<runs>/<grid>/<run_id>)",
    "run_dir": "grid runner: the cell's run folder (<runs>/<grid>/<run_id>)",
}


@dataclass(frozen=True)
class Value:
    """One parameter of one notebook execution: ``unit`` (``data``, ``train``,
    ``evaluate.1``...), ``name``, ``value`` and ``source``."""

    unit: str
    name: str
    value: Any
    source: str


def data_values(run: GridRun) -> list[Value]:
    """The data-prep notebook's values (shared by every cell of the grid)."""
    params = run.data_parameters()
    grid = run.grid
    runner = {"corpus": "command line: --corpus",
              "corpus_kind": "grid runner: hub for a hub:OWNER/NAME corpus",
              "output_dir": "grid runner: the grid's data folder (<runs>/<grid>/data)"}

    def source(name: str) -> str:
        return grid.source(f"data.{name}") if name in grid.spec.data else runner.get(name, "grid runner")

    model = STAGES["data"].params_model
    out = [Value("data", name, params[name], source(name)) if name in params else
           Value("data", name, model.model_fields[name].get_default(call_default_factory=True),
                 field_source(model, name))
           for name in model.model_fields]
    return out + [Value("data", name, params[name], source(name)) for name in params if name not in model.model_fields]


def cell_values(run: GridRun, p: Planned) -> list[Value]:
    """Every parameter of every notebook execution of the cell ``p``, with its source: the
    fields of the stage's params model, then any other value injected into the notebook."""
    cell, grid = p.cell, run.grid
    out = []
    for u in run.units(p):
        unit, stage, params = u.name, u.stage, u.parameters
        settings, passes = run.stage_passes(p, stage)
        origins = cell.origins.get(stage, {})
        runner = {k for k, v in run.runner_values(stage, p).items() if v is not None}
        n = int(unit.rsplit(".", 1)[1]) if unit != stage else 0
        extra = passes[n - 1] if passes else {}
        model = STAGES[stage].params_model

        def source(name: str) -> str:
            if name in extra:
                key = "external_sets" if "external" in extra else "passes"  # an external set's protocol too
                return f"{grid.source(origins[key])} (pass {n} of {stage})"
            if name in settings:
                return grid.source(origins[name])
            if name in AXIS_NAMES:
                return f"cell axis {name}: {grid.source(cell.origins['axes'][name])}"
            return FOLDERS.get(name, "grid runner")

        for name in model.model_fields:
            if name in params:
                out.append(Value(unit, name, params[name], source(name)))
            else:
                out.append(Value(unit, name, model.model_fields[name].get_default(call_default_factory=True),
                                 field_source(model, name)))
        out += [Value(unit, name, params[name], source(name)) for name in params
                if name not in model.model_fields and (name in runner or name in settings or name in extra)]
    return out


def format_values(values: list[Value], indent: str = "    ") -> str:
    """One aligned line per value: unit, name, value (Python literal), source."""
    if not values:
        return ""
    rows = [(v.unit, v.name, repr(v.value), v.source) for v in values]
    widths = [min(max(len(r[i]) for r in rows), cap) for i, cap in ((0, 12), (1, 28), (2, 40))]
    return "\n".join(indent + "  ".join(x.ljust(w) for x, w in zip(r[:3], widths)) + "  " + r[3] for r in rows)


def write_values(run: GridRun, out: TextIO) -> None:
    """Print the data-prep values once, then every value of each planned cell, with sources."""
    print(f"values of grid {run.grid.name} (data preparation, shared by every cell):", file=out)
    print(format_values(data_values(run)), file=out)
    for p in run.cells:
        print(f"values of cell {p.run_id or p.cell.slug + '-<pending data>'}:", file=out)
        print(format_values(cell_values(run, p)), file=out)
